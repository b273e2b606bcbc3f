/**
 * Leases on the release's shared targets (docs/leases.md): every Chef environment, Flux object and
 * canary Ingress it will change, taken at preflight — before any snapshot — in the one canonical
 * order of their keys, and held through steps, gates and undo until the release closes.
 *
 * A child `leaseKeeper` (parent-close policy REQUEST_CANCEL) gives them up when the release closes,
 * however it closes — terminate included. While a target is held by another release, this release
 * is `Queued` and says what it waits for and who holds it; the wait has a deadline
 * (spec.leases.timeout, default 1h) whose expiry fails the release with nothing changed.
 */
import { ApplicationFailure, CancellationScope, condition, ParentClosePolicy, ChildWorkflowCancellationType, setHandler, startChild, workflowInfo } from '@temporalio/workflow';
import { formatDuration, parseDuration } from '../release-spec/duration.ts';
import { leaseTargets, type LeaseTarget } from '../release-spec/leases.ts';
import { reads } from './activities.ts';
import { leaseGrantedSignal, type LeaseHolder } from './lease-messages.ts';
import { leaseKeeper } from './lease-workflows.ts';
import type { ReleaseState } from './state.ts';
import { epochMs } from './clock.ts';

const DEFAULT_TIMEOUT = '1h';

/** "release-checkout (started 12:01 UTC by the checkout pipeline)" */
export function describeHolder(h: LeaseHolder): string {
  const at = /T(\d\d:\d\d)/.exec(h.startedAt)?.[1];
  const parts = [at ? `started ${at} UTC` : '', h.startedBy ? `by ${h.startedBy}` : ''].filter(Boolean).join(' ');
  return `${h.release}${parts ? ` (${parts})` : ''}`;
}

/** Takes every lease of the release, waiting in the queue where a target is held. */
export async function takeLeases(release: ReleaseState): Promise<void> {
  const targets = leaseTargets(release.input.spec, release.input.plan);
  if (targets.length === 0) return;
  const info = workflowInfo();
  const timeout = release.input.spec.spec.leases?.timeout ?? DEFAULT_TIMEOUT;
  const timeoutMs = parseDuration(timeout)!;
  const granted = new Set<string>();
  setHandler(leaseGrantedSignal, ({ key }) => void granted.add(key));

  // the keeper first: from the first request on, the release's end gives every lease up
  await CancellationScope.nonCancellable(() =>
    startChild(leaseKeeper, {
      workflowId: `${info.workflowId}/leases/${info.runId}`,
      args: [{ taskQueue: info.taskQueue, keys: targets.map((t) => t.key), runId: info.runId }],
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      cancellationType: ChildWorkflowCancellationType.ABANDON,
      staticSummary: `gives up the leases of ${release.status.release} when it closes`,
    }),
  );

  const holder: LeaseHolder = {
    workflowId: info.workflowId,
    runId: info.runId,
    release: release.status.release,
    app: release.status.app,
    startedAt: release.status.startedAt,
    ...(release.input.startedBy ? { startedBy: release.input.startedBy } : {}),
  };
  const started = epochMs();
  for (let i = 0; i < targets.length; ) {
    const rest = targets.slice(i);
    const answer = await reads.requestLeases.executeWithOptions({ summary: `lease ${rest.map((t) => t.label).join(', ')}` }, [{ targets: rest, holder }]);
    i += answer.granted;
    if (!answer.waiting) continue;
    const { target, holder: by } = answer.waiting;
    const waiting = `waiting for ${target.label}, held by ${describeHolder(by)}`;
    release.setWaiting(waiting);
    release.setPhase('Queued', `${release.status.release} is ${waiting}`);
    const left = Math.max(0, timeoutMs - (epochMs() - started));
    const got = await condition(() => granted.has(target.key), left, { summary: waiting });
    release.setWaiting(undefined);
    if (!got) throw leaseTimeout(target, by, timeout);
    release.setPhase('Preflight');
    i++;
  }
  release.status.leases = targets.map((t) => t.label);
}

function leaseTimeout(target: LeaseTarget, holder: LeaseHolder, timeout: string) {
  return ApplicationFailure.create({
    type: 'LeaseTimeout',
    nonRetryable: true,
    message: `waited ${formatDuration(parseDuration(timeout)!)} (spec.leases.timeout) for ${target.label}, held by ${describeHolder(holder)}`,
  });
}
