/**
 * The failure type of a compensation that found someone else's change on a key it would restore
 * (docs/rollback.md). Non-retryable: the release waits in RollbackFailed; `retry` checks again.
 */
export const UNDO_CONFLICT = 'UndoConflict';
