/**
 * What people and tools can say to a running release, and what it tells them.
 * Imported by the workflow and by the client, so both agree on names and shapes.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { GateResult } from '../activities/gates/result.ts';

export const PHASES = [
  'Pending',
  'Queued', // waiting for a lease on a shared target another release holds (status.waiting says which)
  'Preflight',
  'Applying',
  'Verifying',
  'Paused',
  'AwaitingApproval',
  'Succeeded',
  'Failed', // a preflight check failed: nothing was changed
  'RollingBack',
  'RolledBack',
  'RollbackFailed', // a compensation keeps failing or found a conflict: waits for a person to retry or skip it
  'PartiallyRolledBack', // the rollback ended with undos a person skipped: status.skipped lists the changes left in place
] as const;
export type Phase = (typeof PHASES)[number];
export const FINAL_PHASES: readonly Phase[] = ['Succeeded', 'Failed', 'RolledBack', 'PartiallyRolledBack'];

/**
 * Who asks, and why. A decision counts only with `proof`: an SSH signature by one of `by`'s keys
 * in the worker's policy over this command on this run (see policy/decision.ts); the CLI signs.
 */
export interface Decision {
  by: string;
  reason?: string;
  proof?: {
    /** ISO time of signing */
    at: string;
    /** random, once per decision: a release refuses a nonce it has seen */
    nonce: string;
    /** armored SSH signature (`ssh-keygen -Y sign -n hybrid-release-decision`) */
    signature: string;
  };
}

export const COMMANDS = ['approve', 'abort', 'pause', 'resume', 'retry', 'skip'] as const;
export type Command = (typeof COMMANDS)[number];

export const approveUpdate = defineUpdate<string, [Decision]>('approve');
export const abortUpdate = defineUpdate<string, [Decision]>('abort');
export const pauseUpdate = defineUpdate<string, [Decision]>('pause');
export const resumeUpdate = defineUpdate<string, [Decision]>('resume');
export const retryUpdate = defineUpdate<string, [Decision]>('retry');
export const skipUpdate = defineUpdate<string, [Decision]>('skip');

/** The same commands as signals, for tools that can only signal (no answer comes back). */
export const approveSignal = defineSignal<[Decision]>('approve');
export const abortSignal = defineSignal<[Decision]>('abort');
export const pauseSignal = defineSignal<[Decision]>('pause');
export const resumeSignal = defineSignal<[Decision]>('resume');
export const retrySignal = defineSignal<[Decision]>('retry');
export const skipSignal = defineSignal<[Decision]>('skip');

export const UPDATES = { approve: approveUpdate, abort: abortUpdate, pause: pauseUpdate, resume: resumeUpdate, retry: retryUpdate, skip: skipUpdate } as const;
export const SIGNALS = { approve: approveSignal, abort: abortSignal, pause: pauseSignal, resume: resumeSignal, retry: retrySignal, skip: skipSignal } as const;

export const statusQuery = defineQuery<ReleaseStatus>('status');

export type StepState = 'pending' | 'running' | 'done' | 'failed' | 'cancelled';

export interface StepStatus {
  index: number;
  kind: string;
  summary: string;
  state: StepState;
  startedAt?: string;
  endedAt?: string;
}

/** One change the release made to the world, with what it was before. */
export interface Change {
  step: number;
  /** chef | flux | canary */
  system: string;
  target: string;
  summary: string;
  before: unknown;
  after: unknown;
  state: 'applying' | 'applied' | 'restoring' | 'restored' | 'restore-failed' | 'restore-skipped';
  error?: string;
}

export interface DecisionRecord {
  by: string;
  reason?: string;
  /** fingerprint of the key whose signature the worker verified (SHA256:…) */
  key?: string;
  command: Command;
  at: string;
  via: 'update' | 'signal' | 'timeout';
  accepted: boolean;
  note?: string;
}

export interface ReleaseStatus {
  release: string;
  app: string;
  version?: string;
  phase: Phase;
  startedAt: string;
  endedAt?: string;
  startedBy?: string;
  /** set while a person has paused the release at a step boundary */
  heldBy?: string;
  currentStep?: number;
  steps: StepStatus[];
  changes: Change[];
  gates: (GateResult & { step: number })[];
  decisions: DecisionRecord[];
  /** while Queued: what the release waits for and who holds it */
  waiting?: string;
  /** the shared targets the release holds leases on (docs/leases.md) */
  leases?: string[];
  /** PartiallyRolledBack: the changes whose undo a person skipped (still in place) */
  skipped?: string[];
  /** preflight findings that do not stop the release but weaken a gate (e.g. a Kustomization without wait) */
  warnings?: string[];
  error?: string;
}
