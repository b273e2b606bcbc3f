import { pollGate } from '../gates/poll.ts';
import type { CheckOutcome, GateResult } from '../gates/result.ts';
import { enforceKube } from '../../policy/enforce.ts';
import { kubeClients } from './clients.ts';
import { kubeCall, kubeFailure, statusOf } from './errors.ts';
import { imageStatus, rolloutStatus, selectorString } from './rollout-status.ts';
import type { DeploymentRef } from './types.ts';

export interface RolloutGateInput {
  gate: string;
  deployment: DeploymentRef;
  timeoutMs: number;
  intervalMs: number;
  successes: number;
}

/** The rollout gate: `kubectl rollout status`, plus the optional check of the running image. */
export async function rolloutGateActivity(input: RolloutGateInput): Promise<GateResult> {
  const { deployment: ref } = input;
  enforceKube({ kind: 'Deployment', namespace: ref.namespace, name: ref.name, ...(ref.context ? { context: ref.context } : {}) });
  const clients = kubeClients(ref.context);
  const op = (verb: string, resource: string) => ({ verb, resource, namespace: ref.namespace, name: ref.name, context: clients.context });
  return pollGate({ name: input.gate, kind: 'rollout' }, input, async (): Promise<CheckOutcome> => {
    let d;
    try {
      d = await clients.apps.readNamespacedDeployment({ namespace: ref.namespace, name: ref.name });
    } catch (err) {
      // Flux may create the Deployment with the release it is applying.
      if (statusOf(err) === 404) return { status: 'wait', reason: `deployment ${ref.namespace}/${ref.name} not found (yet) in context ${clients.context}` };
      throw kubeFailure(err, op('get', 'deployments.apps'));
    }
    const rollout = rolloutStatus(d);
    if (rollout.status !== 'pass' || !ref.image) return rollout;
    const pods = await kubeCall(op('list', 'pods'), () =>
      clients.core.listNamespacedPod({ namespace: ref.namespace, labelSelector: selectorString(d.spec?.selector) }),
    );
    const image = imageStatus(d, pods.items, { image: ref.image, container: ref.container });
    return { ...image, observed: { rollout: rollout.observed, image: image.observed }, reason: image.status === 'pass' ? `${rollout.reason}; ${image.reason}` : image.reason };
  });
}
