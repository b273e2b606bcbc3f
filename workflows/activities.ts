/**
 * Activity proxies with options per kind of work. Only the activities' types are imported:
 * the implementations live in the worker, never in the workflow bundle.
 */
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';

type Acts = typeof activities;

/** Reads and preflight checks: quick, safe to retry; non-retryable errors (404, 401…) stop at once. */
export const reads = proxyActivities<Acts>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 6 },
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
