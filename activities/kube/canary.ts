import { ApplicationFailure } from '@temporalio/activity';
import { PatchStrategy, setHeaderOptions, type V1Ingress } from '@kubernetes/client-node';
import { requireAccess } from './access.ts';
import { enforceKube } from '../../policy/enforce.ts';
import { kubeClients as clientsFor } from './clients.ts';
import { KUBE_DENIED, kubeCall } from './errors.ts';
import { readModifyPatch } from './optimistic.ts';
import type { IngressRef } from './types.ts';
import { FIELD_MANAGER, lastWriter } from '../flux/resource.ts';
import { UNDO_CONFLICT } from '../undo-conflict.ts';

export const CANARY = 'nginx.ingress.kubernetes.io/canary';
export const CANARY_WEIGHT = 'nginx.ingress.kubernetes.io/canary-weight';
export const CANARY_WEIGHT_TOTAL = 'nginx.ingress.kubernetes.io/canary-weight-total';

/** The canary annotations of an Ingress as they are (null = absent): what an exact undo puts back. */
export interface CanaryAnnotations {
  canary: string | null;
  weight: string | null;
  weightTotal: string | null;
}

/** Clients for the canary Ingress, once the worker's policy allows the app to touch it. */
function kubeClients(context: string | undefined, ref?: IngressRef) {
  if (ref) enforceKube({ kind: 'Ingress', namespace: ref.namespace, name: ref.name, ...(ref.context ? { context: ref.context } : {}) });
  return clientsFor(context);
}

const op = (ref: IngressRef, verb: string, context: string) => ({ verb, resource: 'ingresses.networking.k8s.io', namespace: ref.namespace, name: ref.name, context });

function weightOf(ref: IngressRef, ing: V1Ingress): number | null {
  const raw = ing.metadata?.annotations?.[CANARY_WEIGHT];
  if (raw === undefined) return null;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < 0) {
    throw ApplicationFailure.create({
      type: 'CanaryWeightInvalid',
      nonRetryable: true,
      message: `Ingress ${ref.namespace}/${ref.name} has ${CANARY_WEIGHT}: ${JSON.stringify(raw)}, not a whole number; fix the annotation by hand`,
    });
  }
  return n;
}

function read(ref: IngressRef) {
  const clients = kubeClients(ref.context, ref);
  return kubeCall(op(ref, 'get', clients.context), () => clients.networking.readNamespacedIngress({ namespace: ref.namespace, name: ref.name }));
}

export async function canarySnapshotActivity(ref: IngressRef): Promise<{ weight: number | null }> {
  return { weight: weightOf(ref, await read(ref)) };
}

/**
 * Marks the Ingress as the canary and sets its weight (null removes the weight annotation),
 * returning the weight the patch replaced. Optimistic concurrency as for Flux objects, so the
 * returned previous weight is the one actually overwritten.
 */
