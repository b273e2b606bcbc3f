/**
 * Where a Git-mode change goes and who applies it, read from the cluster, never from the spec:
 *
 * - the **applier**: the Flux Kustomization whose `lastAppliedRevision` says the commit is live.
 *   For a kustomize file (`kustomization.yaml`) that the target Kustomization builds, the target
 *   itself; for a manifest of the Flux object (the target Kustomization's or HelmRelease's own
 *   YAML), the parent Kustomization that applied it, named by the labels kustomize-controller puts
 *   on everything it applies (`kustomize.toolkit.fluxcd.io/name`, `…/namespace`);
 * - the **source**: the applier's `spec.sourceRef`, a GitRepository, whose `spec.url` and
 *   `spec.ref.branch` are the repository and branch the release commits to.
 *
 * The worker's policy decides first, for each of them: the target (as every Flux activity), the
 * applier and the GitRepository (kube rules: kinds Kustomization and GitRepository, often in
 * flux-system), and the repository, branch and file (git rules).
 *
 * source-controller reports what it fetched as a revision `<branch>@sha1:<40 hex>` (v1 API), the
 * same string kustomize-controller copies to lastAttemptedRevision / lastAppliedRevision.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { kubeClients } from '../kube/clients.ts';
import { kubeCall } from '../kube/errors.ts';
import { enforceGit, enforceKube } from '../../policy/enforce.ts';
import { FLUX_KINDS, REQUESTED_AT, fluxRef, getFlux, type FluxObject } from '../flux/resource.ts';
import type { FluxTarget } from '../flux/types.ts';
import { fileKindOf, type FileKind } from './yaml-fields.ts';

export const GIT_MODE_REFUSED = 'GitModeRefused';

/** A Flux object named in a message or an activity's input. */
export interface ObjectRef {
  namespace: string;
  name: string;
}

/** Everything a Git-mode activity needs to know about the target's source (serializable). */
export interface GitSource {
  kind: FileKind;
  /** the Kustomization whose lastAppliedRevision must reach the commit */
  applier: ObjectRef;
  /** true when the applier is the target itself (a kustomize file it builds) */
  appliesItself: boolean;
  gitRepository: ObjectRef;
  url: string;
  branch: string;
  /** the applier's spec.path ("./clusters/local"), to warn when the file lies outside it */
  applierPath: string;
}

const LABEL_NAME = 'kustomize.toolkit.fluxcd.io/name';
const LABEL_NAMESPACE = 'kustomize.toolkit.fluxcd.io/namespace';
const GIT_REPOSITORY = { group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'gitrepositories' };

export const refuseGit = (target: Pick<FluxTarget, 'kind' | 'namespace' | 'name'>, why: string) =>
  ApplicationFailure.create({ type: GIT_MODE_REFUSED, nonRetryable: true, message: `${target.kind} ${target.namespace}/${target.name} (Git mode): ${why}` });

interface GitRepositoryObject {
  metadata: { name: string; namespace: string; generation?: number };
  spec?: { url?: string; suspend?: boolean; ref?: { branch?: string; tag?: string; semver?: string; name?: string; commit?: string } };
  status?: { artifact?: { revision?: string }; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> };
}

export function getGitRepository(ref: ObjectRef, context?: string): Promise<GitRepositoryObject> {
  enforceKube({ kind: 'GitRepository', namespace: ref.namespace, name: ref.name, ...(context ? { context } : {}) });
  const clients = kubeClients(context);
  return kubeCall({ verb: 'get', resource: `gitrepositories.${GIT_REPOSITORY.group}`, namespace: ref.namespace, name: ref.name, context: clients.context }, () =>
    clients.customObjects.getNamespacedCustomObject({ ...GIT_REPOSITORY, namespace: ref.namespace, name: ref.name }),
  ) as Promise<GitRepositoryObject>;
}

export function getKustomization(ref: ObjectRef, context?: string): Promise<FluxObject> {
  enforceKube({ kind: 'Kustomization', namespace: ref.namespace, name: ref.name, ...(context ? { context } : {}) });
  return getFlux({ clients: kubeClients(context), info: FLUX_KINDS.Kustomization, namespace: ref.namespace, name: ref.name });
}

