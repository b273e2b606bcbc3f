/**
 * Flux activities: pin images (Kustomization) or values (HelmRelease) with an exact undo, request
 * a reconcile with the release's own token, and wait for Flux to report that request done.
 */
import type { GateResult } from '../gates/result.ts';
import { fluxReadyGateActivity } from './gate.ts';
import { applyFlux, restoreFlux, snapshotFlux } from './pin.ts';
import { preflightFlux } from './preflight.ts';
import type { FluxPrevious, FluxTarget } from './types.ts';

export type { FluxPrevious, FluxTarget, KustomizeImage } from './types.ts';

export async function fluxPreflight(target: FluxTarget): Promise<{ generation: number; suspended: false }> {
  return preflightFlux(target);
}

/** The entries / values the release is about to change, as they are now (null = absent). */
export async function fluxSnapshot(target: FluxTarget): Promise<FluxPrevious> {
  return snapshotFlux(target);
}

/** Pins and requests a reconcile (`reconcile.fluxcd.io/requestedAt: token`) in one patch; returns what it replaced. */
export async function fluxApply(input: { target: FluxTarget; token: string }): Promise<FluxPrevious> {
  return (await applyFlux(input.target, input.token)).previous;
}

/** Restores exactly (absent removed) and requests a reconcile with `token`. */
export async function fluxRestore(input: { target: FluxTarget; previous: FluxPrevious; token: string }): Promise<void> {
  await restoreFlux(input.target, input.previous, input.token);
}

export async function fluxReadyGate(input: { gate: string; target: FluxTarget; token: string; timeoutMs: number; intervalMs: number }): Promise<GateResult> {
  return fluxReadyGateActivity(input);
}
