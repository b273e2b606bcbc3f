/**
 * One function per kind of step. Every mutating step reads the current value and pushes its
 * compensation before it mutates (the saga rule), so a mutation that timed out but applied is
 * still undone.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, condition, sleep } from '@temporalio/workflow';
import type { ChefPinResult } from '../activities/chef/index.ts';
import type { FluxWritten } from '../activities/flux/readiness.ts';
import type { GateResult } from '../activities/gates/result.ts';
import { formatDuration, parseDuration } from '../release-spec/duration.ts';
import { gateSummary, gateTiming, type PlanStep } from '../release-spec/plan.ts';
import { awaitedWrites, gates, undo, writes, reads } from './activities.ts';
import { fluxReadyInput, rolloutExpectation } from './flux.ts';
import { fluxGitGate, isGitMode, type GitCommitted } from './git-mode.ts';
import type { Saga } from './saga.ts';
import type { ReleaseState } from './state.ts';
import { epochMs } from './clock.ts';

/** What the steps of one release share. */
export interface Run {
  release: ReleaseState;
  saga: Saga;
  /** what the release wrote to each Flux target (token, generation), so gates judge Flux's answer to it */
  written: Map<string, FluxWritten>;
  /** per Flux target: was it Ready before the release (preflight)? A rollback waits for it to be Ready again only then */
  readyBefore: Map<string, boolean>;
  /**
   * when each Chef target's pin landed on the server (epoch ms, chefPin's landedAt; the workflow's
   * clock before the pin for results without it), so convergence counts only later chef-client runs
   */
  pinnedAt: Map<string, number>;
  /** change index of the canary weight, registered once with the weight from before the release */
  canaryChange?: number;
  /** Git-mode Flux targets: the commit each one made, so its fluxReady gate waits for Flux to apply it */
  gitCommits?: Map<string, GitCommitted>;
  /** every canary weight this release asked for (guarded undo: any of them on the Ingress is this release's) */
  canaryWeights?: number[];
  /** behaviour added after the first releaseV2 (release.ts, features()): off when replaying older releases */
  features: { leases: boolean; guardedUndo: boolean; awaitWrites: boolean; endPhases: boolean; notifyEnd: boolean };
}

/** The proxy for mutations: awaited on cancellation where the release runs with that rule. */
export const writesOf = (run: Run) => (run.features.awaitWrites ? awaitedWrites : writes);

type Step<K extends PlanStep['kind']> = Extract<PlanStep, { kind: K }>;

/** The message of the failure behind an activity error, for status and history. */
export function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

export async function applyChef(run: Run, index: number, step: Step<'chef'>): Promise<void> {
  const target = run.release.input.spec.spec.chef.find((t) => t.id === step.target)!;
  const previous = await reads.chefSnapshot.executeWithOptions({ summary: `read cookbook pins in ${target.environment}` }, [target]);
  const change = run.release.addChange({ step: index, system: 'chef', target: target.id, summary: step.summary, before: previous, after: target.cookbooks });
  const restoreSummary = `restore ${describePins(previous)} in ${target.environment}`;
  // guarded: restores only cookbooks that still hold what this release wrote (a hand edit since is a conflict)
  const restoreInput = run.features.guardedUndo ? { target, previous, written: target.cookbooks } : { target, previous };
  run.saga.add({
    change,
    summary: restoreSummary,
    run: () => undo.chefRestore.executeWithOptions({ summary: restoreSummary, retry: { maximumAttempts: maxAttempts(run) } }, [restoreInput]),
  });
  run.pinnedAt.set(target.id, epochMs());
  const pinned = await writesOf(run).chefPin.executeWithOptions({ summary: step.summary }, [target]);
  // results recorded before landedAt existed hold only the previous pins: keep the workflow's clock then
  const landedAt = (pinned as Partial<ChefPinResult> | undefined)?.landedAt;
  if (typeof landedAt === 'number') run.pinnedAt.set(target.id, landedAt);
  run.release.updateChange(change, { state: 'applied' });
}

export async function setWeight(run: Run, index: number, step: Step<'setWeight'>): Promise<void> {
  if (run.features.guardedUndo) return setWeightExact(run, index, step);
  const ingress = run.release.input.spec.spec.canary!.ingress;
  if (run.canaryChange === undefined) {
    const { weight: before } = await reads.canarySnapshot.executeWithOptions({ summary: `read canary weight of ${ingress.namespace}/${ingress.name}` }, [ingress]);
    const summary = `canary weight back to ${before ?? 'none'}`;
    run.canaryChange = run.release.addChange({ step: index, system: 'canary', target: `${ingress.namespace}/${ingress.name}`, summary: step.summary, before, after: step.weight });
    run.saga.add({
      change: run.canaryChange,
      summary,
      run: () => undo.setCanaryWeight.executeWithOptions({ summary, retry: { maximumAttempts: maxAttempts(run) } }, [{ ingress, weight: before }]).then(() => undefined),
    });
  } else {
    run.release.updateChange(run.canaryChange, { summary: step.summary, after: step.weight, state: 'applying' });
  }
  await writes.setCanaryWeight.executeWithOptions({ summary: step.summary }, [{ ingress, weight: step.weight }]);
  run.release.updateChange(run.canaryChange, { state: 'applied' });
}

/**
 * The canary weight with an exact undo: the canary annotations (flag, weight, weight total) are
 * read once before the first change and put back exactly as they were, absent stays absent —
 * only while the Ingress still carries a weight this release set (else a conflict).
 */
