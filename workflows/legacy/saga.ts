/**
 * The compensation stack. Each mutating step pushes "set it back to what it was" before it
 * mutates, so an activity that timed out but did apply is still undone; undo runs newest first.
 */
export interface Compensation {
  /** index into the release's list of changes */
  change: number;
  summary: string;
  run: () => Promise<void>;
}

export class Saga {
  private readonly stack: Compensation[] = [];

  add(compensation: Compensation): void {
    this.stack.push(compensation);
  }

  get size(): number {
    return this.stack.length;
  }

  /** Newest first. `attempt` decides what a failing compensation means (retry, skip or give up). */
  async unwind(attempt: (c: Compensation) => Promise<void>): Promise<void> {
    while (this.stack.length > 0) {
      const next = this.stack[this.stack.length - 1]!;
      await attempt(next);
      this.stack.pop();
    }
  }
}