export async function setCanaryWeightActivity(
  input: { ingress: IngressRef; weight: number | null; weightTotal?: number },
  beforeWrite?: () => void,
): Promise<{ previous: number | null }> {
  const { ingress: ref, weight, weightTotal } = input;
  const clients = kubeClients(ref.context, ref);
  // the weight's scale: written when it is not NGINX's default of 100 (given only by releases that know it)
  const total = weightTotal !== undefined && weightTotal !== 100 && weight !== null ? { [CANARY_WEIGHT_TOTAL]: String(weightTotal) } : {};
  const { previous } = await readModifyPatch({
    op: op(ref, 'patch', clients.context),
    read: () => read(ref),
    ...(beforeWrite ? { beforeWrite } : {}),
    plan: (ing) => ({
      patch: {
        metadata: {
          resourceVersion: ing.metadata?.resourceVersion,
          annotations: { [CANARY]: 'true', [CANARY_WEIGHT]: weight === null ? null : String(weight), ...total },
        },
      },
      result: { previous: weightOf(ref, ing) },
    }),
    write: (body) =>
      clients.networking.patchNamespacedIngress(
        { namespace: ref.namespace, name: ref.name, body, fieldManager: FIELD_MANAGER },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
  });
  return { previous };
}

/** The canary Ingress exists, the worker may get and patch it, and its weight is readable. */
export async function canaryPreflightActivity(ref: IngressRef): Promise<void> {
  const clients = kubeClients(ref.context, ref);
  await requireAccess(clients, { group: 'networking.k8s.io', resource: 'ingresses', namespace: ref.namespace, name: ref.name, verbs: ['get', 'patch'] });
  weightOf(ref, await read(ref));
}

const annotationsOf = (ing: V1Ingress): CanaryAnnotations => {
  const a = ing.metadata?.annotations ?? {};
  const get = (k: string) => (Object.hasOwn(a, k) ? a[k]! : null);
  return { canary: get(CANARY), weight: get(CANARY_WEIGHT), weightTotal: get(CANARY_WEIGHT_TOTAL) };
};

/** The canary flag, weight and weight total as they are (null = absent). */
export async function canaryAnnotationsActivity(ref: IngressRef): Promise<CanaryAnnotations> {
  const ing = await read(ref);
  weightOf(ref, ing); // an unreadable weight is refused here, before anything changes
  return annotationsOf(ing);
}

/**
 * Exact undo of the canary: puts the flag, weight and weight total back exactly as `before`
 * (absent stays absent), only while the Ingress still carries a weight this release set (or
 * already `before`'s). Anything else is someone else's change: an UndoConflict naming the value
 * found and the last writer of the annotations (managedFields), nothing written.
 */
export async function canaryRestoreActivity(input: { ingress: IngressRef; before: CanaryAnnotations; written: number[] }): Promise<void> {
  const { ingress: ref, before, written } = input;
  const clients = kubeClients(ref.context, ref);
  await readModifyPatch({
    op: op(ref, 'patch', clients.context),
    read: () => read(ref),
    plan: (ing) => {
      const now = annotationsOf(ing);
      const ours = now.weight !== null && written.map(String).includes(now.weight) && now.canary === 'true';
      const restored = now.weight === before.weight && now.canary === before.canary && now.weightTotal === before.weightTotal;
      if (restored) return { patch: null, result: {} };
      if (!ours) {
        const who = lastWriter(ing.metadata?.managedFields as never, ['f:metadata', 'f:annotations', `f:${CANARY_WEIGHT}`]);
        throw ApplicationFailure.create({
          type: UNDO_CONFLICT,
          nonRetryable: true,
          message:
            `Ingress ${ref.namespace}/${ref.name}: ${CANARY_WEIGHT} is ${now.weight === null ? '(absent)' : JSON.stringify(now.weight)}${now.canary !== 'true' ? ` and ${CANARY} is ${now.canary === null ? '(absent)' : JSON.stringify(now.canary)}` : ''}, ` +
            `not a weight this release set (${written.join(', ')}) — changed by ${who && !who.startsWith(`${FIELD_MANAGER} `) ? who : 'someone outside this release'}. Not restored: retry after putting it back yourself, or skip to keep what is there`,
          details: [{ conflicts: [{ key: `metadata.annotations[${CANARY_WEIGHT}]`, found: now.weight, wrote: written }], changedBy: who ?? null }],
        });
      }
      return {
        patch: {
          metadata: {
            resourceVersion: ing.metadata?.resourceVersion,
            annotations: { [CANARY]: before.canary, [CANARY_WEIGHT]: before.weight, [CANARY_WEIGHT_TOTAL]: before.weightTotal },
          },
        },
        result: {},
      };
    },
    write: (body) =>
      clients.networking.patchNamespacedIngress(
        { namespace: ref.namespace, name: ref.name, body, fieldManager: FIELD_MANAGER },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
  });
}

/** host + path pairs an Ingress routes */
function routes(ing: V1Ingress): string[] {
  return (ing.spec?.rules ?? []).flatMap((r) => (r.http?.paths ?? []).map((p) => `${r.host ?? '*'}${p.path ?? '/'}`));
}

/**
 * canaryPreflight, and: an Ingress without the canary flag is refused when no other Ingress in its
 * namespace routes one of its host/paths — it is then the primary, and weighting it as a canary
 * would take the app's traffic (unless the spec says canary.allowPrimary).
 */
export async function canaryPreflightExactActivity(input: { ingress: IngressRef; allowPrimary: boolean }): Promise<void> {
  const ref = input.ingress;
  await canaryPreflightActivity(ref);
  if (input.allowPrimary) return;
  const ing = await read(ref);
  if (ing.metadata?.annotations?.[CANARY] === 'true') return;
  const clients = kubeClients(ref.context, ref);
  const mine = new Set(routes(ing));
  let others: V1Ingress[];
  try {
    others = (await kubeCall(op(ref, 'list', clients.context), () => clients.networking.listNamespacedIngress({ namespace: ref.namespace }))).items;
  } catch (err) {
    if (!(err instanceof ApplicationFailure && err.type === KUBE_DENIED)) throw err;
    // least privilege: the worker may get and patch only the Ingresses its policy names
    throw ApplicationFailure.create({
      type: 'CanaryIsPrimary',
      nonRetryable: true,
      message:
        `Ingress ${ref.namespace}/${ref.name} has no ${CANARY} annotation, and the worker may not list Ingresses in ${ref.namespace} to find its primary: ` +
        `mark it as the canary (${CANARY}: "true") or set spec.canary.allowPrimary: true if it really is the one to weight`,
    });
  }
  const primary = others.find((o) => o.metadata?.name !== ref.name && routes(o).some((r) => mine.has(r)));
  if (primary) return;
  throw ApplicationFailure.create({
    type: 'CanaryIsPrimary',
    nonRetryable: true,
    message:
      `Ingress ${ref.namespace}/${ref.name} has no ${CANARY} annotation and no other Ingress in ${ref.namespace} routes its host/paths (${[...mine].join(', ') || 'none'}): ` +
      'it looks like the primary, and weighting it as a canary would move the app\'s traffic. Point spec.canary.ingress at the canary Ingress, or set spec.canary.allowPrimary: true',
  });
}
