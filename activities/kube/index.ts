/** Kubernetes activities: Deployment rollout gate and NGINX ingress canary weight. */
import type { GateResult } from '../gates/result.ts';
import { canaryPreflightActivity, canarySnapshotActivity, setCanaryWeightActivity } from './canary.ts';
import { rolloutGateActivity, type RolloutGateInput } from './rollout.ts';
import type { DeploymentRef, IngressRef } from './types.ts';

export type { DeploymentRef, IngressRef } from './types.ts';

export type { RolloutExpectation } from './rollout.ts';

/** `expect` (optional): what the release produced, so the gate judges that template's rollout. */
export async function rolloutGate(input: RolloutGateInput): Promise<GateResult> {
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
