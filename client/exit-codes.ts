/**
 * Exit codes a CI job can branch on (the README's table mirrors this one). Each outcome a pipeline
 * may treat differently has its own code: "nothing changed" is safe to retry, "rolled back" means
 * the release was undone, "a person must act" and "partially rolled back" page someone.
 */
export const EXIT = {
  succeeded: 0,
  rolledBack: 1, // the release failed or was aborted, and every change was undone
  invalid: 2, // invalid input, a refused command, or an unknown app / release: nothing was done
  timedOut: 3, // --wait/--timeout ran out before the release ended (the release goes on)
  unreachable: 4, // cannot reach Temporal
  failedUnchanged: 5, // the release failed before changing anything (preflight, policy, lease wait)
  rollbackFailed: 6, // an undo keeps failing or found a conflict: the release waits for a person (retry / skip)
  partiallyRolledBack: 7, // the release ended after a person skipped an undo: some changes remain
  terminated: 8, // terminated, cancelled or timed out from outside (UI, `temporal workflow terminate`): nothing was undone
  internal: 9, // the CLI itself failed (a bug, an answer it did not expect): the release's outcome is unknown, see `status`
} as const;

/** An error that ends the CLI with a given exit code and message, without a stack trace. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}
