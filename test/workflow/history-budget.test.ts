/**
 * The history budget's bound (release-spec/budget.ts) holds against real histories: a 30-step
 * canary on the in-memory world, run on the real Temporal dev server to its end and then rolled
 * back by a failing last gate (the worst path: every change applied, then undone). Its events,
 * history bytes and status stay under the estimate validation uses. Nothing here depends on time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { startRelease } from '../../client/releases.ts';
import { estimateHistory } from '../../release-spec/budget.ts';
import { type ReleaseStatus, statusQuery } from '../../workflows/messages.ts';
import { uniqueName } from '../support/env.ts';
import { fakeActivities, newWorld, worldRelease } from '../support/fake-world.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';

let tw: TestWorker;
const world = newWorld();
before(async () => {
  tw = await startTestWorker({ activities: fakeActivities(world) });
});
after(async () => tw?.stop());

const prom = (name: string) => ({ [name]: { prometheus: { url: 'http://prom:9090', query: name, comparison: '<', threshold: 0.01 }, timeout: '1m', interval: '1s' } });

describe('history budget against real histories', () => {
  it('a 30-step canary rolled back at its last gate stays under the estimate', async () => {
    world.gateOutcome = { errors: 'pass', final: 'fail' };
    const steps: unknown[] = [{ chef: 'production' }, { flux: 'storefront' }, { gate: 'ready' }];
    for (let i = 1; i <= 30; i++) steps.push({ setWeight: Math.round((100 * i) / 30) }, { pause: { duration: '10ms' } }, { gate: 'errors' });
    steps.push({ gate: 'final' });
    const input = worldRelease(uniqueName('budget'), {
      canary: { ingress: { namespace: 'web', name: 'storefront-canary' } },
      gates: { ready: { fluxReady: { target: 'storefront' }, timeout: '1m', interval: '1s' }, ...prom('errors'), ...prom('final') },
      steps,
    });
    const estimate = estimateHistory(input);
    const handle = await startRelease(tw.client, input, { taskQueue: tw.taskQueue });
    await assert.rejects(handle.result(), (err: Error) => /rolled back/.test(String((err.cause as Error | undefined)?.message)));
    const status = await handle.query(statusQuery);
    assert.equal((status as ReleaseStatus).phase, 'RolledBack');
    const history = await handle.fetchHistory();
    const events = history.events?.length ?? 0;
    const bytes = Buffer.byteLength(historyToJSON(history));
    const statusBytes = Buffer.byteLength(JSON.stringify(status));
    console.log(`30-step canary, rolled back: ${events} events (estimate ${estimate.events}), ${bytes} history bytes as JSON (estimate ${estimate.bytes}), status ${statusBytes} bytes (estimate ${estimate.statusBytes}), input ${estimate.inputBytes} bytes`);
    assert.ok(events <= estimate.events, `${events} events > estimate ${estimate.events}`);
    assert.ok(bytes <= estimate.bytes, `${bytes} bytes > estimate ${estimate.bytes}`);
    assert.ok(statusBytes <= estimate.statusBytes, `status ${statusBytes} bytes > estimate ${estimate.statusBytes}`);
  });
});
