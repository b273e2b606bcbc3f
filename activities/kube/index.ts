/** Kubernetes activities: Deployment rollout gate and NGINX ingress canary weight. */
import type { GateResult } from '../gates/result.ts';
import { canaryAnnotationsActivity, canaryPreflightActivity, canaryPreflightExactActivity, canaryRestoreActivity, canarySnapshotActivity, setCanaryWeightActivity, type CanaryAnnotations } from './canary.ts';
import { heartbeating } from '../heartbeat.ts';
import { rolloutGateActivity, type RolloutGateInput } from './rollout.ts';
import type { DeploymentRef, IngressRef } from './types.ts';

export type { DeploymentRef, IngressRef } from './types.ts';

export type { RolloutExpectation } from './rollout.ts';
export type { CanaryAnnotations } from './canary.ts';

/** `expect` (optional): what the release produced, so the gate judges that template's rollout. */
export async function rolloutGate(input: RolloutGateInput): Promise<GateResult> {
  return rolloutGateActivity(input);
}

/** weight null: the Ingress has no canary-weight annotation. */
export async function canarySnapshot(ingress: IngressRef): Promise<{ weight: number | null }> {
  return canarySnapshotActivity(ingress);
}

/** weight null removes the canary-weight annotation; weightTotal (not 100) is written as canary-weight-total. Heartbeats; a sent patch is never abandoned. */
export async function setCanaryWeight(input: { ingress: IngressRef; weight: number | null; weightTotal?: number }): Promise<{ previous: number | null }> {
  return heartbeating((beforeWrite) => setCanaryWeightActivity(input, beforeWrite));
}

/** The canary flag, weight and weight total (null = absent): what canaryRestore puts back. */
export async function canaryAnnotations(ingress: IngressRef): Promise<CanaryAnnotations> {
  return canaryAnnotationsActivity(ingress);
}

/** Puts the canary annotations back exactly, unless someone else changed the weight (UndoConflict). */
export async function canaryRestore(input: { ingress: IngressRef; before: CanaryAnnotations; written: number[] }): Promise<void> {
  return canaryRestoreActivity(input);
}

/** canaryPreflight that also refuses the primary Ingress unless allowPrimary. */
export async function canaryPreflightExact(input: { ingress: IngressRef; allowPrimary: boolean }): Promise<void> {
  return canaryPreflightExactActivity(input);
}

export async function canaryPreflight(ingress: IngressRef): Promise<void> {
  return canaryPreflightActivity(ingress);
}
