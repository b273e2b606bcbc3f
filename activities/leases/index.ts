/**
 * Taking leases on shared targets (docs/leases.md): update-with-start of each target's lease
 * workflow, in the order given (the canonical order the release computed), stopping at the first
 * one held by another release — the release then waits for that lease workflow's grant signal.
 * One activity call takes every free lease in a row: a release that waits for nobody takes all its
 * leases in one round.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WithStartWorkflowOperation } from '@temporalio/client';
import { leaseWorkflowId, type LeaseTarget } from '../../release-spec/leases.ts';
import type { AcquireAnswer, LeaseHolder } from '../../workflows/lease-messages.ts';

export type { LeaseTarget } from '../../release-spec/leases.ts';
export type { LeaseHolder } from '../../workflows/lease-messages.ts';

export interface RequestLeasesResult {
  /** how many of `targets`, from the first, are now held by the release */
  granted: number;
  /** the first target held by someone else; the release is queued for it */
  waiting?: { target: LeaseTarget; holder: LeaseHolder; position: number };
}

export async function requestLeases(input: { targets: LeaseTarget[]; holder: LeaseHolder }): Promise<RequestLeasesResult> {
  const ctx = Context.current();
  const taskQueue = ctx.info.taskQueue;
  let granted = 0;
  for (const target of input.targets) {
    let answer: AcquireAnswer;
    try {
      answer = await ctx.client.workflow.executeUpdateWithStart<(s: unknown) => Promise<void>, AcquireAnswer, [LeaseHolder]>('acquire', {
        args: [input.holder],
        startWorkflowOperation: new WithStartWorkflowOperation('targetLease', {
          workflowId: leaseWorkflowId(taskQueue, target.key),
          taskQueue,
          args: [{ target, queue: [] }],
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      });
    } catch (err) {
      // e.g. the lease workflow was closing as it went idle: the next attempt starts a new one
      throw ApplicationFailure.create({ type: 'LeaseUnavailable', message: `cannot ask for the lease on ${target.label}: ${(err as Error).message}`, cause: err as Error });
    }
    ctx.heartbeat(granted);
    if (!answer.granted) return { granted, waiting: { target, holder: answer.holder, position: answer.position } };
    granted++;
  }
  return { granted };
}
