/** Kubernetes activities: Deployment rollout gate and NGINX ingress canary weight. */
import type { GateResult } from '../gates/result.ts';
import { canaryPreflightActivity, canarySnapshotActivity, setCanaryWeightActivity } from './canary.ts';
import { rolloutGateActivity } from './rollout.ts';
import type { DeploymentRef, IngressRef } from './types.ts';

export type { DeploymentRef, IngressRef } from './types.ts';

export async function rolloutGate(input: { gate: string; deployment: DeploymentRef; timeoutMs: number; intervalMs: number; successes: number }): Promise<GateResult> {
  return rolloutGateActivity(input);
}

/** weight null: the Ingress has no canary-weight annotation. */
export async function canarySnapshot(ingress: IngressRef): Promise<{ weight: number | null }> {
  return canarySnapshotActivity(ingress);
}

/** weight null removes the canary-weight annotation. */
export async function setCanaryWeight(input: { ingress: IngressRef; weight: number | null }): Promise<{ previous: number | null }> {
  return setCanaryWeightActivity(input);
}

export async function canaryPreflight(ingress: IngressRef): Promise<void> {
  return canaryPreflightActivity(ingress);
}
