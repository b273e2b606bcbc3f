import type { V1Deployment, V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import type { CheckOutcome } from '../gates/result.ts';

/**
 * Whether a Deployment's rollout is complete, decided as `kubectl rollout status` decides it
 * (kubectl/pkg/polymorphichelpers/rollout_status.go), including its messages: the controller must
 * have observed the current generation; Progressing=ProgressDeadlineExceeded is a failure; then
 * all replicas updated, no old replicas left, and all updated replicas available.
 */
export function rolloutStatus(d: V1Deployment): CheckOutcome {
  const name = d.metadata?.name ?? '?';
  const s = d.status ?? {};
  const observed = {
    generation: d.metadata?.generation ?? null,
    observedGeneration: s.observedGeneration ?? null,
    replicas: d.spec?.replicas ?? null,
    updatedReplicas: s.updatedReplicas ?? 0,
    statusReplicas: s.replicas ?? 0,
    availableReplicas: s.availableReplicas ?? 0,
  };
  const wait = (reason: string): CheckOutcome => ({ status: 'wait', observed, reason });
  if ((d.metadata?.generation ?? 0) > (s.observedGeneration ?? 0)) {
    return wait('Waiting for deployment spec update to be observed...');
  }
  const progressing = (s.conditions ?? []).find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return { status: 'fail', observed, reason: `deployment "${name}" exceeded its progress deadline${progressing.message ? `: ${progressing.message}` : ''}` };
  }
  const want = d.spec?.replicas;
  if (want !== undefined && observed.updatedReplicas < want) {
    return wait(`Waiting for deployment "${name}" rollout to finish: ${observed.updatedReplicas} out of ${want} new replicas have been updated...`);
  }
  if (observed.statusReplicas > observed.updatedReplicas) {
    return wait(`Waiting for deployment "${name}" rollout to finish: ${observed.statusReplicas - observed.updatedReplicas} old replicas are pending termination...`);
  }
  if (observed.availableReplicas < observed.updatedReplicas) {
    return wait(`Waiting for deployment "${name}" rollout to finish: ${observed.availableReplicas} of ${observed.updatedReplicas} updated replicas are available...`);
  }
  return { status: 'pass', observed, reason: `deployment "${name}" successfully rolled out` };
}

/**
 * Whether the released image is what runs: the pod template's container (the named one, or any
 * container when none is named) has the expected image, and every live pod of the Deployment
 * has it in its spec. A mismatch is "not yet" — Flux may not have applied the new revision yet,
 * or old pods are still terminating — and the gate's deadline turns a lasting one into a failure.
 */
export function imageStatus(d: V1Deployment, pods: V1Pod[], expected: { image: string; container?: string }): CheckOutcome {
  const pick = (containers: Array<{ name: string; image?: string }> | undefined) =>
    (containers ?? []).filter((c) => expected.container === undefined || c.name === expected.container);
  const name = d.metadata?.name ?? '?';
  const which = expected.container ? `container "${expected.container}"` : 'any container';
  const template = pick(d.spec?.template.spec?.containers);
  if (expected.container && template.length === 0) {
    return { status: 'fail', observed: null, reason: `deployment "${name}" has no container "${expected.container}" (containers: ${(d.spec?.template.spec?.containers ?? []).map((c) => c.name).join(', ')})` };
  }
  if (!template.some((c) => c.image === expected.image)) {
    return { status: 'wait', observed: { template: template.map((c) => c.image) }, reason: `deployment "${name}" template runs ${template.map((c) => c.image).join(', ')} in ${which}, not ${expected.image} yet` };
  }
  const live = pods.filter((p) => !p.metadata?.deletionTimestamp);
  const stale = live.filter((p) => !pick(p.spec?.containers).some((c) => c.image === expected.image));
  const observed = { template: expected.image, pods: live.length, stalePods: stale.map((p) => p.metadata?.name) };
  if (stale.length) {
    return { status: 'wait', observed, reason: `${stale.length} of ${live.length} pods of deployment "${name}" do not run ${expected.image} yet (${stale.slice(0, 3).map((p) => p.metadata?.name).join(', ')})` };
  }
  return { status: 'pass', observed, reason: `deployment "${name}" runs ${expected.image} in ${live.length} pods` };
}

/** A label selector as the `labelSelector` query string. */
export function selectorString(sel: V1LabelSelector | undefined): string {
  const parts = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    const values = (e.values ?? []).join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}
