/**
 * Preflight of a Git-mode target, before anything changes: the source resolves (an applier
 * Kustomization, a GitRepository on a branch over http(s)), nothing on the way is suspended, the
 * worker may request reconciles, the credentials resolve and may push (a dry-run push), and the
 * file on the branch holds the lines to change as existing one-line values.
 */
import { requireAccess } from '../kube/access.ts';
import { kubeClients } from '../kube/clients.ts';
import { FLUX_KINDS } from '../flux/resource.ts';
import type { FluxPreflight } from '../flux/preflight.ts';
import { fluxWarnings } from '../flux/preflight.ts';
import type { ImageEntry } from '../flux/images.ts';
import { asFailure, openTarget, type GitTarget } from './change.ts';
import { refuseGit, resolveSource, revisionOf, underPath } from './source.ts';
import { holdsWant, locateFields } from './yaml-fields.ts';

export interface GitPreflight extends FluxPreflight {
  git: { url: string; branch: string; head: string; revision: string; applier: string; path: string };
}

const readyNow = (obj: { metadata: { generation?: number }; status?: { observedGeneration?: number; conditions?: Array<{ type: string; status: string; observedGeneration?: number }> } }) => {
  const r = obj.status?.conditions?.find((c) => c.type === 'Ready');
  const g = obj.metadata.generation ?? 0;
  return r?.status === 'True' && (r.observedGeneration ?? obj.status?.observedGeneration ?? 0) >= g;
};

export async function preflightGit(target: GitTarget): Promise<GitPreflight> {
  try {
    const clients = kubeClients(target.context);
    const info = FLUX_KINDS[target.kind];
    await requireAccess(clients, { group: info.group, resource: info.plural, namespace: target.namespace, name: target.name, verbs: ['get'] });
    const resolved = await resolveSource(target);
    const { targetObject, applierObject } = resolved;
    await requireAccess(clients, { group: 'kustomize.toolkit.fluxcd.io', resource: 'kustomizations', namespace: resolved.applier.namespace, name: resolved.applier.name, verbs: ['get', 'patch'] });
    await requireAccess(clients, { group: 'source.toolkit.fluxcd.io', resource: 'gitrepositories', namespace: resolved.gitRepository.namespace, name: resolved.gitRepository.name, verbs: ['get', 'patch'] });
    if (targetObject.spec?.suspend === true) {
      throw refuseGit(target, 'is suspended (spec.suspend: true), so Flux would not reconcile the release; resume it (`flux resume`) or remove it from the release');
    }
    if (resolved.kind === 'kustomize' && target.kind === 'Kustomization') {
      const overriding = ((targetObject.spec?.images ?? []) as ImageEntry[]).filter((e) => target.images.some((i) => i.name === e.name)).map((e) => String(e.name));
      if (overriding.length) {
        throw refuseGit(
          target,
          `its spec.images sets ${overriding.join(', ')}, which kustomize-controller puts over the images: entries of ${target.git.path}, so a commit there would not change what runs; ` +
            `release the Kustomization's own manifest instead (git.path: the file with this Kustomization) or remove the entry from spec.images`,
        );
      }
    }
    const { targetObject: _t, applierObject: _a, ...plain } = resolved;
    const { source, repo } = await openTarget(target, plain);
    const head = await repo.fetch(source.branch);
    const text = await repo.readFile(head, target.git.path);
    if (text === null) throw refuseGit(target, `${target.git.path} does not exist on branch ${source.branch} of ${source.url} (at ${head.slice(0, 12)})`);
    const { fields } = locateFields(text, target, target.git.path);
    await repo.checkPush(source.branch, head);

    const warnings = fluxWarnings(target, targetObject);
    if (!underPath(source.applierPath, target.git.path)) {
      warnings.push(`${target.git.path} is outside ${source.applierPath}, the path Kustomization ${source.applier.namespace}/${source.applier.name} builds: the commit reaches the cluster only if that build refers to it`);
    }
    if (fields.every(holdsWant)) warnings.push(`${target.git.path} already holds ${fields.map((f) => `${f.key} ${f.text}`).join(', ')} on ${source.branch}: nothing to commit`);
    return {
      generation: targetObject.metadata.generation ?? 0,
      suspended: false,
      warnings,
      readyBefore: readyNow(targetObject) && readyNow(applierObject),
      git: {
        url: source.url,
        branch: source.branch,
        head,
        revision: revisionOf(source.branch, head),
        applier: `Kustomization ${source.applier.namespace}/${source.applier.name}`,
        path: target.git.path,
      },
    };
  } catch (err) {
    throw asFailure(err, target);
  }
}