async function setWeightExact(run: Run, index: number, step: Step<'setWeight'>): Promise<void> {
  const canary = run.release.input.spec.spec.canary!;
  const { ingress } = canary;
  const where = `${ingress.namespace}/${ingress.name}`;
  if (run.canaryChange === undefined) {
    const before = await reads.canaryAnnotations.executeWithOptions({ summary: `read canary annotations of ${where}` }, [ingress]);
    const summary = `canary annotations of ${where} back to ${describeAnnotations(before)}`;
    run.canaryChange = run.release.addChange({ step: index, system: 'canary', target: where, summary: step.summary, before: before.weight === null ? null : Number(before.weight), after: step.weight });
    run.canaryWeights = [];
    run.saga.add({
      change: run.canaryChange,
      summary,
      run: () => undo.canaryRestore.executeWithOptions({ summary, retry: { maximumAttempts: maxAttempts(run) } }, [{ ingress, before, written: run.canaryWeights ?? [] }]),
    });
  } else {
    run.release.updateChange(run.canaryChange, { summary: step.summary, after: step.weight, state: 'applying' });
  }
  run.canaryWeights!.push(step.weight);
  await writesOf(run).setCanaryWeight.executeWithOptions({ summary: step.summary }, [{ ingress, weight: step.weight, weightTotal: canary.weightTotal }]);
  run.release.updateChange(run.canaryChange, { state: 'applied' });
}

function describeAnnotations(a: { canary: string | null; weight: string | null; weightTotal: string | null }): string {
  const show = (v: string | null) => (v === null ? 'absent' : JSON.stringify(v));
  return `canary ${show(a.canary)}, weight ${show(a.weight)}, weight total ${show(a.weightTotal)}`;
}

export async function pause(run: Run, step: Step<'pause'>): Promise<void> {
  const { release } = run;
  if (step.durationMs !== undefined) {
    release.setPhase('Paused', step.summary);
    await sleep(step.durationMs, { summary: step.summary });
    return;
  }
  release.approved = false;
  release.setPhase('AwaitingApproval', step.summary);
  if (step.deadlineMs === undefined) {
    await condition(() => release.approved);
    return;
  }
  const answered = await condition(() => release.approved, step.deadlineMs, { summary: step.summary });
  if (answered) return;
  const note = `nobody answered within ${formatDuration(step.deadlineMs)}: ${step.onTimeout}`;
  release.recordDecision({ command: step.onTimeout === 'abort' ? 'abort' : 'approve', by: 'deadline', via: 'timeout', accepted: true, note });
  if (step.onTimeout === 'abort') throw ApplicationFailure.create({ type: 'ApprovalTimedOut', message: note, nonRetryable: true });
}

/** All gates of a step run side by side; the first to fail cancels the others. */
export async function checkGates(run: Run, index: number, step: Step<'gate'>): Promise<void> {
  run.release.setPhase('Verifying', step.summary);
  const scope = new CancellationScope();
  await scope.run(() =>
    Promise.all(
      step.gates.map((name) =>
        checkGate(run, index, name).catch((err) => {
          scope.cancel();
          throw err;
        }),
      ),
    ),
  );
}

async function checkGate(run: Run, index: number, name: string): Promise<void> {
  const body = run.release.input.spec.spec;
  const g = body.gates[name]!;
  const timing = gateTiming(g);
  const options = {
    summary: gateSummary(name, g),
    startToCloseTimeout: timing.timeoutMs + timing.intervalMs + 60_000,
    heartbeatTimeout: timing.intervalMs + 60_000,
  };
  let result: GateResult;
  try {
    if (g.fluxReady) {
      const target = body.flux.find((t) => t.id === g.fluxReady!.target)!;
      result = isGitMode(target)
        ? await fluxGitGate(run, name, target, timing, options)
        : await gates.fluxReadyGate.executeWithOptions(options, [{ gate: name, target, ...fluxReadyInput(run, target), timeoutMs: timing.timeoutMs, intervalMs: timing.intervalMs }]);
    } else if (g.chefConvergence) {
      const target = body.chef.find((t) => t.id === g.chefConvergence!.target)!;
      // a spec validated before these fields existed lacks them: the activity has the same defaults
      const c = g.chefConvergence;
      result = await gates.chefConvergenceGate.executeWithOptions(options, [
        {
          gate: name,
          target,
          since: run.pinnedAt.get(target.id)!,
          minPercent: c.minPercent,
          ...(c.maxFailed !== undefined ? { maxFailed: c.maxFailed } : {}),
          ...(c.staleAfter ? { staleAfterMs: parseDuration(c.staleAfter)! } : {}),
          ...(c.includeStale !== undefined ? { includeStale: c.includeStale } : {}),
          ...(c.maxClockSkew ? { maxClockSkewMs: parseDuration(c.maxClockSkew)! } : {}),
          ...timing,
        },
      ]);
    } else if (g.rollout) {
      result = await gates.rolloutGate.executeWithOptions(options, [{ gate: name, deployment: g.rollout, ...timing, expect: rolloutExpectation(run, g.rollout) }]);
    } else if (g.http) {
      result = await gates.httpGate.executeWithOptions(options, [{ gate: name, http: { ...g.http, requestTimeoutMs: parseDuration(g.http.requestTimeout)! }, ...timing }]);
    } else {
      result = await gates.prometheusGate.executeWithOptions(options, [{ gate: name, prometheus: g.prometheus!, ...timing }]);
    }
  } catch (err) {
    const details = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? (err.cause.details?.[0] as GateResult | undefined) : undefined;
    if (details?.gate) run.release.recordGate(index, details);
    throw err;
  }
  run.release.recordGate(index, result);
}

function describePins(pins: Record<string, string | null>): string {
  return Object.entries(pins).map(([cb, c]) => `${cb} ${c ?? '(unpinned)'}`).join(', ');
}

const maxAttempts = (run: Run) => run.release.input.spec.spec.rollback.maxAttempts;
