/**
 * The release workflow with the real activities against the real servers of the stack: Temporal
 * dev server, goiardi (Chef) with the fleet simulator's nodes running chef-client against it,
 * Prometheus, and a cluster whose every controller is real: each app is committed to the stack's
 * Git server and applied by source- and kustomize-controller, rolled out by
 * kube-controller-manager onto kwok's nodes. A bad release is a tag ending in -broken, whose pods
 * never become Ready. Durations are short; deadlines are sized for a busy 2-core machine.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import * as k8s from '@kubernetes/client-node';
import { validateSpec } from '../../release-spec/load.ts';
import { closeChefPools } from '../../activities/chef/client.ts';
import { sendCommand, startRelease } from '../../client/releases.ts';
import { type ReleaseStatus, statusQuery } from '../../workflows/messages.ts';
import { adminClient, chefServerEnv, createEnvironment, deleteEnvironment, fleetApi, uploadCookbook } from '../support/chef-fixtures.ts';
import { requireEnv, uniqueName } from '../support/env.ts';
import { adminKubeConfig, createCanaryIngress, createKustomization, createNamespace } from '../support/seed-kube.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';
import { waitForPhase } from '../support/wait.ts';

const chef = adminClient();
const chefEnv = chefServerEnv();
const fleet = fleetApi();
const kc = adminKubeConfig();
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const net = kc.makeApiClient(k8s.NetworkingV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);
const ns = uniqueName('release-real');
const cookbook = uniqueName('api_gateway').replace(/-/g, '_');

let tw: TestWorker;

before(async () => {
  await createNamespace(ns, kc);
  for (const v of ['2.0.0', '2.1.0']) await uploadCookbook(chef, cookbook, v);
  tw = await startTestWorker();
});
after(async () => {
  await fleet.remove({ prefix: `${ns}-` });
  await tw?.stop();
  await closeChefPools();
});

/**
 * A fresh world per test: a Chef environment, an app in Git applied by a Kustomization (its
 * Deployment rolled out at 2.0.0) and a canary Ingress.
 */
async function seed() {
  const name = uniqueName('shop');
  await createEnvironment(chef, name, { [cookbook]: '= 2.0.0' });
  await createKustomization({ namespace: ns, name, images: [{ name: 'ghcr.io/acme/web', newTag: '2.0.0' }] }, kc);
  await createCanaryIngress({ namespace: ns, name: `${name}-canary`, host: 'shop.example', serviceName: name }, kc);
  return name;
}

/** The Deployment Flux applied: its pod template's image and its ready replicas. */
const running = async (name: string) => {
  const d = await apps.readNamespacedDeployment({ namespace: ns, name });
  return { image: d.spec?.template.spec?.containers[0]?.image, ready: d.status?.readyReplicas ?? 0, updated: d.status?.updatedReplicas ?? 0 };
};

function release(name: string, body: Record<string, unknown> = {}) {
  return validateSpec({
    apiVersion: 'hybrid-release.dev/v1alpha1',
    kind: 'HybridRelease',
    metadata: { name: `${name}-2-1-0` },
    spec: {
      app: name,
      version: '2.1.0',
      chef: [{ id: 'vms', serverUrl: chefEnv.serverUrl, environment: name, cookbooks: { [cookbook]: '= 2.1.0' }, credentials: { keyFile: chefEnv.keyFile, clientName: chefEnv.clientName } }],
      flux: [{ id: 'web', kind: 'Kustomization', namespace: ns, name, images: [{ name: 'ghcr.io/acme/web', newTag: '2.1.0' }] }],
      canary: { ingress: { namespace: ns, name: `${name}-canary` } },
      ...body,
    },
  });
}

const pinned = async (env: string) => ((await chef.get<{ cookbook_versions: Record<string, string> }>(`environments/${env}`, { object: env })).cookbook_versions);
const images = async (name: string) =>
  ((await custom.getNamespacedCustomObject({ group: 'kustomize.toolkit.fluxcd.io', version: 'v1', namespace: ns, plural: 'kustomizations', name })) as { spec: { images: unknown[] } }).spec.images;
const weight = async (name: string) => (await net.readNamespacedIngress({ namespace: ns, name: `${name}-canary` })).metadata?.annotations?.['nginx.ingress.kubernetes.io/canary-weight'];

