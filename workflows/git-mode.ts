/**
 * A Flux step in Git mode (docs/git-mode.md): the release commits its change to the repository
 * and branch the Flux source reads, and the fluxReady gate waits for Flux to apply that commit.
 * The undo is a revert-style commit, and the rollback waits for Flux to apply it too, so
 * RolledBack means the cluster runs what Git said before the release.
 *
 * Like every mutating step: the lines as they are now are read and the undo registered before
 * the commit is attempted, so a commit whose answer was lost is still undone (the undo finds it by
 * the change's token in its trailer).
 */
import { workflowInfo } from '@temporalio/workflow';
import type { GitCommitted, GitTarget, ReleaseIdentity } from '../activities/git/index.ts';
import type { GateResult } from '../activities/gates/result.ts';
import type { KustomizeImage } from '../activities/flux/types.ts';
import { gateTiming, type PlanStep } from '../release-spec/plan.ts';
import type { FluxTarget } from '../release-spec/schema.ts';
import { gates, reads, undo, writes } from './activities.ts';
import { waitRolloutsBack } from './flux.ts';
import type { Run } from './steps.ts';

type FluxStep = Extract<PlanStep, { kind: 'flux' }>;

/** Without a fluxReady gate for the target, how long a rollback waits for Flux to apply the revert. */
const REVERT_WAIT = { timeoutMs: 5 * 60_000, intervalMs: 2_000, successes: 1 };

export const isGitMode = (t: FluxTarget): t is FluxTarget & GitTarget => t.git !== undefined;

const where = (t: FluxTarget) => `${t.kind} ${t.namespace}/${t.name}${t.context ? ` (${t.context})` : ''}`;

function releaseIdentity(run: Run): ReleaseIdentity {
  const { metadata, spec } = run.release.input.spec;
  return { name: metadata.name, app: spec.app, ...(spec.version ? { version: spec.version } : {}), ...(run.release.input.startedBy ? { startedBy: run.release.input.startedBy } : {}) };
}

const commits = (run: Run) => (run.gitCommits ??= new Map());

export async function applyFluxGit(run: Run, index: number, step: FluxStep, target: FluxTarget & GitTarget): Promise<void> {
  const path = target.git.path;
  const before = await reads.fluxGitSnapshot.executeWithOptions({ summary: `read ${path} in Git for ${where(target)}` }, [target]);
  // the whole run id: run ids are UUIDv7, whose first characters are a timestamp shared by runs
  // started within the same minute, and this token finds the release's commit on the branch
  const token = `${workflowInfo().workflowId}/${workflowInfo().runId}/${index}`;
  const release = releaseIdentity(run);
  const change = run.release.addChange({
    step: index,
    system: 'flux',
    target: target.id,
    summary: step.summary,
    before: { git: { path, revision: before.revision }, lines: Object.fromEntries(before.fields.map((f) => [f.key, f.value])) },
    after: target.kind === 'Kustomization' ? target.images : target.values,
  });
  const summary = `revert ${path} in Git for ${where(target)}`;
  // the images the revert puts back, so the rollouts back can be told from the released template
  const restoredImages = target.kind === 'Kustomization' ? imagesOf(before.fields) : [];
  run.saga.add({ change, summary, run: () => revertGit(run, index, target, token, release, summary, restoredImages) });
  const committed = await writes.fluxGitCommit.executeWithOptions({ summary: `${step.summary} (commit to ${path})`, startToCloseTimeout: '5m', heartbeatTimeout: '1m' }, [{ target, token, release }]);
  commits(run).set(target.id, committed);
  run.release.updateChange(change, {
    state: 'applied',
    after: {
      ...(target.kind === 'Kustomization' ? { images: target.images } : { values: target.values }),
      git: { path, commit: committed.commit, revision: committed.revision, changed: committed.changed, lines: committed.lines },
    },
  });
}

/** The fluxReady gate of a Git-mode target: Flux applied the release's commit. */
export function fluxGitGate(run: Run, name: string, target: FluxTarget & GitTarget, timing: { timeoutMs: number; intervalMs: number; successes: number }, options: { summary: string; startToCloseTimeout: number; heartbeatTimeout: number }): Promise<GateResult> {
  const committed = commits(run).get(target.id)!;
  return gates.fluxGitReadyGate.executeWithOptions(options, [{ gate: name, target, commit: committed.commit, token: committed.token, source: committed.source, ...timing }]);
}

/**
 * The images Git-mode Kustomizations committed in the cluster of `deployment`: kustomize's images
 * transformer writes exactly those into the template, so a rollout gate waits for that template
 * and never passes on the one from before Flux applied the commit.
 */
export function gitImages(run: Run, deployment: { context?: string }): KustomizeImage[] {
  return run.release.input.spec.spec.flux
    .filter((t) => isGitMode(t) && commits(run).has(t.id) && (t.context ?? '') === (deployment.context ?? ''))
    .flatMap((t) => (t.kind === 'Kustomization' ? t.images : []));
}

/**
 * The compensation: a revert-style commit of exactly the lines the release's commit changed
 * (UndoConflict, naming the commit, when someone changed one since), then the wait for Flux to
 * apply it. A failing wait fails the compensation: RollbackFailed, a person retries or skips.
 */
async function revertGit(run: Run, index: number, target: FluxTarget & GitTarget, token: string, release: ReleaseIdentity, summary: string, restoredImages: KustomizeImage[]): Promise<void> {
  const maximumAttempts = run.release.input.spec.spec.rollback.maxAttempts;
  const undoToken = `${token}/undo`;
  const reverted = await undo.fluxGitRevert.executeWithOptions({ summary, startToCloseTimeout: '5m', heartbeatTimeout: '1m', retry: { maximumAttempts } }, [{ target, token, undoToken, release }]);
  if (reverted.reverted === undefined) return; // the release's commit never reached the branch
  // a target that was not Ready before the release is restored without the wait (as in live mode)
  if (run.readyBefore.get(target.id) === false) return;
  const spec = run.release.input.spec.spec;
  const readyGate = Object.entries(spec.gates).find(([, g]) => g.fluxReady?.target === target.id);
  const timing = readyGate ? gateTiming(readyGate[1]) : REVERT_WAIT;
  const result = await gates.fluxGitReadyGate.executeWithOptions(
    { summary: `wait for Flux to apply the revert of ${target.git.path} (${reverted.commit.slice(0, 12)})`, startToCloseTimeout: timing.timeoutMs + timing.intervalMs + 60_000, heartbeatTimeout: timing.intervalMs + 60_000 },
    [{ gate: `rollback/${readyGate?.[0] ?? target.id}`, target, commit: reverted.commit, token: reverted.token, source: reverted.source, ...timing, successes: 1 }],
  );
  run.release.recordGate(index, result);
  await waitRolloutsBack(run, index, target, restoredImages, { token: undoToken, specChanged: true });
}

/** `spec.images[NAME].newTag` = "2.0.0" … → the images entries as they were before the release. */
function imagesOf(fields: Array<{ key: string; value: unknown }>): KustomizeImage[] {
  const byName = new Map<string, KustomizeImage>();
  for (const f of fields) {
    const m = /images\[(.+)\]\.(newTag|digest|newName)$/.exec(f.key);
    if (!m || typeof f.value !== 'string') continue;
    const entry = byName.get(m[1]!) ?? { name: m[1]! };
    entry[m[2] as 'newTag' | 'digest' | 'newName'] = f.value;
    byName.set(m[1]!, entry);
  }
  return [...byName.values()];
}

export type { GitCommitted };
