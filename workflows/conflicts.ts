/**
 * The rollback and its conflicts (docs/rollback.md). Compensations run newest first in a scope
 * nothing can cancel. Each one restores a key only while it still holds what the release wrote;
 * a key someone else changed since is an UndoConflict (the activity names key, value found and,
 * where known, who changed it), and like a compensation that keeps failing it puts the release in
 * RollbackFailed until a person answers `retry` (check again) or `skip` (leave it as it is).
 * Skipped changes are listed at the end: such a release ends PartiallyRolledBack, not RolledBack.
 */
import { CancellationScope, condition } from '@temporalio/workflow';
import type { ReleaseState } from './state.ts';
import { failureMessage, type Run } from './steps.ts';

/**
 * Undo newest first in a scope nothing can cancel. A compensation that keeps failing puts the
 * release in RollbackFailed until a person answers `retry` (try it again) or `skip` (accept it).
 */
export async function rollBack(run: Run, reason: string): Promise<void> {
  const { release } = run;
  release.setPhase('RollingBack', `rolling back ${release.status.release}: ${reason}`);
  await CancellationScope.nonCancellable(() =>
    run.saga.unwind(async (c) => {
      for (;;) {
        release.updateChange(c.change, { state: 'restoring' });
        try {
          await c.run();
          release.updateChange(c.change, { state: 'restored' });
          return;
        } catch (err) {
          release.updateChange(c.change, { state: 'restore-failed', error: failureMessage(err) });
          release.compensationAnswer = undefined;
          release.setPhase('RollbackFailed', `cannot ${c.summary}: ${failureMessage(err)} — needs a person: retry or skip`);
          await condition(() => release.compensationAnswer !== undefined);
          const answer = release.compensationAnswer;
          release.setPhase('RollingBack');
          if (answer === 'skip') {
            release.updateChange(c.change, { state: 'restore-skipped' });
            return;
          }
        }
      }
    }),
  );
}

/** The changes whose undo a person skipped: still in place, each with the reason its undo could not run. */
export function skippedChanges(release: ReleaseState): string[] {
  return release.status.changes
    .filter((c) => c.state === 'restore-skipped')
    .map((c) => `${c.summary} (${c.system} ${c.target}${c.error ? `: ${c.error}` : ''})`);
}
