/**
 * Git-mode activities for Flux targets (docs/git-mode.md): the release commits its change to the
 * repository and branch the Flux source reads, asks Flux to reconcile, waits for Flux to apply
 * that commit, and undoes it with a revert-style commit. All idempotent (a commit carries its
 * change's token as a trailer and a retry finds it), every git and API request has a timeout,
 * and commits and pushes heartbeat between attempts.
 */
import type { GateResult } from '../gates/result.ts';
import { commitChange, revertChange, snapshotChange, type GitCommitted, type GitReverted, type GitTarget, type ReleaseIdentity } from './change.ts';
import { fluxGitReadyGateActivity, type FluxGitReadyInput } from './gate.ts';

export type { GitCommitted, GitReverted, GitTarget, ReleaseIdentity } from './change.ts';
export type { FluxGitReadyInput } from './gate.ts';
export type { GitPreflight } from './preflight.ts';

/** The lines the release will change, as they are on the branch now (read-only; for the release's record). */
export async function fluxGitSnapshot(target: GitTarget) {
  return snapshotChange(target);
}

/**
 * Commits the target's images / values to its file on the branch Flux reads (compare-and-swap
 * push, retried when the branch moved), then requests a reconcile of the GitRepository and of the
 * Kustomization that applies the file. Returns the commit and the revision Flux will report.
 */
export async function fluxGitCommit(input: { target: GitTarget; token: string; release: ReleaseIdentity }): Promise<GitCommitted> {
  return commitChange(input);
}

/**
 * The undo of fluxGitCommit: a new commit restoring exactly the lines the release's commit
 * changed; UndoConflict (naming the commit) when someone changed one of them since.
 */
export async function fluxGitRevert(input: { target: GitTarget; token: string; undoToken: string; release: ReleaseIdentity; reason?: string }): Promise<GitReverted> {
  return revertChange(input);
}

/** Waits until the applier's lastAppliedRevision has the commit and the target is Ready for it. */
export async function fluxGitReadyGate(input: FluxGitReadyInput): Promise<GateResult> {
  return fluxGitReadyGateActivity(input);
}