async function rolledBack(handle: WorkflowHandle): Promise<{ message: string; status: ReleaseStatus }> {
  const err = await handle.result().then(
    () => assert.fail('the release succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError, String(err));
  const cause = err.cause as { message: string; details?: unknown[] };
  return { message: cause.message, status: cause.details?.[0] as ReleaseStatus };
}

describe('release workflow against the real servers', () => {
  it('happy path: pins Chef, patches Flux, walks the canary, passes every gate', async () => {
    const name = await seed();
    // three VMs running chef-client every 1-2 s, on 2.0.0 before the release
    const { added: nodes } = await fleet.add({ environment: name, prefix: `${ns}-${name}`, count: 3, runList: [`recipe[${cookbook}]`], intervalMs: 1000, splayMs: 1000 });
    await fleet.waitForVersion({ names: nodes }, cookbook, '2.0.0', { count: 3 });
    const input = release(name, {
      gates: {
        converged: { chefConvergence: { target: 'vms', minPercent: 100 }, timeout: '3m', interval: '1s' },
        ready: { fluxReady: { target: 'web' }, timeout: '3m', interval: '1s' },
        rollout: { rollout: { namespace: ns, name }, timeout: '3m', interval: '1s' },
        errors: { prometheus: { url: requireEnv('PROMETHEUS_URL'), query: 'vector(0)', comparison: '<', threshold: 0.05 }, timeout: '3m', interval: '1s' },
      },
      steps: [{ chef: 'vms' }, { gate: 'converged' }, { flux: 'web' }, { gate: ['ready', 'rollout'] }, { setWeight: 20 }, { pause: { duration: '1s' } }, { gate: 'errors' }, { setWeight: 100 }],
    });
    const handle = await startRelease(tw.client, input, { taskQueue: tw.taskQueue });
    const status = (await handle.result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded', status.error);
    // the gate passed on real runs: each node saved 2.1.0 after the pin
    for (const n of await fleet.list({ names: nodes })) assert.equal(n.lastSuccess?.versions?.[cookbook], '2.1.0', n.name);
    assert.match(status.gates.find((g) => g.gate === 'converged')!.reason, /^3\/3 nodes converged \(100%, need 100%\)/);
    assert.deepEqual(await pinned(name), { [cookbook]: '= 2.1.0' });
    assert.deepEqual(await images(name), [{ name: 'ghcr.io/acme/web', newTag: '2.1.0' }]);
    // what runs: Flux applied the tag, the new ReplicaSet's pods are Ready
    assert.deepEqual(await running(name), { image: 'ghcr.io/acme/web:2.1.0', ready: 2, updated: 2 });
    assert.equal(await weight(name), '100');
    // gates of one step run side by side and are recorded as they finish
    assert.deepEqual(status.gates.map((g) => [g.step, g.gate, g.ok]).sort(), [[1, 'converged', true], [3, 'ready', true], [3, 'rollout', true], [6, 'errors', true]]);
    assert.deepEqual(status.changes.map((c) => [c.system, c.before]), [
      ['chef', { [cookbook]: '= 2.0.0' }],
      ['flux', { kind: 'Kustomization', images: { 'ghcr.io/acme/web': { name: 'ghcr.io/acme/web', newTag: '2.0.0' } } }],
      ['canary', 0],
    ]);
  });

  it('a tag whose pods never become Ready: the gates fail quoting Flux and the Deployment, Chef and Flux are restored, the old pods run again', async () => {
    const name = await seed();
    const input = release(name, {
      gates: {
        ready: { fluxReady: { target: 'web' }, timeout: '3m', interval: '1s' },
        rollout: { rollout: { namespace: ns, name }, timeout: '3m', interval: '1s' },
      },
      steps: [{ chef: 'vms' }, { flux: 'web' }, { gate: ['ready', 'rollout'] }],
    });
    input.spec.spec.flux[0] = { ...input.spec.spec.flux[0]!, images: [{ name: 'ghcr.io/acme/web', newTag: '2.1.0-broken' }] } as (typeof input.spec.spec.flux)[0];
    const { message, status } = await rolledBack(await startRelease(tw.client, input, { taskQueue: tw.taskQueue }));
    // whichever gate saw it first: Flux's health check or the Deployment's own deadline
    assert.match(message, /Ready=False HealthCheckFailed: .*stalled resources|exceeded its progress deadline: ReplicaSet .* has timed out progressing/);
    assert.equal(status.phase, 'RolledBack');
    assert.deepEqual(await pinned(name), { [cookbook]: '= 2.0.0' });
    assert.deepEqual(await images(name), [{ name: 'ghcr.io/acme/web', newTag: '2.0.0' }]);
    assert.deepEqual(status.changes.map((c) => c.state), ['restored', 'restored']);
    // RolledBack only once Flux applied the restored spec and the rollout back finished
    assert.deepEqual(await running(name), { image: 'ghcr.io/acme/web:2.0.0', ready: 2, updated: 2 });
    const after = status.gates.filter((g) => g.gate.startsWith('rollback/')).map((g) => [g.gate, g.kind, g.ok]);
    assert.deepEqual(after, [['rollback/ready', 'fluxReady', true], ['rollback/rollout', 'rollout', true]]);
  });

  it('Chef preflight fails: nothing is touched, and the error lists the versions that exist', async () => {
    const name = await seed();
    const input = release(name);
    input.spec.spec.chef[0]!.cookbooks = { [cookbook]: '~> 3.0' };
    const err = await startRelease(tw.client, input, { taskQueue: tw.taskQueue }).then((h) => h.result()).then(() => assert.fail('succeeded'), (e: unknown) => e as WorkflowFailedError);
    const status = (err.cause as { details?: unknown[] }).details?.[0] as ReleaseStatus;
    assert.equal(status.phase, 'Failed');
    assert.match(status.error!, /2\.0\.0.*2\.1\.0|2\.1\.0.*2\.0\.0/);
    assert.match(status.error!, /nothing was changed/);
    assert.deepEqual(await pinned(name), { [cookbook]: '= 2.0.0' });
    assert.deepEqual(await images(name), [{ name: 'ghcr.io/acme/web', newTag: '2.0.0' }]);
  });

  it('approve path with an approver list; a stranger is refused; a second release of the app is refused', async () => {
    const name = await seed();
    const input = release(name, { steps: [{ chef: 'vms' }, { flux: 'web' }, { setWeight: 10 }, { pause: {} }, { setWeight: 100 }], approvals: { approvers: ['alice'] } });
    const handle = await startRelease(tw.client, input, { taskQueue: tw.taskQueue });
    await waitForPhase(handle, 'AwaitingApproval');
    assert.equal(await weight(name), '10');
    await assert.rejects(startRelease(tw.client, release(name), { taskQueue: tw.taskQueue }), new RegExp(`already has a release running: ${name}-2-1-0`));
    await assert.rejects(sendCommand(handle, 'approve', { by: 'mallory' }), /not an approver/);
    await sendCommand(handle, 'approve', { by: 'alice', reason: 'canary is healthy' });
    const status = (await handle.result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded');
    assert.equal(await weight(name), '100');
  });

  it('abort mid-canary restores every change and puts the weight back', async () => {
    const name = await seed();
    const input = release(name, { steps: [{ chef: 'vms' }, { flux: 'web' }, { setWeight: 25 }, { pause: { duration: '10m' } }, { setWeight: 100 }] });
    const handle = await startRelease(tw.client, input, { taskQueue: tw.taskQueue });
    await waitForPhase(handle, 'Paused');
    assert.equal(await weight(name), '25');
    await sendCommand(handle, 'abort', { by: 'alice', reason: 'latency' });
    const { message, status } = await rolledBack(handle);
    assert.match(message, /aborted by alice: latency/);
    assert.equal(await weight(name), '0');
    assert.deepEqual(await pinned(name), { [cookbook]: '= 2.0.0' });
    assert.deepEqual(await images(name), [{ name: 'ghcr.io/acme/web', newTag: '2.0.0' }]);
    assert.deepEqual(await running(name), { image: 'ghcr.io/acme/web:2.0.0', ready: 2, updated: 2 }, 'the 2.0.0 pods run again');
    assert.deepEqual(status.changes.map((c) => c.state), ['restored', 'restored', 'restored']);
  });

  it('a Prometheus gate that fails mid-canary rolls everything back', async () => {
    const name = await seed();
    // a constant error ratio: the shared demo exporter is driven by other test files at the same time
    const gates = { errors: { prometheus: { url: requireEnv('PROMETHEUS_URL'), query: 'vector(0.25)', comparison: '<', threshold: 0.05 }, timeout: '3m', interval: '1s' } };
    const input = release(name, { gates, steps: [{ chef: 'vms' }, { flux: 'web' }, { setWeight: 20 }, { gate: 'errors' }, { setWeight: 100 }] });
    const { message, status } = await rolledBack(await startRelease(tw.client, input, { taskQueue: tw.taskQueue }));
    assert.match(message, /0\.25/);
    // then, rolling back, the wait for Flux to apply the restored spec
    assert.deepEqual(status.gates.map((g) => [g.gate, g.ok]), [['errors', false], ['rollback/web', true]]);
    assert.equal(await weight(name), '0');
    assert.deepEqual(await pinned(name), { [cookbook]: '= 2.0.0' });
  });

  it('a compensation that fails puts the release in RollbackFailed; retry then restores it', async () => {
    const name = await seed();
    const input = release(name, { steps: [{ chef: 'vms' }, { flux: 'web' }, { pause: {} }], rollback: { maxAttempts: 2 } });
    const handle = await startRelease(tw.client, input, { taskQueue: tw.taskQueue });
    await waitForPhase(handle, 'AwaitingApproval');
    await deleteEnvironment(chef, name); // someone deletes the environment mid-release
    await sendCommand(handle, 'abort', { by: 'alice' });
    const stuck = await waitForPhase(handle, 'RollbackFailed');
    assert.equal(stuck.changes[1]!.state, 'restored', 'Flux, newest, was restored first');
    assert.equal(stuck.changes[0]!.state, 'restore-failed');
    assert.match(stuck.changes[0]!.error!, new RegExp(name));
    await createEnvironment(chef, name, { [cookbook]: '= 2.1.0' }); // the environment is back
    await sendCommand(handle, 'retry', { by: 'alice', reason: 'environment recreated' });
    const { status } = await rolledBack(handle);
    assert.equal(status.phase, 'RolledBack');
    assert.deepEqual(await pinned(name), { [cookbook]: '= 2.0.0' });
  });

  it('the exported history holds no key material', async () => {
    const name = await seed();
    const handle = await startRelease(tw.client, release(name, { steps: [{ chef: 'vms' }, { flux: 'web' }] }), { taskQueue: tw.taskQueue });
    await handle.result();
    // payloads are base64 in an exported history: decode every one, so the search means something
    const exported = historyToJSON(await handle.fetchHistory());
    const decoded = [...exported.matchAll(/"data":\s*"([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'));
    const history = `${exported}\n${decoded.join('\n')}`;
    const key = readFileSync(chefEnv.keyFile, 'utf8');
    assert.doesNotMatch(history, /PRIVATE KEY/);
    for (const line of key.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'))) assert.ok(!history.includes(line), 'a line of the key is in the history');
    assert.ok(history.includes(chefEnv.keyFile), 'the reference (the key file path) is what travels');
  });
});

describe('a worker killed during a pause', () => {
  const workers: ChildProcess[] = [];
  after(() => {
    for (const w of workers) w.kill('SIGKILL');
  });

  function spawnWorker(taskQueue: string): Promise<ChildProcess> {
    const child = spawn(process.execPath, [fileURLToPath(new URL('../../worker/main.ts', import.meta.url))], {
      env: { ...process.env, HR_TASK_QUEUE: taskQueue, HR_LOG_LEVEL: 'INFO' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    workers.push(child);
    return new Promise((resolve, reject) => {
      let log = '';
      setTimeout(() => reject(new Error(`worker did not start within 60s: ${log}`)), 60_000).unref();
      child.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes('worker started')) resolve(child);
      });
      child.once('exit', (code) => reject(new Error(`worker exited with ${code}: ${log}`)));
    });
  }

  it('a new worker finishes the release', async () => {
    const name = await seed();
    const taskQueue = uniqueName('hr-kill');
    const first = await spawnWorker(taskQueue);
    const input = release(name, { steps: [{ chef: 'vms' }, { flux: 'web' }, { setWeight: 30 }, { pause: { duration: '4s' } }, { setWeight: 100 }] });
    const handle = await startRelease(tw.client, input, { taskQueue });
    await waitForPhase(handle, 'Paused');
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    await spawnWorker(taskQueue);
    const status = (await handle.result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded');
    assert.equal(await weight(name), '100');
    assert.deepEqual(await pinned(name), { [cookbook]: '= 2.1.0' });
  });
});
