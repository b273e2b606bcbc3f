import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { CheckOutcome, GateResult, GateTiming } from './result.ts';

/** Failure types the workflow recognises when a gate ends badly. */
export const GATE_FAILED = 'GateFailed';
export const GATE_TIMED_OUT = 'GateTimedOut';

/** Upper bound between heartbeats when the activity has no (or a long) heartbeat timeout. */
const HEARTBEAT_EVERY_MS = 5_000;

interface Progress {
  startedAt: number;
  checks: number;
  streak: number;
}

/**
 * Runs a gate as one heartbeating activity: check every interval, pass after N consecutive
 * successes, fail at once on a hard failure, fail at the deadline otherwise.
 *
 * The start time is carried in heartbeat details, so a retried attempt (a worker that died
 * mid-gate) keeps the original deadline instead of starting the clock again. Errors thrown by a
 * check count as "not yet" unless they are non-retryable ApplicationFailures, which end the gate.
 *
 * Heartbeats also go out on a timer while a check runs and between checks: an interval longer
 * than the activity's heartbeat timeout must not look like a dead worker, and cancellation only
 * reaches an activity through a heartbeat. A check bounds its own duration (e.g. a request
 * timeout); it gets the cancellation signal so a cancelled gate does not wait for it.
 */
export async function pollGate(
  gate: { name: string; kind: string },
  timing: GateTiming,
  check: (signal: AbortSignal) => Promise<CheckOutcome>,
): Promise<GateResult> {
  const ctx = Context.current();
  const resumed = ctx.info.heartbeatDetails as Progress | undefined;
  const progress: Progress = resumed ?? { startedAt: Date.now(), checks: 0, streak: 0 };
  const deadline = progress.startedAt + timing.timeoutMs;
  let last: CheckOutcome = { status: 'wait', reason: 'not checked yet' };

  const result = (ok: boolean): GateResult => ({
    gate: gate.name,
    kind: gate.kind,
    ok,
    observed: last.observed ?? null,
    reason: last.reason,
    checks: progress.checks,
    elapsedMs: Date.now() - progress.startedAt,
  });

  const loop = async (): Promise<GateResult> => {
    for (;;) {
      try {
        last = await check(ctx.cancellationSignal);
      } catch (err) {
        if (err instanceof ApplicationFailure && err.nonRetryable) throw err;
        if (err instanceof CancelledFailure || ctx.cancellationSignal.aborted) throw err;
        last = { status: 'wait', reason: `check errored, will retry: ${(err as Error).message}` };
      }
      progress.checks++;
      progress.streak = last.status === 'pass' ? progress.streak + 1 : 0;
      ctx.heartbeat(progress);

      if (last.status === 'fail') {
        throw ApplicationFailure.create({
          type: GATE_FAILED,
          message: `gate ${gate.name} (${gate.kind}) failed: ${last.reason}`,
          nonRetryable: true,
          details: [result(false)],
        });
      }
      if (progress.streak >= timing.successes) return result(true);

      const wait = Math.min(timing.intervalMs, deadline - Date.now());
      if (wait <= 0) {
        // A last check that passed still has to say why the gate did not.
        if (last.status === 'pass') {
          last = { ...last, reason: `only ${progress.streak} of ${timing.successes} consecutive checks passed: ${last.reason}` };
        }
        throw ApplicationFailure.create({
          type: GATE_TIMED_OUT,
          message: `gate ${gate.name} (${gate.kind}) did not pass within ${Math.round(timing.timeoutMs / 1000)}s: ${last.reason}`,
          nonRetryable: true,
          details: [result(false)],
        });
      }
      await ctx.sleep(wait); // throws CancelledFailure when the workflow cancels the gate
    }
  };

  const beatEvery = Math.max(50, Math.min(HEARTBEAT_EVERY_MS, (ctx.info.heartbeatTimeoutMs ?? Infinity) / 3));
  const beat = setInterval(() => ctx.heartbeat(progress), beatEvery);
  try {
    return await loop();
  } finally {
    clearInterval(beat);
  }
}
