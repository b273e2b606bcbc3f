/**
 * The policy inside the activities. Whatever schedules an activity on the worker's task queue —
 * the release workflow, a bug in it, or anything else with access to the Temporal namespace — the
 * activity itself checks what it is about to touch against the policy of the app it runs for.
 *
 * The app comes from the workflow id (`release-<app>`), which the Temporal server sets and
 * workflow code cannot change; the admission makes sure a release of app X runs as
 * `release-X`. The policy is the one the worker registered for the activity's task queue.
 * Called outside an activity (tests, scripts calling the functions directly) these checks do not
 * apply: only activities can be reached from a workflow.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { type DestinationGuard, policyDenial } from './net.ts';
import { denyAll, type Policy } from './schema.ts';
import { AppScope, type ChefTargetRef, type KubeObjectRef, type ValueRef } from './scope.ts';

export const POLICY_DENIED = 'PolicyDenied';

const policies = new Map<string, Policy>();

/** The policy for activities on this task queue (createWorker registers the worker's). */
export function registerPolicy(taskQueue: string, policy: Policy): void {
  policies.set(taskQueue, policy);
}

export function policyFor(taskQueue: string): Policy {
  return policies.get(taskQueue) ?? denyAll(`no policy registered for task queue ${taskQueue}`);
}

/** `release-storefront` → `storefront`; anything else → undefined. */
export function appOfWorkflowId(workflowId: string): string | undefined {
  const m = /^release-([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$/.exec(workflowId);
  return m?.[1];
}

export function denied(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: POLICY_DENIED, nonRetryable: true, message: `refused by the worker's policy: ${message}` });
}

function activityInfo() {
  try {
    return Context.current().info;
  } catch {
    return undefined;
  }
}

/** The policy of the app the running activity acts for; undefined outside an activity. */
export function activityScope(): AppScope | undefined {
  const info = activityInfo();
  if (!info) return undefined;
  const id = info.workflowExecution?.workflowId ?? '(no workflow)';
  const app = appOfWorkflowId(id);
  if (!app) throw denied(`the worker acts only for releases (workflow id release-<app>), not for workflow ${JSON.stringify(id)}`);
  return new AppScope(policyFor(info.taskQueue), app);
}

export function enforceKube(target: KubeObjectRef): void {
  const why = activityScope()?.kube(target);
  if (why) throw denied(why);
}

export function enforceChef(target: ChefTargetRef): void {
  const why = activityScope()?.chef(target) ?? [];
  if (why.length) throw denied(why.join('; '));
}

/** Git mode: the repository, branch and file a release is about to commit to. */
export function enforceGit(req: { url: string; branch: string; path: string }): void {
  const why = activityScope()?.git(req);
  if (why) throw denied(why);
}

export function enforceReference(ref: ValueRef): void {
  const why = activityScope()?.reference(ref);
  if (why) throw denied(why);
}

/** Whether the activity may read in this namespace (no refusal: the caller skips what it may not read). */
export function mayRead(namespace: string, context?: string): boolean {
  return activityScope()?.mayRead(namespace, context) ?? true;
}

/** The destination guard of the running activity's app (undefined outside an activity). */
export function destinationGuard(): DestinationGuard | undefined {
  return activityScope()?.guard();
}

/** A refusal by the destination guard, as the ApplicationFailure the activity fails with. */
export function asPolicyFailure(err: unknown): ApplicationFailure | undefined {
  const d = policyDenial(err);
  return d ? denied(d.message) : undefined;
}
