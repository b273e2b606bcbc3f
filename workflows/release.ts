/**
 * The release workflow (type `releaseV2`; the first stage's `releaseWorkflow` is frozen in
 * legacy/ for releases that started before the upgrade), in the order a person would write the plan:
 *   1. lease every shared target (in one canonical order, waiting Queued while another release
 *      holds one), then preflight every target (nothing changes if any check fails);
 *   2. run the steps: pin Chef, patch Flux, move canary weight, pause, check gates;
 *   3. on failure or abort, undo every change newest first — only where the target still holds
 *      what the release wrote; if an undo keeps failing or finds someone else's change, wait for a
 *      person to retry or skip it, and say which changes a skip left in place (PartiallyRolledBack);
 *   4. tell the webhooks how it ended before the release closes.
 */
import { ApplicationFailure, CancellationScope, condition, isCancellation, patched, upsertSearchAttributes } from '@temporalio/workflow';
import type { PlanStep, ReleaseInput } from '../release-spec/plan.ts';
import { reads } from './activities.ts';
import { admit } from './admission.ts';
import { installControls } from './controls.ts';
import { takeLeases } from './leases.ts';
import type { ReleaseStatus } from './messages.ts';
import { Saga } from './saga.ts';
import { rollBack, skippedChanges } from './conflicts.ts';
import { SA } from './search-attributes.ts';
import { ReleaseState } from './state.ts';
import { applyFlux, preflightFlux } from './flux.ts';
import { applyChef, checkGates, failureMessage, pause, type Run, setWeight } from './steps.ts';

/**
 * What this run of the workflow does beyond the first releaseV2, decided once at its start so a
 * release recorded before a change replays (and finishes) the way it started.
 */
function features(): Run['features'] {
  return {
    leases: patched('hybrid-release/leases'),
    guardedUndo: patched('hybrid-release/guarded-undo'),
    awaitWrites: patched('hybrid-release/await-write-cancel'),
    endPhases: patched('hybrid-release/end-phases'),
    notifyEnd: patched('hybrid-release/await-final-notify'),
  };
}

export async function releaseV2(request: ReleaseInput): Promise<ReleaseStatus> {
  const on = features();
  const input = await admit(request); // the worker's own validation, plan and policy; a refusal ends Failed, nothing changed
  const release = new ReleaseState(input);
  const run: Run = { release, saga: new Saga(), written: new Map(), readyBefore: new Map(), pinnedAt: new Map(), features: on };
  const finish = (phase: Parameters<ReleaseState['finish']>[0], error?: string) => (on.notifyEnd ? release.finishNotified(phase, error) : release.finish(phase, error));
  const plan = new CancellationScope();
  installControls(release, () => plan.cancel());
  upsertSearchAttributes(searchAttributes(input));

  try {
    await plan.run(async () => {
      await preflight(run);
      await runSteps(run);
    });
  } catch (err) {
    const reason = release.abortRequested || isCancellation(err) ? abortReason(release) : failureMessage(err);
    // nothing registered to undo: nothing was changed, whether it failed or was aborted (while Queued, in Preflight)
    if (run.saga.size === 0 && (!release.abortRequested || on.endPhases)) {
      await finish('Failed', `${reason} (nothing was changed)`);
      throw ApplicationFailure.create({ type: 'ReleaseFailed', message: release.status.error!, nonRetryable: true, details: [release.status] });
    }
    await rollBack(run, reason);
    const skipped = skippedChanges(release);
    if (on.endPhases && skipped.length > 0) {
      release.status.skipped = skipped;
      await finish('PartiallyRolledBack', `${reason}; undo skipped, left in place: ${release.status.skipped.join('; ')}`);
      throw ApplicationFailure.create({ type: 'ReleasePartiallyRolledBack', message: `partially rolled back: ${release.status.error}`, nonRetryable: true, details: [release.status] });
    }
    await finish('RolledBack', reason);
    throw ApplicationFailure.create({ type: 'ReleaseRolledBack', message: `rolled back: ${reason}`, nonRetryable: true, details: [release.status] });
  }
  await finish('Succeeded');
  return release.status;
}

