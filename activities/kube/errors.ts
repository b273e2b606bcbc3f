import { ApplicationFailure } from '@temporalio/activity';
import { ApiException } from '@kubernetes/client-node';

/** Failure types the workflow can match on. */
export const KUBE_DENIED = 'KubeDenied';
export const KUBE_NOT_FOUND = 'KubeNotFound';
export const KUBE_INVALID = 'KubeInvalid';
export const KUBE_UNAVAILABLE = 'KubeUnavailable';
export const KUBE_CONFLICT = 'KubeConflict';
export const KUBE_PRECONDITION = 'KubePreconditionFailed';

/** What a request was about, so an error can say which object and which verb. */
export interface KubeOp {
  verb: string;
  /** e.g. `kustomizations.kustomize.toolkit.fluxcd.io` */
  resource: string;
  namespace: string;
  name: string;
  context: string;
}

export const describeObject = (op: Pick<KubeOp, 'resource' | 'namespace' | 'name' | 'context'>) =>
  `${op.resource} ${op.namespace}/${op.name} (context ${op.context})`;

/** The HTTP status of a failed API call, or undefined for transport errors. */
export function statusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code = (err as { statusCode?: unknown; code?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

export const isConflict = (err: unknown) => statusOf(err) === 409;

/** The API server's own explanation (a metav1.Status message), when it sent one. */
export function serverMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    if (typeof body === 'string' && body) {
      try {
        const status = JSON.parse(body) as { message?: string };
        if (status.message) return status.message;
      } catch {
        return body.slice(0, 500);
      }
    }
    if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
    return err.message.split('\n')[0] ?? '';
  }
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return [e?.message, e?.cause?.code ?? e?.cause?.message].filter(Boolean).join(': ');
}

/**
 * Turns any error from the API into an ApplicationFailure that tells the workflow whether to retry:
 * 400/401/403/404/415/422 will not get better by retrying and say what to fix; 409/429/5xx and
 * transport errors (refused, reset, timeout) are retryable.
 */
export function kubeFailure(err: unknown, op: KubeOp): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const status = statusOf(err);
  const what = describeObject(op);
  const msg = serverMessage(err);
  const fail = (type: string, message: string, nonRetryable: boolean) =>
    ApplicationFailure.create({ type, message, nonRetryable, cause: err instanceof Error ? err : undefined });

  switch (status) {
    case 401:
      return fail(KUBE_DENIED, `cannot ${op.verb} ${what}: the API server rejected the credentials of context ${op.context} (401): the token or client certificate is invalid or expired; refresh the kubeconfig or ServiceAccount token`, true);
    case 403:
      return fail(KUBE_DENIED, `cannot ${op.verb} ${what}: forbidden (403): ${msg}. Grant the worker "${op.verb}" on ${op.resource} (see deploy/rbac.yaml)`, true);
    case 404:
      return fail(KUBE_NOT_FOUND, `cannot ${op.verb} ${what}: not found (404): check the namespace, name and context in the release spec${msg ? ` (${msg})` : ''}`, true);
    case 400:
    case 415:
    case 422:
      return fail(KUBE_INVALID, `cannot ${op.verb} ${what}: the API server rejected the request as invalid (${status}): ${msg}`, true);
    case 409:
      return fail(KUBE_CONFLICT, `cannot ${op.verb} ${what}: conflict (409), the object kept changing: ${msg}`, false);
    case undefined:
      return fail(KUBE_UNAVAILABLE, `cannot ${op.verb} ${what}: API server unreachable: ${msg}`, false);
    default:
      return fail(KUBE_UNAVAILABLE, `cannot ${op.verb} ${what}: API server answered ${status}: ${msg}`, status < 500 && status !== 429);
  }
}

/** Runs one API call and converts its failure. */
export async function kubeCall<T>(op: KubeOp, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw kubeFailure(err, op);
  }
}
