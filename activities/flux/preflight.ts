import { ApplicationFailure } from '@temporalio/activity';
import { mayRead } from '../../policy/enforce.ts';
import { requireAccess } from '../kube/access.ts';
import { kubeFailure, statusOf } from '../kube/errors.ts';
import type { ImageEntry } from './images.ts';
import { fluxRef, getFlux, type FluxObject, type FluxRef } from './resource.ts';
import type { FluxTarget } from './types.ts';
import { pathProblem } from './values.ts';

export const FLUX_PREFLIGHT = 'FluxPreflightFailed';

const refuse = (target: FluxTarget, why: string) =>
  ApplicationFailure.create({
    type: FLUX_PREFLIGHT,
    nonRetryable: true,
    message: `${target.kind} ${target.namespace}/${target.name}${target.context ? ` (context ${target.context})` : ''}: ${why}`,
  });

/**
 * Before anything changes: the worker may get and patch the object, it exists, it is not
 * suspended (a suspended object is never reconciled, so the wait could only time out), and what
 * the release names can take effect — images that the Kustomization uses, values paths that lead
 * through maps.
 */
export async function preflightFlux(target: FluxTarget): Promise<{ generation: number; suspended: false }> {
  const ref = fluxRef(target);
  await requireAccess(ref.clients, { group: ref.info.group, resource: ref.info.plural, namespace: target.namespace, name: target.name, verbs: ['get', 'patch'] });
  const obj = await getFlux(ref);
  if (obj.spec?.suspend === true) {
    throw refuse(target, 'is suspended (spec.suspend: true), so Flux would not reconcile the release; resume it (`flux resume`) or remove it from the release');
  }
  if (target.kind === 'Kustomization') {
    const unresolved = await unresolvedImages(ref, obj, target.images.map((i) => i.name), target.context);
    if (unresolved.length) {
      const known = ((obj.spec?.images ?? []) as ImageEntry[]).map((e) => String(e.name));
      throw refuse(
        target,
        `image${unresolved.length > 1 ? 's' : ''} ${unresolved.map((n) => `"${n}"`).join(', ')} not found: no spec.images entry ` +
          `(entries: ${known.join(', ') || 'none'}) and no Deployment in the Kustomization's inventory runs ${unresolved.length > 1 ? 'them' : 'it'}; check the image name (repository without tag)`,
      );
    }
  } else {
    for (const { path } of target.values) {
      const problem = pathProblem(obj.spec?.values, path);
      if (problem) throw refuse(target, `values path ${problem}`);
    }
  }
  return { generation: obj.metadata.generation ?? 0, suspended: false };
}

/** Repository part of an image reference: without digest and tag. */
export function imageRepository(image: string): string {
  const noDigest = image.split('@')[0]!;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/**
 * An image name resolves when the Kustomization already has a spec.images entry for it, or when
 * a Deployment it applied (its status.inventory) runs that image. Other workload kinds are not
 * looked into (the worker's role reads Deployments only); give such images an entry first.
 */
async function unresolvedImages(ref: FluxRef, obj: FluxObject, names: string[], context?: string): Promise<string[]> {
  const entries = new Set(((obj.spec?.images ?? []) as ImageEntry[]).map((e) => e.name));
  let missing = names.filter((n) => !entries.has(n));
  if (!missing.length) return [];
  for (const entry of obj.status?.inventory?.entries ?? []) {
    // Inventory ids are namespace_name_group_kind.
    const [namespace, name, group, kind] = entry.id.split('_');
    if (kind !== 'Deployment' || group !== 'apps' || !namespace || !name) continue;
    // only namespaces the worker's policy lets this app into (the worker's Roles end there too)
    if (!mayRead(namespace, context)) continue;
    try {
      const deployment = await ref.clients.apps.readNamespacedDeployment({ namespace, name });
      const images = new Set((deployment.spec?.template.spec?.containers ?? []).concat(deployment.spec?.template.spec?.initContainers ?? []).map((c) => imageRepository(c.image ?? '')));
      missing = missing.filter((n) => !images.has(n));
      if (!missing.length) return [];
    } catch (err) {
      if (statusOf(err) !== 404) throw kubeFailure(err, { verb: 'get', resource: 'deployments.apps', namespace, name, context: ref.clients.context });
    }
  }
  return missing;
}
