/**
 * Flux activities: pin images (Kustomization) or values (HelmRelease) with an exact undo, request
 * a reconcile with the release's own token, and wait for Flux to report that request done.
 */
import type { GateResult } from '../gates/result.ts';
import { fluxReadyGateActivity } from './gate.ts';
import { applyFlux, restoreFlux, snapshotFlux } from './pin.ts';
import { preflightGit } from '../git/preflight.ts';
import { preflightFlux, type FluxPreflight } from './preflight.ts';
import type { FluxWritten } from './readiness.ts';
import type { FluxPrevious, FluxTarget } from './types.ts';
import { heartbeating } from '../heartbeat.ts';

export type { FluxPrevious, FluxTarget, KustomizeImage } from './types.ts';
export type { FluxWritten } from './readiness.ts';
export type { FluxPreflight } from './preflight.ts';

/**
 * Access, existence, not suspended, names resolve; returns warnings and whether it was Ready.
 * A Git-mode target (`target.git`) is checked as Git mode (activities/git/preflight.ts); a live
 * one is refused where a parent Kustomization applies the field from Git (see preflightFlux).
 */
export async function fluxPreflight(target: FluxTarget): Promise<FluxPreflight> {
  if (target.git) return preflightGit({ ...target, git: target.git });
  return preflightFlux(target);
}

/** The entries / values the release is about to change, as they are now (null = absent). */
export async function fluxSnapshot(target: FluxTarget): Promise<FluxPrevious> {
  return snapshotFlux(target);
}

/**
 * Pins and requests a reconcile (`reconcile.fluxcd.io/requestedAt: token`) in one patch; returns
 * what it replaced. Kept for the frozen first-stage workflow; releaseV2 calls fluxPin.
 */
export async function fluxApply(input: { target: FluxTarget; token: string }): Promise<FluxPrevious> {
  return (await applyFlux(input.target, input.token)).previous;
}

/**
 * fluxApply that also returns what it wrote (token, the generation its patch produced, whether
 * the spec changed): what the fluxReady and rollout gates wait for.
 */
export async function fluxPin(input: { target: FluxTarget; token: string }): Promise<{ previous: FluxPrevious; written: FluxWritten }> {
  // heartbeats so an abort reaches it; a patch that was sent is never abandoned (docs/rollback.md)
  const { previous, written } = await heartbeating((beforeWrite) => applyFlux(input.target, input.token, { beforeWrite }));
  return { previous, written };
}

/** Restores exactly (absent removed) and requests a reconcile with `token`. Kept for the first-stage workflow. */
export async function fluxRestore(input: { target: FluxTarget; previous: FluxPrevious; token: string }): Promise<void> {
  await restoreFlux(input.target, input.previous, input.token);
}

/**
 * fluxRestore that returns what it wrote, so the release can wait for Flux to apply the restored
 * spec and for the rollout back before it says RolledBack.
 */
export async function fluxUnpin(input: { target: FluxTarget; previous: FluxPrevious; token: string; guard?: boolean }): Promise<FluxWritten> {
  // guard: put back only what still holds the release's values; someone else's change is an UndoConflict
  return restoreFlux(input.target, input.previous, input.token, input.guard ? { guard: true } : {});
}

export async function fluxReadyGate(input: { gate: string; target: FluxTarget; token: string; generation?: number; specChanged?: boolean; timeoutMs: number; intervalMs: number }): Promise<GateResult> {
  return fluxReadyGateActivity(input);
}
