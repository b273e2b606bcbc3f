/**
 * What a release and a target's lease workflow say to each other (docs/leases.md). Imported by
 * the workflows and, for names and shapes only, by the lease activity.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

import type { LeaseTarget } from '../release-spec/leases.ts';

export type { LeaseTarget } from '../release-spec/leases.ts';
export { leaseWorkflowId } from '../release-spec/leases.ts';

/** A release that holds or waits for a lease. */
export interface LeaseHolder {
  workflowId: string;
  runId: string;
  release: string;
  app: string;
  startedBy?: string;
  /** ISO time the release started */
  startedAt: string;
  /** ISO time it got the lease (set by the lease workflow) */
  since?: string;
}

export type AcquireAnswer = { granted: true } | { granted: false; holder: LeaseHolder; position: number };

export interface LeaseState {
  target: LeaseTarget;
  holder?: LeaseHolder;
  /** FIFO */
  queue: LeaseHolder[];
}

/** Asked by a release (update-with-start): granted now, or queued behind `holder`. Idempotent per run. */
export const acquireLeaseUpdate = defineUpdate<AcquireAnswer, [LeaseHolder]>('acquire');
/** Gives the lease up, or leaves the queue (sent by the release's lease keeper when the release ends). */
export const releaseLeaseSignal = defineSignal<[{ runId: string }]>('release');
/** Sent by a lease workflow to the waiter it hands the lease to. */
export const leaseGrantedSignal = defineSignal<[{ key: string }]>('leaseGranted');
export const leaseStateQuery = defineQuery<LeaseState>('lease');

