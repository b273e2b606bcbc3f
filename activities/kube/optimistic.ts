import { setTimeout as sleep } from 'node:timers/promises';
import { KUBE_CONFLICT, isConflict, kubeFailure, type KubeOp } from './errors.ts';
import { ApplicationFailure } from '@temporalio/activity';

export interface ReadModifyPatch<T, R> {
  op: KubeOp;
  read: () => Promise<T>;
  /** the merge patch to send (it must carry metadata.resourceVersion), or null when nothing is to change */
  plan: (current: T) => { patch: object | null; result: R };
  write: (patch: object) => Promise<unknown>;
  attempts?: number;
  /** runs after each read; tests use it to change the object between read and patch */
  afterRead?: (attempt: number) => Promise<void>;
  /** right before a patch is sent: throws when the activity was cancelled (never during the patch) */
  beforeWrite?: () => void;
}

/**
 * Read, decide, patch with the resourceVersion that was read: the API server answers 409 if anyone
 * wrote the object in between, and the whole step is redone on the fresh object, so what `plan`
 * returns as "previous" is exactly what the patch replaced. Bounded, then a retryable failure.
 */
export async function readModifyPatch<T, R>(o: ReadModifyPatch<T, R>): Promise<R & { attempts: number }> {
  const attempts = o.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    const current = await o.read();
    await o.afterRead?.(attempt);
    const { patch, result } = o.plan(current);
    if (!patch) return { ...result, attempts: attempt };
    o.beforeWrite?.();
    try {
      await o.write(patch);
      return { ...result, attempts: attempt };
    } catch (err) {
      if (!isConflict(err)) throw kubeFailure(err, o.op);
      if (attempt >= attempts) {
        throw ApplicationFailure.create({
          type: KUBE_CONFLICT,
          nonRetryable: false,
          message: `${o.op.verb} ${o.op.resource} ${o.op.namespace}/${o.op.name}: still conflicting after ${attempts} attempts (someone keeps writing it)`,
          cause: err instanceof Error ? err : undefined,
        });
      }
      await sleep(Math.min(50 * 2 ** attempt, 1000) * (0.5 + Math.random() / 2));
    }
  }
}
