/**
 * Activity proxies with options per kind of work. Only the activities' types are imported:
 * the implementations live in the worker, never in the workflow bundle.
 */
import { ActivityCancellationType, patched, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';

type Acts = typeof activities;

const readOptions = {
  startToCloseTimeout: '1m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 },
} as const;
const remoteReads = proxyActivities<Acts>(readOptions);
const localReads = proxyLocalActivities<Acts>(readOptions);

/**
 * Short reads that run as local activities (issue #17): the worker runs them inside the workflow
 * task that asks for them and records one marker, instead of a round trip through the activity
 * task queue (three events, a dispatch and a workflow task more each). Only calls that answer in a
 * request or two: admission, preflight checks, snapshots. Git reads (a fetch) stay activities.
 * Releases whose history predates the patch replay their recorded activities.
 */
const LOCAL_READS: ReadonlySet<string> = new Set(['admitRelease', 'chefPreflight', 'fluxPreflight', 'canaryPreflight', 'chefSnapshot', 'fluxSnapshot', 'canarySnapshot']);

/** Reads and preflight checks: quick, safe to retry; non-retryable errors (404, 401…) stop at once. */
export const reads: typeof remoteReads = new Proxy(remoteReads, {
  get(remote, name) {
    if (typeof name === 'string' && LOCAL_READS.has(name) && patched('hybrid-release/local-reads')) return (localReads as unknown as typeof remoteReads)[name as keyof Acts];
    return remote[name as keyof Acts];
  },
});

/** Mutations: idempotent, so retrying after a timeout is safe, but bounded so a release fails instead of hanging. */
export const writes = proxyActivities<Acts>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

/**
 * Mutations that cannot outrun their undo: they heartbeat (so an abort reaches them), never
 * abandon a request they sent, and stop between steps when cancelled; the workflow waits until
 * the attempt has ended (WAIT_CANCELLATION_COMPLETED) before it starts the rollback.
 */
export const awaitedWrites = proxyActivities<Acts>({
  startToCloseTimeout: '2m',
  heartbeatTimeout: '20s',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

/** Compensations: the policy's attempts come from spec.rollback (set per call). */
export const undo = proxyActivities<Acts>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

/**
 * Gates poll inside one heartbeating activity until their own deadline; timeouts are set per
 * call from the gate's timeout and interval. A retried attempt resumes the original deadline.
 */
export const gates = proxyActivities<Acts>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
});

/** Webhooks retry inside the activity and never fail; one attempt here is enough. */
export const notifications = proxyActivities<Acts>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 1 },
});
