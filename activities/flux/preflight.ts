import { ApplicationFailure } from '@temporalio/activity';
import { mayRead } from '../../policy/enforce.ts';
import { requireAccess } from '../kube/access.ts';
import { kubeFailure, statusOf } from '../kube/errors.ts';
import type { ImageEntry } from './images.ts';
import { gitOwnership, KUSTOMIZE_MANAGER, SSA_ANNOTATION, type GitOwnership } from './ownership.ts';
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

export interface FluxPreflight {
  generation: number;
  suspended: false;
  /** things that make the Flux gates weaker than they look (see fluxWarnings); absent from old workers */
  warnings?: string[];
  /** Ready=True for the current generation before the release changed anything */
  readyBefore?: boolean;
}

/**
 * Before anything changes: the worker may get and patch the object, it exists, it is not
 * suspended (a suspended object is never reconciled, so the wait could only time out), and what
 * the release names can take effect — images that the Kustomization uses, values paths that lead
 * through maps. Also returns warnings and whether the object was Ready before the release.
 */
export async function preflightFlux(target: FluxTarget): Promise<FluxPreflight> {
  const ref = fluxRef(target);
  await requireAccess(ref.clients, { group: ref.info.group, resource: ref.info.plural, namespace: target.namespace, name: target.name, verbs: ['get', 'patch'] });
  const obj = await getFlux(ref);
  if (obj.spec?.suspend === true) {
    throw refuse(target, 'is suspended (spec.suspend: true), so Flux would not reconcile the release; resume it (`flux resume`) or remove it from the release');
  }
  const ownership = gitOwnership(target, obj);
  if (ownership.owned.length && !ownership.exempt && target.acceptDrift !== true) {
    const fields = ownership.owned.join(', ');
    throw refuse(
      target,
      `${fields} ${ownership.owned.length > 1 ? 'are' : 'is'} applied from Git by Flux Kustomization ${ownership.parent ?? '(a parent)'} ` +
        `(server-side apply, field manager ${KUSTOMIZE_MANAGER}): a live patch would be put back by its next reconcile, after the release said Succeeded. ` +
        `Release it in Git mode (git.path: the file in Git that sets ${fields}), or set acceptDrift: true to patch the live object anyway, ` +
        `or mark the object in Git with ${SSA_ANNOTATION}: IfNotPresent`,
    );
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
  const ready = obj.status?.conditions?.find((c) => c.type === 'Ready');
  const generation = obj.metadata.generation ?? 0;
  return {
    generation,
    suspended: false,
    warnings: [...fluxWarnings(target, obj), ...driftWarnings(target, ownership)],
    readyBefore: ready?.status === 'True' && (ready.observedGeneration ?? obj.status?.observedGeneration ?? 0) >= generation,
  };
}

/**
 * Settings with which Flux's Ready says "applied" rather than "healthy", so a fluxReady gate
 * would pass on pods that never become Ready: a Kustomization with neither `wait` nor
 * `healthChecks`; a HelmRelease whose upgrade does not wait, or has no remediation.
 */
export function fluxWarnings(target: Pick<FluxTarget, 'kind' | 'namespace' | 'name' | 'context'>, obj: FluxObject): string[] {
  const what = `${target.kind} ${target.namespace}/${target.name}${target.context ? ` (context ${target.context})` : ''}`;
  const spec = obj.spec ?? {};
  const out: string[] = [];
  if (target.kind === 'Kustomization') {
    if (spec.wait !== true && !spec.healthChecks?.length && !spec.healthCheckExprs?.length) {
      out.push(`${what} has neither wait nor healthChecks: its Ready=True means Flux applied the manifests, not that the pods are healthy; set spec.wait: true (or healthChecks), or add a rollout gate`);
    }
  } else {
    if (spec.upgrade?.disableWait === true || spec.install?.disableWait === true) {
      out.push(`${what} does not wait (${spec.upgrade?.disableWait ? 'upgrade' : 'install'}.disableWait: true): its Ready=True means Helm applied the chart, not that the pods are healthy; remove disableWait, or add a rollout gate`);
    }
    if (!spec.upgrade?.remediation) {
      out.push(`${what} has no upgrade remediation: helm-controller leaves a failed upgrade in place (only this release's rollback restores the values); set spec.upgrade.remediation (e.g. retries: 1, strategy: rollback)`);
    }
  }
  return out;
}

/** What a live patch of a Git-owned field means, when the spec accepts it (acceptDrift) or the ssa annotation allows it. */
function driftWarnings(target: FluxTarget, own: GitOwnership): string[] {
  if (!own.owned.length) return [];
  const what = `${target.kind} ${target.namespace}/${target.name}`;
  if (own.exempt) return [`${what}: ${own.owned.join(', ')} comes from Git, but the object carries ${own.exempt}: the live patch stays, and Git no longer says what runs`];
  return [`${what}: acceptDrift: ${own.owned.join(', ')} comes from Git (Flux Kustomization ${own.parent ?? '(a parent)'}), whose next reconcile puts the Git value back`];
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
