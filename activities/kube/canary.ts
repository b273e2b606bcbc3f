import { ApplicationFailure } from '@temporalio/activity';
import { PatchStrategy, setHeaderOptions, type V1Ingress } from '@kubernetes/client-node';
import { requireAccess } from './access.ts';
import { enforceKube } from '../../policy/enforce.ts';
import { kubeClients as clientsFor } from './clients.ts';
import { kubeCall } from './errors.ts';
import { readModifyPatch } from './optimistic.ts';
import type { IngressRef } from './types.ts';

export const CANARY = 'nginx.ingress.kubernetes.io/canary';
export const CANARY_WEIGHT = 'nginx.ingress.kubernetes.io/canary-weight';

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
export async function setCanaryWeightActivity(input: { ingress: IngressRef; weight: number | null }): Promise<{ previous: number | null }> {
  const { ingress: ref, weight } = input;
  const clients = kubeClients(ref.context, ref);
  const { previous } = await readModifyPatch({
    op: op(ref, 'patch', clients.context),
    read: () => read(ref),
    plan: (ing) => ({
      patch: {
        metadata: {
          resourceVersion: ing.metadata?.resourceVersion,
          annotations: { [CANARY]: 'true', [CANARY_WEIGHT]: weight === null ? null : String(weight) },
        },
      },
      result: { previous: weightOf(ref, ing) },
    }),
    write: (body) =>
      clients.networking.patchNamespacedIngress(
        { namespace: ref.namespace, name: ref.name, body },
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
