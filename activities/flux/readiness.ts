import type { CheckOutcome } from '../gates/result.ts';
import { REQUESTED_AT, type FluxCondition, type FluxObject } from './resource.ts';

/**
 * Ready=False reasons after which the controller retries by itself without a new request, so they
 * mean "not yet" rather than "failed": a dependency or source artifact that is still becoming
 * ready, or a reconciliation in progress reported through Ready=False by older controllers.
 */
const TRANSIENT_REASONS = new Set(['Progressing', 'ProgressingWithRetry', 'Reconciling', 'DependencyNotReady', 'ArtifactFailed']);

/** What the release wrote to a Flux object, so a gate can tell Flux's answer to it from older ones. */
export interface FluxWritten {
  /** the `reconcile.fluxcd.io/requestedAt` value this release wrote */
  token: string;
  /** metadata.generation of the object right after this release's patch */
  generation?: number;
  /**
   * the patch changed the spec (the generation moved): then any condition that speaks for this
   * generation or a later one comes from a reconcile of a spec that includes this release's change
   */
  specChanged?: boolean;
}

export interface FluxObserved {
  generation: number | null;
  /** the generation this release wrote (what Ready must speak for) */
  releaseGeneration: number | null;
  observedGeneration: number | null;
  lastHandledReconcileAt: string | null;
  ready: { status: string; reason: string | null; message: string | null; observedGeneration: number | null } | null;
  revision: string | null;
  helmRelease?: { version: number; status: string | null; chart: string | null } | null;
}

const describe = (c: FluxCondition) => `${c.type}=${c.status}${c.reason ? ` ${c.reason}` : ''}${c.message ? `: ${c.message}` : ''}`;

/**
 * Whether Flux has finished reconciling the change a release wrote (see FluxWritten). Read
 * against the controllers' sources (fluxcd/pkg/runtime patch + conditions, kustomize-controller
 * 1.7, helm-controller 1.4), three status fields say different things:
 *   - `status.lastHandledReconcileAt` is the `requestedAt` value the object had when the
 *     reconcile that just finished *started* (set from the object read at its start);
 *   - `status.observedGeneration` is the generation that reconcile started with, and
 *     kustomize-controller advances it only when Ready=True (helm-controller not while it retries);
 *   - a condition's `observedGeneration` is the generation when the condition was *written*: a
 *     reconcile of an older spec that ends after the release's patch writes its Ready=False with
 *     the release's generation (seen on this stack: a health check of the previous spec failing
 *     just after a rollback's patch).
 * So:
 * - handled: the reconcile that started with this release's request has finished
 *   (`lastHandledReconcileAt == token`), or one that started with a newer request (someone wrote
 *   another `requestedAt` after this release and it is handled; both carried the release's spec).
 *   Token equality alone is not required: another writer of `requestedAt` (`flux reconcile`, a
 *   Receiver, a second release) cannot starve the gate.
 * - fail, at once and quoting Flux: handled, and Ready=False (a reason the controller does not
 *   retry by itself) or Stalled=True with the condition's observedGeneration >= the release's
 *   generation. For a HelmRelease the request counts as handled only after helm-controller's
 *   remediation ran, so the failure reads e.g. `Ready=False RollbackSucceeded: …; Released=False
 *   UpgradeFailed: …`.
 * - pass: Ready=True for at least the release's generation, with status.observedGeneration (the
 *   generation the successful reconcile started with) at least that too; handled, or the
 *   release's patch changed the spec (then that generation is the release's own); for a
 *   HelmRelease also its newest Helm release deployed.
 * - a suspended object fails: Flux would never apply the change.
 *
 * `written` may be a bare token (legacy callers): the generation is then the object's generation
 * when first checked.
 */
