/**
 * Releases that share targets (issue 15), on the real Temporal dev server against the in-memory
 * world: leases (queueing, what a waiting release says, the deadline, release on terminate),
 * undo that never clobbers, writes the undo waits for, exact canary undo, the end phases and the
 * final notification. The protocol facts against the real servers: test/e2e/shared-targets.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { sendCommand, startRelease } from '../../client/releases.ts';
import { type ReleaseStatus, statusQuery } from '../../workflows/messages.ts';
import { fakeActivities, newWorld, type World, worldRelease } from '../support/fake-world.ts';
import { uniqueName } from '../support/env.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';

process.env.HOOK_URL ??= 'http://127.0.0.1:9/hook'; // the in-memory notify never calls it

let tw: TestWorker;
let world: World;

before(async () => {
  world = newWorld();
  tw = await startTestWorker({ activities: fakeActivities(world) });
});
after(async () => tw?.stop());

function reset() {
  Object.assign(world, newWorld());
}

async function waitFor(handle: WorkflowHandle, ok: (s: ReleaseStatus) => boolean, what: string, timeoutMs = 60_000): Promise<ReleaseStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await handle.query(statusQuery);
    if (ok(s)) return s;
    if (Date.now() > deadline) assert.fail(`waited for ${what}; last seen: ${s.phase}${s.waiting ? ` (${s.waiting})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const phase = (handle: WorkflowHandle, p: string) => waitFor(handle, (s) => s.phase === p, `phase ${p}`);

async function failure(handle: WorkflowHandle): Promise<{ message: string; status: ReleaseStatus }> {
  try {
    await handle.result();
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const cause = err.cause as { message: string; details?: unknown[] };
    return { message: cause.message, status: cause.details?.[0] as ReleaseStatus };
  }
  assert.fail('the release succeeded');
}

/** A release of `app` pinning its own cookbook in the shared environment production, then waiting for approval. */
const pinning = (app: string, extra: Record<string, unknown> = {}) =>
  worldRelease(app, {
    chef: [{ serverUrl: 'https://chef.example', environment: 'production', cookbooks: { [app.replace(/-/g, '_')]: '= 1.0.0' }, credentials: { keyFile: '/k.pem', clientName: 'ci' } }],
    flux: [],
    steps: [{ chef: 'production' }, { pause: {} }],
    ...extra,
  });
const start = (input: ReturnType<typeof pinning>, startedBy?: string) => startRelease(tw.client, { ...input, ...(startedBy ? { startedBy } : {}) }, { taskQueue: tw.taskQueue });

describe('leases on shared targets', () => {
  it('a second release of another app waits Queued for the environment, says who holds it, and runs when it is free', async () => {
    reset();
    const a = uniqueName('lease-a');
    const b = uniqueName('lease-b');
    const first = await start(pinning(a), 'the checkout pipeline');
    await phase(first, 'AwaitingApproval');
    const second = await start(pinning(b));
    const queued = await phase(second, 'Queued');
    assert.match(queued.waiting!, new RegExp(`^waiting for Chef environment production on chef.example, held by ${a}-2-1-0 \\(started \\d\\d:\\d\\d UTC by the checkout pipeline\\)$`));
    assert.ok(!Object.hasOwn(world.chef.production!, b.replace(/-/g, '_')), 'nothing changed while queued');
    await sendCommand(first, 'approve', { by: 'alice' });
    assert.equal(((await first.result()) as ReleaseStatus).phase, 'Succeeded');
    await phase(second, 'AwaitingApproval');
    await sendCommand(second, 'approve', { by: 'alice' });
    const done = (await second.result()) as ReleaseStatus;
    assert.equal(done.phase, 'Succeeded');
    assert.deepEqual(done.leases, ['Chef environment production on chef.example']);
    assert.equal(world.chef.production![a.replace(/-/g, '_')], '= 1.0.0');
    assert.equal(world.chef.production![b.replace(/-/g, '_')], '= 1.0.0');
  });

  it('the wait has a deadline: spec.leases.timeout fails the release with nothing changed', async () => {
    reset();
    const first = await start(pinning(uniqueName('hold')));
    await phase(first, 'AwaitingApproval');
    const late = await start(pinning(uniqueName('late'), { leases: { timeout: '2s' } }));
    const { message, status } = await failure(late);
    assert.equal(status.phase, 'Failed');
    assert.match(message, /waited 2s \(spec.leases.timeout\) for Chef environment production on chef.example, held by .* \(nothing was changed\)/);
    assert.equal(status.changes.length, 0);
    await sendCommand(first, 'abort', { by: 'alice' });
    await failure(first);
  });

  it('abort while Queued ends Failed, nothing changed; a terminated holder gives its leases up', async () => {
    reset();
    const holder = await start(pinning(uniqueName('term')));
    await phase(holder, 'AwaitingApproval');
    const waiter = await start(pinning(uniqueName('waiter')));
    await phase(waiter, 'Queued');
    const third = await start(pinning(uniqueName('third')));
    await phase(third, 'Queued');
    await sendCommand(third, 'abort', { by: 'alice', reason: 'not today' });
    const aborted = await failure(third);
    assert.equal(aborted.status.phase, 'Failed');
    assert.match(aborted.message, /aborted by alice: not today \(nothing was changed\)/);
    // terminate runs no workflow code: the lease keeper (parent-close policy) gives the lease up
    await holder.terminate('operator terminated it');
    await phase(waiter, 'AwaitingApproval');
    await sendCommand(waiter, 'approve', { by: 'alice' });
    assert.equal(((await waiter.result()) as ReleaseStatus).phase, 'Succeeded');
  });
});