/** The applier of the target's file and the GitRepository it reads (see the module comment). */
export async function resolveSource(target: FluxTarget & { git: NonNullable<FluxTarget['git']> }): Promise<GitSource & { targetObject: FluxObject; applierObject: FluxObject }> {
  const kind = fileKindOf(target, target.git.path);
  const targetObject = await getFlux(fluxRef(target));
  let applier: ObjectRef;
  if (kind === 'kustomize') {
    if (target.kind !== 'Kustomization') throw refuseGit(target, `${target.git.path} is a kustomize file, but a HelmRelease's values are in its own manifest: point git.path at the file that holds the HelmRelease`);
    applier = { namespace: target.namespace, name: target.name };
  } else {
    const labels = (targetObject.metadata as { labels?: Record<string, string> }).labels ?? {};
    const name = labels[LABEL_NAME];
    if (!name) {
      throw refuseGit(
        target,
        `no Flux Kustomization applied this object (it has no ${LABEL_NAME} label), so a commit to ${target.git.path} would not reach it; ` +
          `apply it from Git with a parent Kustomization (the flux bootstrap layout)${target.kind === 'Kustomization' ? ", or point git.path at the kustomization.yaml it builds" : ''}, or use live mode`,
      );
    }
    applier = { namespace: labels[LABEL_NAMESPACE] ?? target.namespace, name };
  }
  const applierObject = applier.name === target.name && applier.namespace === target.namespace && target.kind === 'Kustomization' ? targetObject : await getKustomization(applier, target.context);
  const applierText = `Kustomization ${applier.namespace}/${applier.name}`;
  if (applierObject.spec?.suspend === true) throw refuseGit(target, `${applierText}, which applies ${target.git.path}, is suspended: Flux would not apply the commit`);
  const sourceRef = (applierObject.spec as { sourceRef?: { kind?: string; name?: string; namespace?: string } } | undefined)?.sourceRef;
  if (sourceRef?.kind !== 'GitRepository' || !sourceRef.name) {
    throw refuseGit(target, `${applierText} reads from a ${sourceRef?.kind ?? 'missing'} source, not a GitRepository: Git mode commits to the repository Flux reads`);
  }
  const gitRepository = { namespace: sourceRef.namespace ?? applier.namespace, name: sourceRef.name };
  const repo = await getGitRepository(gitRepository, target.context);
  const url = repo.spec?.url ?? '';
  if (!/^https?:\/\//.test(url)) {
    throw refuseGit(target, `GitRepository ${gitRepository.namespace}/${gitRepository.name} reads ${url.replace(/\/\/[^/@]+@/, '//***@') || 'no URL'}: Git mode pushes over http(s) only (ssh is not supported yet)`);
  }
  const ref = repo.spec?.ref ?? {};
  const pinned = (['tag', 'semver', 'name', 'commit'] as const).find((k) => ref[k]);
  if (pinned) {
    throw refuseGit(target, `GitRepository ${gitRepository.namespace}/${gitRepository.name} follows ${pinned} ${JSON.stringify(ref[pinned])}, not a branch: a commit would never reach the cluster`);
  }
  if (repo.spec?.suspend === true) throw refuseGit(target, `GitRepository ${gitRepository.namespace}/${gitRepository.name} is suspended: Flux would not fetch the commit`);
  const branch = ref.branch ?? 'master'; // source-controller's default when spec.ref is empty
  enforceGit({ url, branch, path: target.git.path });
  return {
    kind,
    applier,
    appliesItself: kind === 'kustomize',
    gitRepository,
    url,
    branch,
    applierPath: String((applierObject.spec as { path?: string } | undefined)?.path ?? './'),
    targetObject,
    applierObject,
  };
}

/** The revision string source-controller reports for a commit on a branch. */
export const revisionOf = (branch: string, sha: string) => `${branch}@sha1:${sha}`;

/** The commit of a revision (`main@sha1:<sha>`, or the older `main/<sha>`), or undefined. */
export function commitOfRevision(revision: string | undefined | null): string | undefined {
  if (!revision) return undefined;
  return /(?:@sha1:|\/)([0-9a-f]{40})$/.exec(revision)?.[1];
}

/**
 * `flux reconcile kustomization --with-source`: a `reconcile.fluxcd.io/requestedAt` on the
 * GitRepository (fetch now) and on the applier (apply now). Idempotent: the same token twice is
 * one request.
 */
export async function requestReconcile(source: Pick<GitSource, 'gitRepository' | 'applier'>, token: string, context?: string): Promise<void> {
  const ctx = context ? { context } : {};
  enforceKube({ kind: 'GitRepository', ...source.gitRepository, ...ctx });
  enforceKube({ kind: 'Kustomization', ...source.applier, ...ctx });
  const clients = kubeClients(context);
  const body = { metadata: { annotations: { [REQUESTED_AT]: token } } };
  const patch = (group: string, version: string, plural: string, ref: ObjectRef) =>
    kubeCall({ verb: 'patch', resource: `${plural}.${group}`, namespace: ref.namespace, name: ref.name, context: clients.context }, () =>
      clients.customObjects.patchNamespacedCustomObject({ group, version, plural, namespace: ref.namespace, name: ref.name, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    );
  await patch(GIT_REPOSITORY.group, GIT_REPOSITORY.version, GIT_REPOSITORY.plural, source.gitRepository);
  await patch(FLUX_KINDS.Kustomization.group, FLUX_KINDS.Kustomization.version, FLUX_KINDS.Kustomization.plural, source.applier);
}

/** Whether the file is under the applier's spec.path (a kustomize build there would read it). */
export function underPath(applierPath: string, file: string): boolean {
  const norm = (p: string) => p.replace(/^\.\//, '').replace(/^\.$/, '').replace(/\/+$/, '');
  const dir = norm(applierPath);
  return dir === '' || file === dir || file.startsWith(`${dir}/`);
}
