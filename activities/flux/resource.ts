import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { enforceKube } from '../../policy/enforce.ts';
import { kubeClients, type KubeClients } from '../kube/clients.ts';
import { kubeCall, type KubeOp } from '../kube/errors.ts';
import type { FluxTarget } from './types.ts';

export const REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';

export interface FluxKindInfo {
  group: string;
  version: string;
  plural: string;
}

export const FLUX_KINDS: Record<FluxTarget['kind'], FluxKindInfo> = {
  Kustomization: { group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations' },
  HelmRelease: { group: 'helm.toolkit.fluxcd.io', version: 'v2', plural: 'helmreleases' },
};

/** One metadata.managedFields entry: who last wrote which fields, and when. */
export interface ManagedField {
  manager?: string;
  operation?: string;
  subresource?: string;
  time?: string | Date;
  fieldsV1?: Record<string, unknown>;
}

/** The field manager of every patch the worker sends, so a conflict can tell its writes from others'. */
export const FIELD_MANAGER = 'hybrid-release';

/**
 * Who last wrote the field at `path` (fieldsV1 keys, e.g. ['f:spec', 'f:images']), as the API
 * server recorded it: "kubectl-edit (Update) at 2026-12-02T18:01:02Z", or undefined when unknown.
 */
export function lastWriter(fields: ManagedField[] | undefined, path: string[]): string | undefined {
  const owners = (fields ?? []).filter((f) => {
    if (f.subresource) return false; // status writes are not spec changes
    let node: unknown = f.fieldsV1;
    for (const k of path) {
      if (!node || typeof node !== 'object' || !Object.hasOwn(node, k)) return false;
      node = (node as Record<string, unknown>)[k];
    }
    return true;
  });
  const time = (f: ManagedField) => (f.time instanceof Date ? f.time.toISOString() : (f.time ?? ''));
  owners.sort((a, b) => (time(a) < time(b) ? 1 : time(a) > time(b) ? -1 : 0));
  const o = owners[0];
  if (!o) return undefined;
  return `${o.manager ?? 'an unnamed field manager'}${o.operation ? ` (${o.operation})` : ''}${time(o) ? ` at ${time(o)}` : ''}`;
}

/** The parts of a Flux object these activities read. */
export interface FluxCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  observedGeneration?: number;
}
export interface FluxObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; generation?: number; resourceVersion?: string; annotations?: Record<string, string>; managedFields?: ManagedField[] };
  spec?: {
    suspend?: boolean;
    images?: Array<Record<string, unknown>>;
    values?: Record<string, unknown>;
    /** Kustomization: health-check what it applied */
    wait?: boolean;
    healthChecks?: unknown[];
    healthCheckExprs?: unknown[];
    /** HelmRelease */
    install?: { disableWait?: boolean; remediation?: Record<string, unknown> };
    upgrade?: { disableWait?: boolean; remediation?: Record<string, unknown> };
  };
  status?: {
    observedGeneration?: number;
    lastHandledReconcileAt?: string;
    lastAppliedRevision?: string;
    lastAttemptedRevision?: string;
    conditions?: FluxCondition[];
    history?: Array<{ version?: number; status?: string; chartName?: string; chartVersion?: string }>;
    inventory?: { entries?: Array<{ id: string; v: string }> };
  };
}

/** One Flux object in one cluster: clients plus the coordinates every call needs. */
export interface FluxRef {
  clients: KubeClients;
  info: FluxKindInfo;
  namespace: string;
  name: string;
}

export function fluxRef(target: FluxTarget): FluxRef {
  // every Flux activity resolves its target here: the worker's policy decides first
  enforceKube({ kind: target.kind, namespace: target.namespace, name: target.name, ...(target.context ? { context: target.context } : {}) });
  return { clients: kubeClients(target.context), info: FLUX_KINDS[target.kind], namespace: target.namespace, name: target.name };
}

export function fluxOp(ref: FluxRef, verb: string): KubeOp {
  return { verb, resource: `${ref.info.plural}.${ref.info.group}`, namespace: ref.namespace, name: ref.name, context: ref.clients.context };
}

export function getFlux(ref: FluxRef): Promise<FluxObject> {
  return kubeCall(fluxOp(ref, 'get'), () =>
    ref.clients.customObjects.getNamespacedCustomObject({ ...coords(ref) }),
  ) as Promise<FluxObject>;
}

/**
 * JSON merge patch: custom resources reject strategic merge patch, and without the explicit
 * Content-Type client-node would send a JSON Patch.
 */
export function mergePatchFlux(ref: FluxRef, body: object): Promise<FluxObject> {
  return ref.clients.customObjects.patchNamespacedCustomObject(
    { ...coords(ref), body, fieldManager: FIELD_MANAGER },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  ) as Promise<FluxObject>;
}

const coords = (ref: FluxRef) => ({ group: ref.info.group, version: ref.info.version, plural: ref.info.plural, namespace: ref.namespace, name: ref.name });

/** API path of the collection, for watches. */
export const collectionPath = (ref: FluxRef) => `/apis/${ref.info.group}/${ref.info.version}/namespaces/${ref.namespace}/${ref.info.plural}`;
