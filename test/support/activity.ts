/**
 * Running an activity outside a worker, in a mock activity context (heartbeats, cancellation),
 * against the real server it talks to; and asserting on the ApplicationFailure it raises.
 */
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/activity';
import { DefaultLogger } from '@temporalio/worker';
import { mockActivityEnv } from './policy.ts';

/** Runs an activity as the worker would for a release of the test app, under the open test policy (support/policy.ts). */
export function runActivity<A, R>(fn: (input: A) => Promise<R>, input: A): Promise<R> {
  // Failures are asserted on; the SDK's "Activity failed" warnings would only be noise.
  return mockActivityEnv({}, { logger: new DefaultLogger('ERROR') }).run(fn, input) as Promise<R>;
}

export async function rejects(p: Promise<unknown>, check: (e: ApplicationFailure) => void): Promise<void> {
  const err = await p.then(
    () => assert.fail('expected a failure'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, `expected ApplicationFailure, got ${String(err)}`);
  check(err);
}
