/**
 * The lease workflows (docs/leases.md).
 *
 * `targetLease`: one per shared target (and task queue). It holds one release at a time and a FIFO
 * queue of waiters. A release asks with the `acquire` update (update-with-start, so the first one
 * creates it); a waiter is told with the `leaseGranted` signal when its turn comes. The lease is
 * given up with the `release` signal, sent by the holder's lease keeper. Idle for a while, it ends;
 * its history is kept bounded with continue-as-new.
 *
 * `leaseKeeper`: a child of each release that takes leases, with parent-close policy
 * REQUEST_CANCEL. Temporal cancels it when the release closes — succeeded, failed, cancelled,
 * terminated or timed out — and it then gives up every lease the release held or waited for.
 * A worker crash ends nothing: the release resumes elsewhere and keeps its leases.
 */
import { allHandlersFinished, CancellationScope, condition, continueAsNew, getExternalWorkflowHandle, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import { type AcquireAnswer, acquireLeaseUpdate, leaseGrantedSignal, type LeaseHolder, type LeaseState, leaseStateQuery, leaseWorkflowId, releaseLeaseSignal } from './lease-messages.ts';
import { now } from './clock.ts';

/** An idle lease workflow ends after this long; the next release's update-with-start starts a new one. */
const IDLE_MS = 5 * 60_000;
/** Continue-as-new well before Temporal would suggest it: a lease's history carries only its state. */
const MAX_HISTORY = 2_000;

export async function targetLease(initial: LeaseState): Promise<void> {
  const state: LeaseState = { target: initial.target, queue: [...(initial.queue ?? [])], ...(initial.holder ? { holder: initial.holder } : {}) };
  let changes = 0;

  setHandler(leaseStateQuery, () => state);
  setHandler(acquireLeaseUpdate, (h: LeaseHolder): AcquireAnswer => {
    changes++;
    if (!state.holder) {
      state.holder = { ...h, since: now() };
      return { granted: true };
    }
    if (state.holder.runId === h.runId) return { granted: true };
    let i = state.queue.findIndex((q) => q.runId === h.runId);
    if (i < 0) i = state.queue.push({ ...h }) - 1;
    return { granted: false, holder: state.holder, position: i + 1 };
  });
  setHandler(releaseLeaseSignal, ({ runId }) => {
    changes++;
    state.queue = state.queue.filter((q) => q.runId !== runId);
    if (state.holder?.runId === runId) delete state.holder;
  });

  for (;;) {
    // hand the lease to the next waiter that is still there
    while (!state.holder && state.queue.length > 0) {
      const next = state.queue.shift()!;
      state.holder = { ...next, since: now() };
      try {
        await getExternalWorkflowHandle(next.workflowId, next.runId).signal(leaseGrantedSignal, { key: state.target.key });
      } catch {
        // the waiter has ended (its keeper's release may not have arrived yet): the next one
        if (state.holder?.runId === next.runId) delete state.holder;
      }
    }
    const info = workflowInfo();
    if (info.historyLength > MAX_HISTORY || info.continueAsNewSuggested) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof targetLease>(state);
    }
    const seen = changes;
    const idle = !state.holder && state.queue.length === 0;
    const woke = await condition(() => changes !== seen, idle ? IDLE_MS : undefined);
    if (!woke && !state.holder && state.queue.length === 0) {
      await condition(allHandlersFinished);
      if (!state.holder && state.queue.length === 0) return;
    }
  }
}

export interface LeaseKeeperInput {
  taskQueue: string;
  keys: string[];
  /** the release run whose leases these are */
  runId: string;
}

/** Waits for the release to close (Temporal cancels this child then), and gives its leases up. */
export async function leaseKeeper(input: LeaseKeeperInput): Promise<void> {
  try {
    await CancellationScope.current().cancelRequested;
  } catch (err) {
    if (!isCancellation(err)) throw err;
  }
  await CancellationScope.nonCancellable(() =>
    Promise.all(
      input.keys.map((key) =>
        getExternalWorkflowHandle(leaseWorkflowId(input.taskQueue, key))
          .signal(releaseLeaseSignal, { runId: input.runId })
          .catch(() => undefined), // no lease workflow (it ended idle): nothing to give up
      ),
    ),
  );
}
