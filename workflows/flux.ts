/**
 * The Flux side of a release: pin a target, tell the gates what the release wrote so they judge
 * Flux's answer to this release (not an older one, nor the Deployment as it was), and on rollback
 * wait until Flux applied the restored spec and the rollout back finished — RolledBack means the
 * running state came back, not only the desired state.
 */
import { workflowInfo } from '@temporalio/workflow';
import type { FluxWritten } from '../activities/flux/readiness.ts';
import type { FluxPrevious, KustomizeImage } from '../activities/flux/types.ts';
import type { RolloutExpectation } from '../activities/kube/rollout.ts';
import { gateSummary, gateTiming, type PlanStep } from '../release-spec/plan.ts';
import type { DeploymentRef, FluxTarget } from '../release-spec/schema.ts';
import { gates, reads, undo } from './activities.ts';
import { applyFluxGit, gitImages, isGitMode } from './git-mode.ts';
import { writesOf, type Run } from './steps.ts';

type FluxStep = Extract<PlanStep, { kind: 'flux' }>;

/** Without a fluxReady gate for the target, how long to wait for Flux after a restore. */
const RESTORE_WAIT = { timeoutMs: 5 * 60_000, intervalMs: 2_000, successes: 1 };

const maxAttempts = (run: Run) => run.release.input.spec.spec.rollback.maxAttempts;
const where = (t: FluxTarget) => `${t.kind} ${t.namespace}/${t.name}${t.context ? ` (${t.context})` : ''}`;

/** Preflight of every Flux target: refusals fail the release; warnings and the state before are kept. */
export async function preflightFlux(run: Run, target: FluxTarget): Promise<void> {
  const result = await reads.fluxPreflight.executeWithOptions({ summary: `preflight: ${target.kind} ${target.namespace}/${target.name}` }, [target]);
  run.readyBefore.set(target.id, result.readyBefore !== false);
  for (const w of result.warnings ?? []) run.release.addWarning(w);
}

export async function applyFlux(run: Run, index: number, step: FluxStep): Promise<void> {
  const target = run.release.input.spec.spec.flux.find((t) => t.id === step.target)!;
  // Git mode commits to the repository Flux reads instead of patching the live object (git-mode.ts)
  if (isGitMode(target)) return applyFluxGit(run, index, step, target);
  const previous = await reads.fluxSnapshot.executeWithOptions({ summary: `read ${where(target)}` }, [target]);
  const token = `${workflowInfo().workflowId}/${workflowInfo().runId}/${index}`;
  const change = run.release.addChange({ step: index, system: 'flux', target: target.id, summary: step.summary, before: previous, after: target.kind === 'Kustomization' ? target.images : target.values });
  run.saga.add({ change, summary: `restore ${where(target)}`, run: () => restoreFlux(run, index, target, previous, `${token}/undo`) });
  // until the pin returns, gates know only the token (a retried pin may find its spec in place)
  run.written.set(target.id, { token });
  const { written } = await writesOf(run).fluxPin.executeWithOptions({ summary: step.summary }, [{ target, token }]);
  run.written.set(target.id, written);
  run.release.updateChange(change, { state: 'applied' });
}

/** The fluxReady gate's input for a target: what the release wrote to it. */
export function fluxReadyInput(run: Run, target: FluxTarget): { token: string; generation?: number; specChanged?: boolean } {
  const w = run.written.get(target.id)!;
  return { token: w.token, ...(w.generation !== undefined ? { generation: w.generation } : {}), ...(w.specChanged !== undefined ? { specChanged: w.specChanged } : {}) };
}

const sameContext = (a: { context?: string }, b: { context?: string }) => (a.context ?? '') === (b.context ?? '');

/**
 * What the rollout of `deployment` must show for this release: the images its Kustomization
 * targets in that cluster set, and the Flux targets applied there with what was written to them.
 */
export function rolloutExpectation(run: Run, deployment: DeploymentRef): RolloutExpectation {
  const applied = run.release.input.spec.spec.flux.filter((t) => sameContext(t, deployment) && run.written.has(t.id));
  return {
    // Git-mode Kustomizations committed in that cluster set their images too (kustomize writes exactly those)
    images: [...applied.flatMap((t) => (t.kind === 'Kustomization' ? t.images : [])), ...gitImages(run, deployment)],
    flux: applied.map((t) => ({ target: t, written: run.written.get(t.id)! })),
  };
}

/**
 * The compensation of a Flux step: put the recorded images / values back (a new reconcile
 * request), then wait for Flux to apply that spec and for the rollouts the release gates on in
 * that cluster to come back to the restored template. A target that was not Ready before the
 * release is restored without the wait: its running state did not work before either.
 * A wait that fails fails the compensation (RollbackFailed: a person retries or skips it).
 */
async function restoreFlux(run: Run, index: number, target: FluxTarget, previous: FluxPrevious, token: string): Promise<void> {
  // guarded: only entries that still hold what this release wrote are put back (someone else's change is a conflict)
  const input = run.features.guardedUndo ? { target, previous, token, guard: true } : { target, previous, token };
  const written = await undo.fluxUnpin.executeWithOptions({ summary: `restore ${where(target)}`, retry: { maximumAttempts: maxAttempts(run) } }, [input]);
  if (run.readyBefore.get(target.id) === false) return;
  const spec = run.release.input.spec.spec;
  const readyGate = Object.entries(spec.gates).find(([, g]) => g.fluxReady?.target === target.id);
  const readyTiming = readyGate ? gateTiming(readyGate[1]) : RESTORE_WAIT;
  const flux = await gates.fluxReadyGate.executeWithOptions(
    { summary: `wait for Flux to apply the restored ${where(target)}`, startToCloseTimeout: readyTiming.timeoutMs + readyTiming.intervalMs + 60_000, heartbeatTimeout: readyTiming.intervalMs + 60_000 },
    [{ gate: `rollback/${readyGate?.[0] ?? target.id}`, target, token: written.token, generation: written.generation, specChanged: written.specChanged, timeoutMs: readyTiming.timeoutMs, intervalMs: readyTiming.intervalMs }],
  );
  run.release.recordGate(index, flux);
  // the rollouts back: images the restore put back tell which template is the restored one
  const restoredImages = previous.kind === 'Kustomization' ? Object.values(previous.images).filter((i): i is NonNullable<typeof i> => i !== null) : [];
  await waitRolloutsBack(run, index, target, restoredImages, written);
}

/**
 * After a Flux undo was applied: every rollout gate of the release in the target's cluster waits
 * for the restored template (the restored images tell it; else what Flux says of `written`), for
 * Deployments the target manages. Also used by the Git-mode undo (git-mode.ts).
 */
export async function waitRolloutsBack(run: Run, index: number, target: FluxTarget, restoredImages: KustomizeImage[], written: FluxWritten): Promise<void> {
  const spec = run.release.input.spec.spec;
  for (const [name, g] of Object.entries(spec.gates)) {
    if (!g.rollout || !sameContext(g.rollout, target)) continue;
    const timing = gateTiming(g);
    const result = await gates.rolloutGate.executeWithOptions(
      { summary: `rollback: ${gateSummary(name, g)}`, startToCloseTimeout: timing.timeoutMs + timing.intervalMs + 60_000, heartbeatTimeout: timing.intervalMs + 60_000 },
      [{ gate: `rollback/${name}`, deployment: { ...g.rollout, image: undefined }, ...timing, expect: { images: restoredImages, flux: [{ target, written }], managedOnly: true } }],
    );
    run.release.recordGate(index, result);
  }
}
