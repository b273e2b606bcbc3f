/**
 * The fluxReady gate in Git mode: passes when Flux applied the release's commit.
 *
 * 1. The applier Kustomization's `status.lastAppliedRevision` must reach the commit: be it, or a
 *    later commit of the branch that contains it (another release or a person may push after
 *    this one, and Flux then applies both at once). kustomize-controller sets lastAppliedRevision
 *    only after the apply and its health checks succeeded.
 * 2. When the applier is not the target (the target's manifest is applied by a parent, or the
 *    target is a HelmRelease), the target must then be Ready for the generation the parent's
 *    apply produced — the child Kustomization's health checks, the Helm upgrade.
 *
 * It fails at once, quoting Flux, when Flux tried the commit (lastAttemptedRevision reaches it)
 * and reports Ready=False for a reason it does not retry by itself, or when the target fails its
 * own reconcile of the new spec. For that, once the parent applied the commit, the gate asks the
 * target to reconcile with the change's token (`reconcile.fluxcd.io/requestedAt`): a failure
 * counts only from a reconcile that handled that request (evaluateFlux), never from one of the
 * previous spec still finishing — the race of a rollback right after a failed release. Ancestry is decided by git in the worker's copy
 * of the repository (fetched when Flux reports a commit it has not seen yet).
 */
import { pollGate } from '../gates/poll.ts';
import type { CheckOutcome, GateResult } from '../gates/result.ts';
import { evaluateFlux } from '../flux/readiness.ts';
import { REQUESTED_AT, fluxOp, fluxRef, getFlux, mergePatchFlux, type FluxCondition, type FluxObject } from '../flux/resource.ts';
import { kubeCall } from '../kube/errors.ts';
import type { GitAuth } from './cli.ts';
import type { GitTarget } from './change.ts';
import { pushAuth } from './credentials.ts';
import { Repository } from './repository.ts';
import { commitOfRevision, getKustomization, type ObjectRef } from './source.ts';

export interface FluxGitReadyInput {
  gate: string;
  target: GitTarget;
  /** the commit Flux must apply, and where it is (from fluxGitCommit / fluxGitRevert) */
  commit: string;
  /** the change's reconcile token (fluxGitCommit / fluxGitRevert `token`): the target's own request carries it */
  token: string;
  source: { applier: ObjectRef; appliesItself: boolean; url: string; branch: string };
  timeoutMs: number;
  intervalMs: number;
  successes?: number;
}

/** Ready=False reasons after which kustomize-controller retries by itself (see readiness.ts). */
const TRANSIENT = new Set(['Progressing', 'ProgressingWithRetry', 'Reconciling', 'DependencyNotReady', 'ArtifactFailed']);

const describe = (c: FluxCondition | undefined) => (c ? `Ready=${c.status}${c.reason ? ` ${c.reason}` : ''}${c.message ? `: ${c.message}` : ''}` : 'no Ready condition yet');

export async function fluxGitReadyGateActivity(input: FluxGitReadyInput): Promise<GateResult> {
  const { target, commit, source } = input;
  const applierText = `Kustomization ${source.applier.namespace}/${source.applier.name}`;
  let repo: Repository | undefined;
  let auth: GitAuth | undefined;
  const known = new Map<string, boolean>();
  /** Whether `revision`'s commit is the release's commit or has it in its history. */
  const reaches = async (revision: string | undefined): Promise<boolean> => {
    const sha = commitOfRevision(revision);
    if (!sha) return false;
    if (sha === commit) return true;
    if (known.has(sha)) return known.get(sha)!;
    auth ??= await pushAuth(target, source.url);
    repo ??= await Repository.open(source.url, { auth });
    if (!(await repo.hasCommit(sha))) await repo.fetch(source.branch);
    const yes = await repo.isAncestor(commit, sha);
    // only a commit that is known here is remembered: an unknown one may arrive with a later fetch
    if (await repo.hasCommit(sha)) known.set(sha, yes);
    return yes;
  };
  /** The target's generation once the parent applied the commit: what it must report Ready for. */
  let generation: number | undefined;

  return pollGate({ name: input.gate, kind: 'fluxReady' }, { timeoutMs: input.timeoutMs, intervalMs: input.intervalMs, successes: input.successes ?? 1 }, async (): Promise<CheckOutcome> => {
    const applier = await getKustomization(source.applier, target.context);
    const st = applier.status ?? {};
    const ready = st.conditions?.find((c) => c.type === 'Ready');
    const observed = {
      commit,
      applier: applierText,
      lastAppliedRevision: st.lastAppliedRevision ?? null,
      lastAttemptedRevision: st.lastAttemptedRevision ?? null,
      ready: ready ? { status: ready.status, reason: ready.reason ?? null, message: ready.message ?? null } : null,
    };
    const short = commit.slice(0, 12);
    if (applier.spec?.suspend === true) return { status: 'fail', observed, reason: `${applierText} is suspended: Flux will not apply commit ${short}` };
    if (!(await reaches(st.lastAppliedRevision))) {
      if (ready?.status === 'False' && ready.reason && !TRANSIENT.has(ready.reason) && (await reaches(st.lastAttemptedRevision))) {
        return { status: 'fail', observed, reason: `${applierText} failed to apply ${st.lastAttemptedRevision} (which has commit ${short}): ${describe(ready)}` };
      }
      return { status: 'wait', observed, reason: `${applierText}: lastAppliedRevision ${st.lastAppliedRevision ?? 'none'} does not have commit ${short} yet (${describe(ready)})` };
    }
    if (source.appliesItself) {
      return { status: 'pass', observed, reason: `${applierText} applied ${st.lastAppliedRevision} (has commit ${short}): ${describe(ready)}` };
    }
    const ref = fluxRef(target);
    let obj: FluxObject = await getFlux(ref);
    generation ??= obj.metadata.generation;
    if (obj.metadata.annotations?.[REQUESTED_AT] !== input.token && obj.status?.lastHandledReconcileAt !== input.token) {
      obj = await kubeCall(fluxOp(ref, 'patch'), () => mergePatchFlux(ref, { metadata: { annotations: { [REQUESTED_AT]: input.token } } }));
    }
    const outcome = evaluateFlux(target.kind, obj, { token: input.token, generation, specChanged: true });
    const both = { ...observed, target: outcome.observed ?? null };
    if (outcome.status === 'wait') return { status: 'wait', observed: both, reason: `${applierText} applied ${st.lastAppliedRevision}; ${outcome.reason}` };
    if (outcome.status === 'fail') return { status: 'fail', observed: both, reason: `${applierText} applied ${st.lastAppliedRevision}, but ${outcome.reason}` };
    return { status: 'pass', observed: both, reason: `${applierText} applied ${st.lastAppliedRevision} (has commit ${short}); ${outcome.reason}` };
  });
}
