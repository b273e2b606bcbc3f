import type { CheckOutcome } from '../gates/result.ts';
import type { FluxObject } from './resource.ts';

/**
 * Ready=False reasons after which the controller retries by itself without a new request, so they
 * mean "not yet" rather than "failed": a dependency that is still becoming ready, or a
 * reconciliation in progress reported through Ready=False by older controllers.
 */
const TRANSIENT_REASONS = new Set(['Progressing', 'ProgressingWithRetry', 'Reconciling', 'DependencyNotReady']);

export interface FluxObserved {
  generation: number | null;
  observedGeneration: number | null;
  lastHandledReconcileAt: string | null;
  ready: { status: string; reason: string | null; message: string | null } | null;
  revision: string | null;
  helmRelease?: { version: number; status: string | null; chart: string | null } | null;
}

/**
 * Whether a Flux object has finished the reconciliation that the release asked for with `token`:
 * the controller handled this very request (`lastHandledReconcileAt == token`; another token,
 * older or newer, says nothing about this release's change), has seen the current generation, and
 * reports Ready=True — for a HelmRelease, with its newest history entry deployed.
 * Ready=False with a failure reason for this request fails at once, quoting Flux.
 */
export function evaluateFlux(kind: 'Kustomization' | 'HelmRelease', obj: FluxObject, token: string): CheckOutcome {
  const status = obj.status ?? {};
  const generation = obj.metadata.generation ?? null;
  const ready = (status.conditions ?? []).find((c) => c.type === 'Ready');
  const newest = kind === 'HelmRelease' ? newestHistory(status.history) : undefined;
  const observed: FluxObserved = {
    generation,
    observedGeneration: status.observedGeneration ?? null,
    lastHandledReconcileAt: status.lastHandledReconcileAt ?? null,
    ready: ready ? { status: ready.status, reason: ready.reason ?? null, message: ready.message ?? null } : null,
    revision: (kind === 'Kustomization' ? status.lastAppliedRevision : status.lastAttemptedRevision) ?? null,
    ...(kind === 'HelmRelease' ? { helmRelease: newest ? { version: newest.version ?? 0, status: newest.status ?? null, chart: newest.chartVersion ? `${newest.chartName ?? ''}@${newest.chartVersion}` : null } : null } : {}),
  };
  const what = `${kind} ${obj.metadata.namespace}/${obj.metadata.name}`;
  const wait = (reason: string): CheckOutcome => ({ status: 'wait', observed, reason: `${what}: ${reason}` });

  if (status.lastHandledReconcileAt !== token) {
    return wait(`reconcile request ${token} not handled yet (last handled: ${status.lastHandledReconcileAt ?? 'none'})`);
  }
  // A condition or status that speaks for an older generation describes the spec before the
  // release's change.
  const current = (g: number | undefined) => g === undefined || generation === null || g >= generation;
  if (ready?.status === 'False' && ready.reason && !TRANSIENT_REASONS.has(ready.reason) && current(status.observedGeneration) && current(ready.observedGeneration)) {
    return { status: 'fail', observed, reason: `${what}: Ready=False ${ready.reason}: ${ready.message ?? '(no message)'}` };
  }
  if (generation !== null && status.observedGeneration !== generation) {
    return wait(`generation ${generation} not observed yet (observed: ${status.observedGeneration ?? 'none'})`);
  }
  if (ready?.status !== 'True' || !current(ready.observedGeneration)) {
    return wait(ready ? `Ready=${ready.status}${ready.reason ? ` ${ready.reason}` : ''}${ready.message ? `: ${ready.message}` : ''}` : 'no Ready condition yet');
  }
  if (kind === 'HelmRelease') {
    if (!newest) return wait('Ready=True but no Helm release in status.history yet');
    if (newest.status !== 'deployed') return wait(`newest Helm release v${newest.version ?? '?'} is ${newest.status ?? 'in an unknown state'}, not deployed`);
  }
  return {
    status: 'pass',
    observed,
    reason: `${what}: Ready=True ${ready.reason ?? ''}${observed.revision ? ` at ${observed.revision}` : ''}`.replace(/\s+$/, ''),
  };
}

/** Flux keeps history newest first, but order by Helm's release version to not rely on it. */
function newestHistory(history: NonNullable<FluxObject['status']>['history']) {
  let newest: NonNullable<typeof history>[number] | undefined;
  for (const h of history ?? []) if (!newest || (h.version ?? 0) > (newest.version ?? 0)) newest = h;
  return newest;
}
