/**
 * The release workflow's logic (plan order, saga, canary, approvals, RollbackFailed) on the real
 * Temporal dev server, against an in-memory world so every failure can be injected exactly.
 * The same workflow with the real activities against the real servers: release-real.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { releaseHandle, sendCommand, signedDecision, startRelease } from '../../client/releases.ts';
import { type ReleaseStatus, statusQuery, SIGNALS } from '../../workflows/messages.ts';
import { fakeActivities, newWorld, type World, worldRelease } from '../support/fake-world.ts';
import { uniqueName } from '../support/env.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';
import { waitFor, waitForPhase } from '../support/wait.ts';

let tw: TestWorker;
let world: World;

before(async () => {
  world = newWorld();
  tw = await startTestWorker({ activities: fakeActivities(world) });
});
after(async () => tw?.stop());

const spec = worldRelease;

const canary = (app: string, steps: unknown[], gates: Record<string, unknown> = {}, approvers: string[] = []) =>
  spec(app, { canary: { ingress: { namespace: 'web', name: 'storefront-canary' } }, gates, steps, approvals: { approvers } });

function reset() {
  Object.assign(world, newWorld(), { calls: [] });
}

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

describe('release workflow logic', () => {
  it('runs the default plan and reports every change with before and after', async () => {
    reset();
    const handle = await startRelease(tw.client, spec(uniqueName('happy')), { taskQueue: tw.taskQueue });
    const status = (await handle.result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded');
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.1.0' });
    assert.equal(world.images.storefront![0]!.newTag, '2.1.0');
    const calls = world.calls.filter((c) => c !== 'notify');
    // preflight checks run side by side; the mutations run in plan order after all of them
    assert.deepEqual(calls.slice(0, 2).sort(), ['chefPreflight', 'fluxPreflight']);
    assert.deepEqual(calls.slice(2), ['chefSnapshot', 'chefPin', 'fluxSnapshot', 'fluxPin']);
    assert.deepEqual(status.changes.map((c) => [c.system, c.state, c.before]), [
      ['chef', 'applied', { api_gateway: '= 2.0.0' }],
      ['flux', 'applied', { kind: 'Kustomization', images: { 'ghcr.io/acme/web': { name: 'ghcr.io/acme/web', newTag: '2.0.0' } } }],
    ]);
    assert.ok(status.steps.every((s) => s.state === 'done'));
  });

  it('restores Chef when Flux fails after Chef was pinned', async () => {
    reset();
    world.failures.fluxPin = { times: 1, message: 'admission webhook denied the patch' };
    const handle = await startRelease(tw.client, spec(uniqueName('fluxfail')), { taskQueue: tw.taskQueue });
    const { message, status } = await failure(handle);
    assert.match(message, /rolled back: admission webhook denied the patch/);
    assert.equal(status.phase, 'RolledBack');
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.0.0' });
    assert.equal(world.images.storefront![0]!.newTag, '2.0.0');
    // the Flux compensation was registered before the mutation, so it runs too (idempotent), newest first
    const undo = world.calls.filter((c) => c.endsWith('Restore') || c.endsWith('Unpin'));
    assert.deepEqual(undo, ['fluxUnpin', 'chefRestore']);
    assert.deepEqual(status.changes.map((c) => c.state), ['restored', 'restored']);
  });

  it('changes nothing when a preflight check fails, and names every failed check', async () => {
    reset();
    const input = spec(uniqueName('preflight'));
    input.spec.spec.chef[0]!.environment = 'missing';
    input.spec.spec.flux[0]!.name = 'missing';
    const { message, status } = await failure(await startRelease(tw.client, input, { taskQueue: tw.taskQueue }));
    assert.match(message, /environment missing not found; Kustomization missing not found \(nothing was changed\)/);
    assert.equal(status.phase, 'Failed');
    assert.equal(status.changes.length, 0);
    assert.ok(!world.calls.some((c) => /Pin|Apply|Snapshot/.test(c)));
  });

  it('abort during an approval pause restores every change, canary weight included', async () => {
    reset();
    const app = uniqueName('abort');
    const handle = await startRelease(tw.client, canary(app, [{ chef: 'production' }, { flux: 'storefront' }, { setWeight: 20 }, { pause: {} }, { setWeight: 100 }]), { taskQueue: tw.taskQueue });
    await waitForPhase(handle, 'AwaitingApproval');
    assert.equal(world.weight, 20);
    const answer = await sendCommand(releaseHandle(tw.client, app), 'abort', { by: 'alice', reason: 'checkout errors' });
    assert.match(answer, /abort requested by alice/);
    const { message, status } = await failure(handle);
    assert.match(message, /aborted by alice: checkout errors/);
    assert.equal(world.weight, null);
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.0.0' });
    assert.equal(world.images.storefront![0]!.newTag, '2.0.0');
    assert.deepEqual(status.changes.map((c) => [c.system, c.state]), [['chef', 'restored'], ['flux', 'restored'], ['canary', 'restored']]);
    assert.equal(status.steps[3]!.state, 'cancelled');
  });

  it('approve moves past the pause; approvers are enforced; wrong-phase commands are refused', async () => {
    reset();
    const app = uniqueName('approve');
    const handle = await startRelease(tw.client, canary(app, [{ chef: 'production' }, { flux: 'storefront' }, { setWeight: 20 }, { pause: {} }, { setWeight: 100 }], {}, ['alice']), { taskQueue: tw.taskQueue });
    await assert.rejects(sendCommand(handle, 'retry', { by: 'alice' }), /retry refused: retry answers a failing compensation/);
    await waitForPhase(handle, 'AwaitingApproval');
    await assert.rejects(sendCommand(handle, 'approve', { by: 'mallory' }), /approve refused: mallory is not an approver .*approvers: alice/);
    await handle.signal(SIGNALS.approve, { by: 'mallory' }); // a signal cannot be refused, only ignored and recorded
    assert.equal((await handle.query(statusQuery)).phase, 'AwaitingApproval');
    assert.match(await sendCommand(handle, 'approve', { by: 'alice', reason: 'dashboards green' }), /approved by alice/);
    const status = (await handle.result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded');
    assert.equal(world.weight, 100);
    const decisions = status.decisions.map((d) => [d.command, d.by, d.via, d.accepted]);
    assert.deepEqual(decisions, [['approve', 'mallory', 'signal', false], ['approve', 'alice', 'update', true]]);
    await assert.rejects(sendCommand(handle, 'abort', { by: 'alice' }), /refused|no running release|completed/i);
  });

  it('pause holds the release at the next step boundary until resume', async () => {
    reset();
    const app = uniqueName('hold');
    const handle = await startRelease(tw.client, canary(app, [{ chef: 'production' }, { setWeight: 10 }, { pause: { duration: '2s' } }, { flux: 'storefront' }]), { taskQueue: tw.taskQueue });
    await waitForPhase(handle, 'Paused');
    await sendCommand(handle, 'pause', { by: 'bob', reason: 'waiting for the support team' });
    // the canary timer ends while held: seen in the history, not guessed with a sleep
    await waitFor('the 2s canary timer to fire', () => handle.fetchHistory(), (h) => (h.events ?? []).some((e) => e.timerFiredEventAttributes));
    let status = await handle.query(statusQuery);
    assert.equal(status.phase, 'Paused');
    assert.equal(status.heldBy, 'bob');
    assert.equal(world.images.storefront![0]!.newTag, '2.0.0', 'nothing after the hold ran');
    await sendCommand(handle, 'resume', { by: 'bob' });
    status = (await handle.result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded');
    assert.equal(world.images.storefront![0]!.newTag, '2.1.0');
  });

  it('a failing gate mid-canary rolls everything back and records the gate result', async () => {
    reset();
    const app = uniqueName('gatefail');
    world.gateOutcome['error-rate'] = 'fail';
    const gates = { 'error-rate': { prometheus: { url: 'http://prom:9090', query: 'x', comparison: '<', threshold: 0.01 }, timeout: '1m', interval: '1s' } };
    const handle = await startRelease(tw.client, canary(app, [{ chef: 'production' }, { flux: 'storefront' }, { setWeight: 20 }, { gate: 'error-rate' }, { setWeight: 100 }], gates), { taskQueue: tw.taskQueue });
    const { message, status } = await failure(handle);
    assert.match(message, /gate error-rate \(prometheus\) failed: error rate 0.2 is not < 0.01/);
    // the rollback waits for Flux to apply the restored spec: a gate of its own
    assert.deepEqual(status.gates.map((g) => [g.gate, g.ok, g.step]), [['error-rate', false, 3], ['rollback/storefront', true, 1]]);
    assert.equal(world.weight, null);
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.0.0' });
  });

  it('a compensation that keeps failing waits in RollbackFailed until retry succeeds', async () => {
    reset();
    const app = uniqueName('rbfail');
    world.failures.fluxPin = { times: 1, message: 'apply failed' };
    world.failures.chefRestore = { times: 1, message: 'Chef server answered 503' };
    const handle = await startRelease(tw.client, spec(app, { rollback: { maxAttempts: 1 } }), { taskQueue: tw.taskQueue });
    const stuck = await waitForPhase(handle, 'RollbackFailed');
    assert.equal(stuck.changes[0]!.state, 'restore-failed');
    assert.match(stuck.changes[0]!.error!, /503/);
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.1.0' }, 'still pinned while waiting for a person');
    await assert.rejects(sendCommand(handle, 'abort', { by: 'alice' }), /already rolling back/);
    await sendCommand(handle, 'retry', { by: 'alice', reason: 'Chef is back' });
    const { status } = await failure(handle);
    assert.equal(status.phase, 'RolledBack');
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.0.0' });
    assert.equal(status.changes[0]!.state, 'restored');
  });

  it('skip accepts a compensation that cannot be done and finishes the rollback', async () => {
    reset();
    const app = uniqueName('rbskip');
    world.failures.fluxPin = { times: 1, message: 'apply failed' };
    world.failures.fluxUnpin = { times: 5, message: 'Kustomization was deleted' };
    const handle = await startRelease(tw.client, spec(app, { rollback: { maxAttempts: 1 } }), { taskQueue: tw.taskQueue });
    await waitForPhase(handle, 'RollbackFailed');
    await sendCommand(handle, 'skip', { by: 'alice', reason: 'deleted on purpose' });
    const { message, status } = await failure(handle);
    // a rollback with a skipped undo is not a clean RolledBack
    assert.equal(status.phase, 'PartiallyRolledBack');
    assert.match(message, /^partially rolled back: apply failed; undo skipped, left in place: set ghcr.io\/acme\/web:2.1.0 on Kustomization web\/storefront/);
    assert.deepEqual(status.changes.map((c) => c.state), ['restored', 'restore-skipped']);
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.0.0' });
  });

  it('an approval deadline with onTimeout: abort rolls back; with promote it carries on', async () => {
    reset();
    const steps = (onTimeout: string) => [{ chef: 'production' }, { pause: { deadline: '1s', onTimeout } }, { flux: 'storefront' }];
    const aborted = await startRelease(tw.client, spec(uniqueName('deadline-a'), { steps: steps('abort') }), { taskQueue: tw.taskQueue });
    const { message } = await failure(aborted);
    assert.match(message, /nobody answered within 1s: abort/);
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.0.0' });
    const promoted = await startRelease(tw.client, spec(uniqueName('deadline-p'), { steps: steps('promote') }), { taskQueue: tw.taskQueue });
    const status = (await promoted.result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded');
    assert.deepEqual(status.decisions.map((d) => [d.by, d.via, d.note]), [['deadline', 'timeout', 'nobody answered within 1s: promote']]);
  });

  it('abort by signal cancels a running gate and rolls back', async () => {
    reset();
    const app = uniqueName('sigabort');
    const gates = { slow: { prometheus: { url: 'http://prom:9090', query: 'x', comparison: '<', threshold: 1 }, timeout: '1m', interval: '1s' } };
    const handle = await startRelease(tw.client, canary(app, [{ chef: 'production' }, { gate: 'slow' }, { flux: 'storefront' }], gates), { taskQueue: tw.taskQueue });
    await waitForPhase(handle, 'Verifying');
    // a tool that can only signal sends the same signed decision
    await handle.signal(SIGNALS.abort, (await signedDecision(handle, 'abort', { by: 'pager-bot', reason: 'incident' })).decision);
    const { message, status } = await failure(handle);
    assert.match(message, /aborted by pager-bot: incident/);
    assert.equal(status.phase, 'RolledBack');
    assert.deepEqual(world.chef.production, { api_gateway: '= 2.0.0' });
  });

  it('refuses a second release of an app that has one running, naming it', async () => {
    reset();
    const app = uniqueName('single');
    const first = await startRelease(tw.client, canary(app, [{ chef: 'production' }, { flux: 'storefront' }, { pause: {} }]), { taskQueue: tw.taskQueue });
    await waitForPhase(first, 'AwaitingApproval');
    await assert.rejects(startRelease(tw.client, spec(app), { taskQueue: tw.taskQueue }), new RegExp(`app ${app} already has a release running: ${app}-2-1-0`));
    await sendCommand(first, 'approve', { by: 'alice' });
    await first.result();
    // once it has ended, the next release of the app may start
    const next = await startRelease(tw.client, spec(app), { taskQueue: tw.taskQueue });
    assert.equal(((await next.result()) as ReleaseStatus).phase, 'Succeeded');
  });
});
