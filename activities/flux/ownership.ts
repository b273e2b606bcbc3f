/**
 * Is the field a live patch would change applied from Git by a parent Kustomization?
 *
 * kustomize-controller applies what it builds with server-side apply, field manager
 * `kustomize-controller` (its controller name), operation Apply, forcing ownership
 * (fluxcd/pkg/ssa ResourceManager.apply). The API server records in metadata.managedFields which
 * fields each manager set; a field in the kustomize-controller Apply entry is one that Git sets,
 * and the parent's next reconcile (drift detection by server-side dry-run, then apply) puts the
 * Git value back over any live patch — minutes after the release said Succeeded.
 *
 * Two annotations (or labels) on the object change that, as kustomize-controller reads them
 * (kustomization_controller.go, `kustomize.toolkit.fluxcd.io/ssa`, values compared case-insensitively):
 * - `Ignore` on the object in the cluster or in Git: the object is never applied again
 *   (ApplyOptions.ExclusionSelector checks both);
 * - `IfNotPresent` in Git: applied only when missing (IfNotPresentSelector checks the object
 *   from Git, not the live one — so it counts only when the live annotation came from Git, i.e. is
 *   owned by kustomize-controller's Apply entry).
 */
import type { FluxObject } from './resource.ts';
import type { FluxTarget } from './types.ts';

export const KUSTOMIZE_MANAGER = 'kustomize-controller';
export const SSA_ANNOTATION = 'kustomize.toolkit.fluxcd.io/ssa';

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  subresource?: string;
  fieldsV1?: unknown;
}

type Fields = Record<string, unknown>;
const isFields = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Whether fieldsV1 covers `path` (["spec", "values", "image", "tag"]): the field itself, a field
 * below it, or a parent recorded as a whole (a leaf `{}`, e.g. an atomic list or a map set as one
 * value) on the way to it.
 */
export function fieldsCover(fields: unknown, path: string[]): boolean {
  let node: unknown = fields;
  for (const key of path) {
    if (!isFields(node)) return false;
    const next = node[`f:${key}`];
    if (next === undefined) return false;
    if (isFields(next) && Object.keys(next).length === 0) return true;
    node = next;
  }
  return true;
}

/** The fields a live patch of this target changes, as managedFields paths. */
export function patchedPaths(target: FluxTarget): string[][] {
  // spec.images is an atomic list in the Kustomization CRD (no x-kubernetes-list-type): owned whole
  if (target.kind === 'Kustomization') return [['spec', 'images']];
  return target.values.map((v) => ['spec', 'values', ...v.path.split('.')]);
}

export interface GitOwnership {
  /** fields of the patch that kustomize-controller applies from Git, dotted ("spec.values.image.tag") */
  owned: string[];
  /** the parent Kustomization, from the labels kustomize-controller puts on what it applies */
  parent?: string;
  /** why a live patch is safe anyway (the ssa annotation), when it is */
  exempt?: string;
}

const meta = (obj: FluxObject) => obj.metadata as FluxObject['metadata'] & { labels?: Record<string, string>; managedFields?: ManagedFieldsEntry[] };

export function gitOwnership(target: FluxTarget, obj: FluxObject): GitOwnership {
  const m = meta(obj);
  const applies = (m.managedFields ?? []).filter((e) => e.manager === KUSTOMIZE_MANAGER && e.operation === 'Apply' && !e.subresource);
  const owned = patchedPaths(target)
    .filter((p) => applies.some((e) => fieldsCover(e.fieldsV1, p)))
    .map((p) => p.join('.'));
  const labels = m.labels ?? {};
  const parentName = labels['kustomize.toolkit.fluxcd.io/name'];
  const parent = parentName ? `${labels['kustomize.toolkit.fluxcd.io/namespace'] ?? target.namespace}/${parentName}` : undefined;
  const ssa = [m.annotations?.[SSA_ANNOTATION], labels[SSA_ANNOTATION]].filter((v): v is string => !!v);
  let exempt: string | undefined;
  if (ssa.some((v) => v.toLowerCase() === 'ignore')) exempt = `${SSA_ANNOTATION}: Ignore (the parent never applies it again)`;
  else if (ssa.some((v) => v.toLowerCase() === 'ifnotpresent')) {
    const fromGit = applies.some((e) => fieldsCover(e.fieldsV1, ['metadata', 'annotations', SSA_ANNOTATION]) || fieldsCover(e.fieldsV1, ['metadata', 'labels', SSA_ANNOTATION]));
    if (fromGit) exempt = `${SSA_ANNOTATION}: IfNotPresent in Git (the parent applies it only when it is missing)`;
  }
  return { owned, ...(parent ? { parent } : {}), ...(exempt ? { exempt } : {}) };
}
