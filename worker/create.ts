/**
 * Builds a worker for the release task queue. Shared by the worker process and the tests, so
 * tests run the same registration the service runs.
 */
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import * as activities from '../activities/index.ts';
import { registerPolicy } from '../policy/enforce.ts';
import { policyFromEnv } from '../policy/load.ts';
import type { Policy } from '../policy/schema.ts';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

let bundle: Promise<{ code: string } | { codePath: string }> | undefined;

/**
 * The workflow bundle: HR_WORKFLOW_BUNDLE, a file built ahead of time by worker/bundle.ts (the
 * image does it at build time), or else built once per process (about a second, and webpack's
 * memory stays in the process's RSS: ~200 MiB) and reused by every worker.
 */
export function workflowBundle(): Promise<{ code: string } | { codePath: string }> {
  const prebuilt = process.env.HR_WORKFLOW_BUNDLE;
  bundle ??= prebuilt ? Promise.resolve({ codePath: prebuilt }) : bundleWorkflowCode({ workflowsPath, logger: quietLogger });
  return bundle;
}

export interface CreateWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  /** replace activities, e.g. to inject failures in tests (admission and decision checks stay the real ones) */
  activities?: object;
  /** the policy for this task queue; default: HR_POLICY_FILE, and without it none (every release is refused) */
  policy?: Policy;
  extra?: Partial<WorkerOptions>;
}

export async function createWorker(o: CreateWorkerOptions): Promise<Worker> {
  registerPolicy(o.taskQueue, o.policy ?? policyFromEnv());
  // admission, decisions and leases are the worker's own, also under replaced activities
  const { admitRelease, verifyDecision, requestLeases } = activities;
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace,
    taskQueue: o.taskQueue,
    workflowBundle: await workflowBundle(),
    activities: o.activities ? { ...o.activities, admitRelease, verifyDecision, requestLeases } : activities,
    ...o.extra,
  });
}

/** Drops info and debug logs (the bundler's progress, activities' routine logs); warnings still show. */
export const quietLogger = {
  log() {},
  trace() {},
  debug() {},
  info() {},
  warn(message: string, meta?: unknown) {
    console.warn(message, meta ?? '');
  },
  error(message: string, meta?: unknown) {
    console.error(message, meta ?? '');
  },
};
