import { ApplicationFailure, Context } from '@temporalio/activity';
import { GATE_FAILED, GATE_TIMED_OUT } from '../gates/poll.ts';
import type { CheckOutcome, GateResult } from '../gates/result.ts';
import { evaluateFlux } from './readiness.ts';
import { fluxRef } from './resource.ts';
import type { FluxTarget } from './types.ts';
import { waitForFlux, type WaitMode } from './wait.ts';

export interface FluxReadyInput {
  gate: string;
  target: FluxTarget;
  token: string;
  /** the generation the release's patch produced (optional: legacy callers pass only the token) */
  generation?: number;
  /** the release's patch changed the spec (see FluxWritten) */
  specChanged?: boolean;
  timeoutMs: number;
  intervalMs: number;
  /** 'watch' (default) or 'poll'; polling only is for clusters where watches are cut by a proxy */
  mode?: WaitMode;
}

interface Progress {
  startedAt: number;
  checks: number;
  /** for callers that pass no generation: the object's generation at the first check */
  generation?: number;
}

/** Heartbeats at least this often while a watch is quiet, so cancellation reaches the activity. */
const HEARTBEAT_MS = 5_000;

/**
 * The fluxReady gate: one heartbeating activity that returns as soon as Flux reports the spec the
 * release wrote reconciled and Ready, and fails at once, quoting Flux, when Flux reports that spec
 * failed (see evaluateFlux). The start time and the generation to wait for travel in heartbeat
 * details, so a retried attempt keeps the original deadline and target.
 */
export async function fluxReadyGateActivity(input: FluxReadyInput): Promise<GateResult> {
  const ctx = Context.current();
  const resumed = ctx.info.heartbeatDetails as Progress | undefined;
  const progress: Progress = resumed ?? { startedAt: Date.now(), checks: 0 };
  const firstChecks = progress.checks;
  let last: CheckOutcome = { status: 'wait', reason: 'not checked yet' };
  ctx.heartbeat(progress);
  const beat = setInterval(() => ctx.heartbeat(progress), Math.min(HEARTBEAT_MS, Math.max(100, input.intervalMs)));

  const gateResult = (ok: boolean): GateResult => ({
    gate: input.gate,
    kind: 'fluxReady',
    ok,
    observed: last.observed ?? null,
    reason: last.reason,
    checks: progress.checks,
    elapsedMs: Date.now() - progress.startedAt,
  });

  try {
    const { outcome } = await waitForFlux({
      ref: fluxRef(input.target),
      evaluate: (obj) => {
        progress.generation ??= input.generation ?? obj.metadata.generation;
        return evaluateFlux(input.target.kind, obj, { token: input.token, generation: progress.generation, specChanged: input.specChanged });
      },
      deadline: progress.startedAt + input.timeoutMs,
      intervalMs: input.intervalMs,
      mode: input.mode,
      signal: ctx.cancellationSignal,
      onCheck: (outcome, checks) => {
        last = outcome;
        progress.checks = firstChecks + checks;
        ctx.heartbeat(progress);
      },
    });
    last = outcome;
    if (outcome.status === 'pass') return gateResult(true);
    if (outcome.status === 'fail') {
      throw ApplicationFailure.create({
        type: GATE_FAILED,
        nonRetryable: true,
        message: `gate ${input.gate} (fluxReady) failed: ${outcome.reason}`,
        details: [gateResult(false)],
      });
    }
    throw ApplicationFailure.create({
      type: GATE_TIMED_OUT,
      nonRetryable: true,
      message: `gate ${input.gate} (fluxReady) did not pass within ${Math.round(input.timeoutMs / 1000)}s: ${outcome.reason}`,
      details: [gateResult(false)],
    });
  } finally {
    clearInterval(beat);
  }
}
