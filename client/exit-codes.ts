/** Exit codes a CI job can branch on. */
export const EXIT = {
  succeeded: 0,
  failed: 1, // the release failed or was rolled back
  invalid: 2, // invalid input, or a command the release refused
  timedOut: 3, // --wait/--timeout ran out before the release ended
  unreachable: 4, // cannot reach Temporal
} as const;

/** An error that ends the CLI with a given exit code and message, without a stack trace. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}
