/**
 * Records the event histories that the replay test replays against the current workflow code.
 * Run against a Temporal dev server when the workflow changes on purpose in a way that running
 * releases may see (then guard the change with patched()):
 *   TEMPORAL_ADDRESS=127.0.0.1:7233 node test/histories/record.ts [prefix]
 * Files are named <prefix>-<path>.json (prefix v2 by default). Keep the old files: each set proves
 * that releases started by the code of its day still replay.
 * Histories are recorded against the in-memory world: replay checks the workflow's decisions,
 * which depend only on the activities' results recorded in the history.
 */
import { writeFile } from 'node:fs/promises';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { sendCommand, startRelease } from '../../client/releases.ts';
import { statusQuery } from '../../workflows/messages.ts';
import { fakeActivities, newWorld, worldRelease } from '../support/fake-world.ts';
import { startTestWorker } from '../support/temporal.ts';

const prefix = process.argv[2] ?? 'v2';
const world = newWorld();
const tw = await startTestWorker({ activities: fakeActivities(world) });

const input = (app: string, extra: Record<string, unknown> = {}) =>
  worldRelease(app, {
    canary: { ingress: { namespace: 'web', name: 'storefront-canary' } },
    gates: { 'error-rate': { prometheus: { url: 'http://prom:9090', query: 'x', comparison: '<', threshold: 0.01 }, interval: '1s' } },
    steps: [{ chef: 'production' }, { flux: 'storefront' }, { setWeight: 20 }, { pause: { duration: '1s' } }, { gate: 'error-rate' }, { pause: {} }, { setWeight: 100 }],
    ...extra,
  });

async function until(handle: WorkflowHandle, phase: string) {
  while ((await handle.query(statusQuery)).phase !== phase) await new Promise((r) => setTimeout(r, 100));
}

async function save(name: string, handle: WorkflowHandle) {
  await handle.result().catch((err) => {
    if (!(err instanceof WorkflowFailedError)) throw err;
  });
  // releaseV2's histories carry a v2 prefix; the unprefixed ones are the retired first-stage
  // workflow's, kept so its running releases stay replayable
  const file = new URL(`${prefix}-${name}.json`, import.meta.url);
  // the workflow id travels with the history: child ids (leases) derive from it, so replay needs it
  const history = JSON.parse(historyToJSON(await handle.fetchHistory()));
  await writeFile(file, JSON.stringify({ workflowId: handle.workflowId, history }, null, 2));
  console.log(`recorded ${file.pathname}`);
}

const suffix = Date.now().toString(36);
try {
  world.gateOutcome['error-rate'] = 'pass';
  const approved = await startRelease(tw.client, input(`canary-approved-${suffix}`), { taskQueue: tw.taskQueue });
  await until(approved, 'AwaitingApproval');
  await sendCommand(approved, 'approve', { by: 'alice', reason: 'green' });
  await save('canary-approved', approved);

  const aborted = await startRelease(tw.client, input(`canary-aborted-${suffix}`), { taskQueue: tw.taskQueue });
  await until(aborted, 'AwaitingApproval');
  await sendCommand(aborted, 'abort', { by: 'alice', reason: 'errors' });
  await save('canary-aborted', aborted);

  world.failures.fluxPin = { times: 1, message: 'apply failed' };
  world.failures.chefRestore = { times: 1, message: 'Chef server answered 503' };
  const stuck = await startRelease(tw.client, input(`rollback-retried-${suffix}`, { rollback: { maxAttempts: 1 } }), { taskQueue: tw.taskQueue });
  await until(stuck, 'RollbackFailed');
  await sendCommand(stuck, 'retry', { by: 'alice' });
  await save('rollback-retried', stuck);

  world.gateOutcome['error-rate'] = 'fail';
  const gated = await startRelease(tw.client, input(`gate-failed-${suffix}`), { taskQueue: tw.taskQueue });
  await save('gate-failed', gated);
} finally {
  await tw.stop();
}