async function preflight(run: Run): Promise<void> {
  const { release } = run;
  release.setPhase('Preflight');
  // every shared target, before any snapshot: waits Queued while another release holds one
  if (run.features.leases) await takeLeases(release);
  const { chef, flux, canary } = release.input.spec.spec;
  const usesCanary = release.input.plan.some((s) => s.kind === 'setWeight');
  const checks = await Promise.allSettled([
    ...chef.map((t) => reads.chefPreflight.executeWithOptions({ summary: `preflight: Chef environment ${t.environment}` }, [t])),
    ...flux.map((t) => preflightFlux(run, t)),
    ...(usesCanary && canary ? [preflightCanary(run, canary)] : []),
  ]);
  const failed = checks.filter((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed.some((f) => isCancellation(f.reason))) throw failed.find((f) => isCancellation(f.reason))!.reason;
  if (failed.length > 0) {
    throw ApplicationFailure.create({ type: 'PreflightFailed', nonRetryable: true, message: `preflight failed: ${failed.map((f) => failureMessage(f.reason)).join('; ')}` });
  }
}

/** The canary Ingress: readable, patchable, and (guarded undo on) not the primary unless the spec allows it. */
function preflightCanary(run: Run, canary: NonNullable<ReleaseInput['spec']['spec']['canary']>): Promise<unknown> {
  const summary = `preflight: canary Ingress ${canary.ingress.namespace}/${canary.ingress.name}`;
  if (!run.features.guardedUndo) return reads.canaryPreflight.executeWithOptions({ summary }, [canary.ingress]);
  return reads.canaryPreflightExact.executeWithOptions({ summary }, [{ ingress: canary.ingress, allowPrimary: canary.allowPrimary ?? false }]);
}

async function runSteps(run: Run): Promise<void> {
  const { release } = run;
  for (const [index, step] of release.input.plan.entries()) {
    if (release.held) {
      release.setPhase('Paused', `held by ${release.status.heldBy}`);
      await condition(() => !release.held);
    }
    release.startStep(index);
    try {
      await runStep(run, index, step);
    } catch (err) {
      release.endStep(index, isCancellation(err) ? 'cancelled' : 'failed');
      throw err;
    }
    release.endStep(index, 'done');
  }
}

function runStep(run: Run, index: number, step: PlanStep): Promise<void> {
  if (step.kind !== 'gate' && step.kind !== 'pause') run.release.setPhase('Applying', step.summary);
  switch (step.kind) {
    case 'chef':
      return applyChef(run, index, step);
    case 'flux':
      return applyFlux(run, index, step);
    case 'setWeight':
      return setWeight(run, index, step);
    case 'pause':
      return pause(run, step);
    case 'gate':
      return checkGates(run, index, step);
  }
}

function abortReason(release: ReleaseState): string {
  const abort = [...release.status.decisions].reverse().find((d) => d.command === 'abort' && d.accepted);
  if (!abort) return 'the workflow was cancelled';
  return `aborted by ${abort.by}${abort.reason ? `: ${abort.reason}` : ''}`;
}

function searchAttributes(input: ReleaseInput) {
  const { metadata, spec } = input.spec;
  const image = spec.flux.flatMap((t) => (t.kind === 'Kustomization' ? t.images.map((i) => i.newTag ?? i.digest) : [])).find(Boolean);
  const constraint = spec.chef.flatMap((t) => Object.values(t.cookbooks))[0];
  return [
    { key: SA.release, value: metadata.name },
    { key: SA.app, value: spec.app },
    { key: SA.phase, value: 'Pending' },
    ...(image ?? spec.version ? [{ key: SA.imageTag, value: (image ?? spec.version)! }] : []),
    ...(constraint ? [{ key: SA.cookbookConstraint, value: constraint }] : []),
  ];
}