export function evaluateFlux(kind: 'Kustomization' | 'HelmRelease', obj: FluxObject, written: FluxWritten | string): CheckOutcome {
  const w: FluxWritten = typeof written === 'string' ? { token: written } : written;
  const status = obj.status ?? {};
  const generation = obj.metadata.generation ?? null;
  const releaseGeneration = w.generation ?? generation;
  const conditions = status.conditions ?? [];
  const ready = conditions.find((c) => c.type === 'Ready');
  const stalled = conditions.find((c) => c.type === 'Stalled');
  const newest = kind === 'HelmRelease' ? newestHistory(status.history) : undefined;
  const observed: FluxObserved = {
    generation,
    releaseGeneration,
    observedGeneration: status.observedGeneration ?? null,
    lastHandledReconcileAt: status.lastHandledReconcileAt ?? null,
    ready: ready ? { status: ready.status, reason: ready.reason ?? null, message: ready.message ?? null, observedGeneration: ready.observedGeneration ?? null } : null,
    revision: (kind === 'Kustomization' ? status.lastAppliedRevision : status.lastAttemptedRevision) ?? null,
    ...(kind === 'HelmRelease' ? { helmRelease: newest ? { version: newest.version ?? 0, status: newest.status ?? null, chart: newest.chartVersion ? `${newest.chartName ?? ''}@${newest.chartVersion}` : null } : null } : {}),
  };
  const what = `${kind} ${obj.metadata.namespace}/${obj.metadata.name}`;
  const wait = (reason: string): CheckOutcome => ({ status: 'wait', observed, reason: `${what}: ${reason}` });

  if (obj.spec?.suspend === true) {
    return { status: 'fail', observed, reason: `${what} is suspended (spec.suspend: true): Flux will not apply this release until someone resumes it` };
  }

  const annotation = obj.metadata.annotations?.[REQUESTED_AT];
  const lastHandled = status.lastHandledReconcileAt;
  const handledOwn = lastHandled !== undefined && lastHandled === w.token;
  const handledNewer = annotation !== undefined && annotation !== w.token && lastHandled === annotation;
  const handled = handledOwn || handledNewer;
  // a condition speaks for the release's spec when it was written for its generation or a later one
  const forRelease = (c: FluxCondition | undefined) =>
    c !== undefined && (releaseGeneration === null || (c.observedGeneration ?? status.observedGeneration ?? 0) >= releaseGeneration);
  const notHandled = `reconcile request ${w.token} not handled yet (last handled: ${lastHandled ?? 'none'})`;

  if (handled && stalled?.status === 'True' && forRelease(stalled)) {
    return { status: 'fail', observed, reason: `${what}: ${failureText(conditions, stalled, forRelease)}` };
  }
  if (handled && ready?.status === 'False' && forRelease(ready) && !(ready.reason && TRANSIENT_REASONS.has(ready.reason))) {
    return { status: 'fail', observed, reason: `${what}: ${failureText(conditions, ready, forRelease)}` };
  }
  if (ready?.status !== 'True' || !forRelease(ready)) {
    if (!handled) return wait(`${notHandled}; ${ready ? describe(ready) : 'no Ready condition yet'}`);
    if (ready && !forRelease(ready)) return wait(`generation ${releaseGeneration} not reconciled yet (${describe(ready)}, for generation ${ready.observedGeneration ?? status.observedGeneration ?? '?'})`);
    return wait(ready ? describe(ready) : 'no Ready condition yet');
  }
  if (releaseGeneration !== null && (status.observedGeneration ?? 0) < releaseGeneration) {
    return wait(`generation ${releaseGeneration} not observed yet (observed: ${status.observedGeneration ?? 'none'})`);
  }
  if (!handled && w.specChanged !== true) return wait(notHandled);
  if (kind === 'HelmRelease') {
    if (!newest) return wait('Ready=True but no Helm release in status.history yet');
    if (newest.status !== 'deployed') return wait(`newest Helm release v${newest.version ?? '?'} is ${newest.status ?? 'in an unknown state'}, not deployed`);
  }
  return {
    status: 'pass',
    observed,
    reason: `${what}: Ready=True ${ready.reason ?? ''}${observed.revision ? ` at ${observed.revision}` : ''} (generation ${status.observedGeneration})`.replace(/\s+\(/, ' ('),
  };
}

/**
 * The failing condition first, then every other condition that is False (or Stalled True) for the
 * release's generation: for a HelmRelease that is e.g. `Ready=False RollbackSucceeded: …;
 * Released=False UpgradeFailed: …`, for a Kustomization `Ready=False HealthCheckFailed: …`.
 */
function failureText(conditions: FluxCondition[], first: FluxCondition, forRelease: (c: FluxCondition) => boolean): string {
  const others = conditions.filter(
    (c) => c !== first && forRelease(c) && ((c.status === 'False' && c.type !== 'Reconciling') || (c.type === 'Stalled' && c.status === 'True') || (c.type === 'Ready' && c.status === 'False')),
  );
  // Healthy=False repeats (part of) Ready's message in kustomize-controller: leave repeats out
  const said = [first.message ?? ''];
  const parts = [describe(first)];
  for (const c of others) {
    if (c.message && said.some((m) => m.includes(c.message!))) continue;
    said.push(c.message ?? '');
    parts.push(describe(c));
  }
  return parts.join('; ');
}

/** Flux keeps history newest first, but order by Helm's release version to not rely on it. */
function newestHistory(history: NonNullable<FluxObject['status']>['history']) {
  let newest: NonNullable<typeof history>[number] | undefined;
  for (const h of history ?? []) if (!newest || (h.version ?? 0) > (newest.version ?? 0)) newest = h;
  return newest;
}

/** Where a Flux object stands on the release's generation, for gates that follow Flux (rollout). */
export function fluxProgress(obj: FluxObject, written: FluxWritten): 'applied' | 'failed' | 'pending' {
  const outcome = evaluateFlux(obj.kind === 'HelmRelease' ? 'HelmRelease' : 'Kustomization', obj, written);
  return outcome.status === 'pass' ? 'applied' : outcome.status === 'fail' ? 'failed' : 'pending';
}