describe('undo that never clobbers', () => {
  it('a hotfix during the pause, then abort: RollbackFailed naming the value; skip ends PartiallyRolledBack listing it', async () => {
    reset();
    const app = uniqueName('hotfix');
    const handle = await startRelease(tw.client, worldRelease(app, { steps: [{ chef: 'production' }, { flux: 'storefront' }, { pause: {} }] }), { taskQueue: tw.taskQueue });
    await phase(handle, 'AwaitingApproval');
    world.chef.production!.api_gateway = '= 2.1.1'; // a person's hotfix
    await sendCommand(handle, 'abort', { by: 'alice' });
    const stuck = await phase(handle, 'RollbackFailed');
    const chef = stuck.changes.find((c) => c.system === 'chef')!;
    assert.equal(chef.state, 'restore-failed');
    assert.match(chef.error!, /api_gateway in environment production is "= 2.1.1", not "= 2.1.0" as this release wrote: changed outside this release/);
    assert.equal(world.chef.production!.api_gateway, '= 2.1.1');
    assert.equal(world.images.storefront![0]!.newTag, '2.0.0', 'the Flux undo (newer) ran first');
    // retry checks again: still the hotfix
    await sendCommand(handle, 'retry', { by: 'alice' });
    await waitFor(handle, (s) => s.phase === 'RollbackFailed' && world.calls.filter((c) => c === 'chefRestore').length >= 2, 'a second conflict');
    await sendCommand(handle, 'skip', { by: 'alice', reason: 'the hotfix stays' });
    const { message, status } = await failure(handle);
    assert.equal(status.phase, 'PartiallyRolledBack');
    assert.match(message, /^partially rolled back: aborted by alice; undo skipped, left in place: pin api_gateway = 2.1.0 in production/);
    assert.equal(status.skipped!.length, 1);
    assert.equal(world.chef.production!.api_gateway, '= 2.1.1');
    assert.deepEqual(status.changes.map((c) => c.state), ['restore-skipped', 'restored']);
  });

  it('abort while the pin is being written: the undo starts only after the write landed, and restores', async () => {
    reset();
    world.slow.chefPin = 1_500;
    const app = uniqueName('inflight');
    const handle = await startRelease(tw.client, worldRelease(app), { taskQueue: tw.taskQueue });
    await waitFor(handle, () => world.calls.includes('chefPin'), 'the pin to start');
    await sendCommand(handle, 'abort', { by: 'alice' });
    const { status } = await failure(handle);
    assert.equal(status.phase, 'RolledBack');
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.0.0' });
    assert.ok(!world.calls.includes('fluxPin'), 'nothing after the aborted step');
  });

  it('canary undo is exact: flag and weight absent before are absent after; weightTotal is written', async () => {
    reset();
    const app = uniqueName('canary');
    const handle = await startRelease(
      tw.client,
      worldRelease(app, { flux: [], canary: { ingress: { namespace: 'web', name: 'storefront-canary' }, weightTotal: 1000 }, steps: [{ chef: 'production' }, { setWeight: 200 }, { pause: {} }] }),
      { taskQueue: tw.taskQueue },
    );
    await phase(handle, 'AwaitingApproval');
    assert.deepEqual([world.canaryFlag, world.weight, world.weightTotal], ['true', 200, '1000']);
    await sendCommand(handle, 'abort', { by: 'alice' });
    const { status } = await failure(handle);
    assert.equal(status.phase, 'RolledBack');
    assert.deepEqual([world.canaryFlag, world.weight, world.weightTotal], [null, null, null]);
  });
});

describe('end phases and notifications', () => {
  const webhooks = { notifications: { webhooks: [{ urlFrom: { env: 'HOOK_URL' } }] } };

  it('the final notification is sent before the release closes, for every end', async () => {
    reset();
    const ok = (await (await startRelease(tw.client, worldRelease(uniqueName('note'), webhooks), { taskQueue: tw.taskQueue })).result()) as ReleaseStatus;
    assert.equal(ok.phase, 'Succeeded');
    assert.equal(world.events.at(-1)?.phase, 'Succeeded');
    world.failures.fluxPin = { times: 1, message: 'denied' };
    await failure(await startRelease(tw.client, worldRelease(uniqueName('note-rb'), webhooks), { taskQueue: tw.taskQueue }));
    assert.equal(world.events.at(-1)?.phase, 'RolledBack');
    const input = worldRelease(uniqueName('note-f'), webhooks);
    input.spec.spec.chef[0]!.environment = 'missing';
    await failure(await startRelease(tw.client, input, { taskQueue: tw.taskQueue }));
    assert.equal(world.events.at(-1)?.phase, 'Failed');
  });

  it('abort during Preflight ends Failed with nothing changed, not RolledBack', async () => {
    reset();
    const app = uniqueName('pf-abort');
    const first = await start(pinning(uniqueName('pf-hold')));
    await phase(first, 'AwaitingApproval');
    // the second waits in preflight (Queued) for the environment: abort it there
    const handle = await startRelease(tw.client, worldRelease(app), { taskQueue: tw.taskQueue });
    await phase(handle, 'Queued');
    await sendCommand(handle, 'abort', { by: 'alice' });
    const { status } = await failure(handle);
    assert.equal(status.phase, 'Failed');
    assert.match(status.error!, /nothing was changed/);
    await sendCommand(first, 'abort', { by: 'alice' });
    await failure(first);
  });
});
