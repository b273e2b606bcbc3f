/**
 * Releases that share targets (issue 15), on the real servers of the stack: Temporal, goiardi
 * (through a delaying proxy where the test needs a slow PUT), kube-apiserver with the real Flux
 * controllers (through a delaying proxy for the abort-while-patching test), and a real HTTP
 * receiver for webhooks. The workflow logic of the same features: shared-targets.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { closeChefPools } from '../../activities/chef/client.ts';
import { resetKubeClients } from '../../activities/kube/clients.ts';
import { sendCommand, startRelease } from '../../client/releases.ts';
import { validateSpec } from '../../release-spec/load.ts';
import { type ReleaseStatus, statusQuery } from '../../workflows/messages.ts';
import { adminClient, chefServerEnv, createEnvironment, mapLimit, uploadCookbook } from '../support/chef-fixtures.ts';
import { delayMethod, startDelayProxy, type DelayProxy } from '../support/delay-proxy.ts';
import { uniqueName } from '../support/env.ts';
import { adminKubeConfig, createKustomization, createNamespace } from '../support/seed-kube.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';

const chef = adminClient();
const chefEnv = chefServerEnv();
const kc = process.env.KUBECONFIG ? adminKubeConfig() : new k8s.KubeConfig();
const custom = () => kc.makeApiClient(k8s.CustomObjectsApi);
const ns = uniqueName('shared');
const cookbook = uniqueName('gw').replace(/-/g, '_');

let tw: TestWorker;
let chefProxy: DelayProxy;
let kubeProxy: DelayProxy;
/** the kube context whose server is kubeProxy */
const SLOW = 'slow-apiserver';

// a real HTTP receiver for the webhooks: records every event; /fail answers 500
const received: Array<{ path: string; phase: string; release: string }> = [];
let receiver: Server;

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const e = JSON.parse(body || '{}') as { phase: string; release: string };
      received.push({ path: req.url ?? '', phase: e.phase, release: e.release });
      res.statusCode = req.url === '/fail' ? 500 : 204;
      res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const port = (receiver.address() as { port: number }).port;
  process.env.SHARED_TEST_HOOK_OK = `http://127.0.0.1:${port}/ok`;
  process.env.SHARED_TEST_HOOK_FAIL = `http://127.0.0.1:${port}/fail`;

  const chefUrl = new URL(chefEnv.serverUrl);
  chefProxy = await startDelayProxy({ host: chefUrl.hostname, port: Number(chefUrl.port) });
  for (const v of ['2.0.0', '2.1.0']) await uploadCookbook(chef, cookbook, v);
  tw = await startTestWorker();
});
after(async () => {
  await tw?.stop();
  await closeChefPools();
  await chefProxy?.close();
  await kubeProxy?.close();
  receiver?.close();
});

let kubeSetUp: Promise<void> | undefined;
/**
 * For the tests that need Kubernetes: the namespace, and a kubeconfig with one more context —
 * the same cluster and user, reached through the delaying proxy. (The Chef-only tests run without it.)
 */
function kube(): Promise<void> {
  kubeSetUp ??= (async () => {
    const cluster = kc.getCurrentCluster()!;
    const apiserver = new URL(cluster.server);
    kubeProxy = await startDelayProxy({ host: apiserver.hostname, port: Number(apiserver.port) });
    const withSlow = new k8s.KubeConfig();
    withSlow.loadFromString(kc.exportConfig());
    withSlow.addCluster({ ...cluster, name: SLOW, server: `https://${kubeProxy.address}` });
    withSlow.addContext({ name: SLOW, cluster: SLOW, user: kc.getCurrentUser()!.name });
    const file = join(mkdtempSync(join(tmpdir(), 'hr-kube-')), 'config');
    writeFileSync(file, withSlow.exportConfig());
    process.env.HYBRID_RELEASE_ADMIN_KUBECONFIG ??= process.env.KUBECONFIG;
    process.env.KUBECONFIG = file;
    resetKubeClients();
    await createNamespace(ns, kc);
  })();
  return kubeSetUp;
}

const env = async (name: string) => chef.get<{ cookbook_versions: Record<string, string>; default_attributes: Record<string, unknown> }>(`environments/${name}`, { object: name });
const images = async (name: string) =>
  ((await custom().getNamespacedCustomObject({ group: 'kustomize.toolkit.fluxcd.io', version: 'v1', namespace: ns, plural: 'kustomizations', name })) as { spec: { images?: unknown[] } }).spec.images;

function spec(app: string, body: Record<string, unknown>) {
  return validateSpec({ apiVersion: 'hybrid-release.dev/v1alpha1', kind: 'HybridRelease', metadata: { name: `${app}-r` }, spec: { app, version: '2.1.0', ...body } });
}
const chefTarget = (environment: string, cookbooks: Record<string, string>, serverUrl = chefEnv.serverUrl) => ({
  id: 'vms',
  serverUrl,
  environment,
  cookbooks,
  credentials: { keyFile: chefEnv.keyFile, clientName: chefEnv.clientName },
});

async function waitFor(handle: WorkflowHandle, ok: (s: ReleaseStatus) => boolean, what: string, timeoutMs = 300_000): Promise<ReleaseStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await handle.query(statusQuery);
    if (ok(s)) return s;
    if (Date.now() > deadline) assert.fail(`waited for ${what}; last seen: ${s.phase}${s.waiting ? ` (${s.waiting})` : ''}${s.error ? ` — ${s.error}` : ''}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
const phase = (h: WorkflowHandle, p: string) => waitFor(h, (s) => s.phase === p, `phase ${p}`);

async function ended(handle: WorkflowHandle): Promise<{ message: string; status: ReleaseStatus }> {
  try {
    return { message: '', status: (await handle.result()) as ReleaseStatus };
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const cause = err.cause as { message: string; details?: unknown[] };
    return { message: cause.message, status: cause.details?.[0] as ReleaseStatus };
  }
}

describe('shared targets on the real servers', () => {
  it('20 apps pin one environment at once through 200 ms PUT latency: all 20 pins land, a person\'s edit in the middle is kept', async () => {
    const environment = uniqueName('prod');
    await createEnvironment(chef, environment, { [cookbook]: '= 2.0.0' });
    const apps = Array.from({ length: 20 }, (_, i) => ({ app: uniqueName(`pin${i}`), cookbook: `${cookbook}_${i}` }));
    await mapLimit(apps, 4, (a) => uploadCookbook(chef, a.cookbook, '1.0.0'));
    chefProxy.setDelay(delayMethod('PUT', 200));
    const middle = 10;
    const handles = await Promise.all(
      apps.map((a, i) =>
        startRelease(
          tw.client,
          spec(a.app, {
            chef: [chefTarget(environment, { [a.cookbook]: '= 1.0.0' }, `http://${chefProxy.address}`)],
            // the middle one holds the environment in a pause after its pin: the person edits then
            steps: i === middle ? [{ chef: 'vms' }, { pause: {} }] : [{ chef: 'vms' }],
          }),
          { taskQueue: tw.taskQueue },
        ),
      ),
    );
    await phase(handles[middle]!, 'AwaitingApproval');
    // a person's knife environment edit while the middle release holds the lease
    const before = await env(environment);
    await chef.put(`environments/${environment}`, {
      object: environment,
      body: { name: environment, json_class: 'Chef::Environment', chef_type: 'environment', description: 'edited by a person', default_attributes: { ...before.default_attributes, oncall: 'alice' }, override_attributes: {}, cookbook_versions: before.cookbook_versions },
    });
    await sendCommand(handles[middle]!, 'approve', { by: 'alice' });
    const results = await Promise.all(handles.map((h) => ended(h)));
    chefProxy.setDelay(() => 0);
    for (const [i, r] of results.entries()) assert.equal(r.status.phase, 'Succeeded', `${apps[i]!.app}: ${r.message}`);
    const after = await env(environment);
    for (const a of apps) assert.equal(after.cookbook_versions[a.cookbook], '= 1.0.0', `pin of ${a.app}`);
    assert.equal(after.cookbook_versions[cookbook], '= 2.0.0');
    assert.equal(after.default_attributes.oncall, 'alice', "the person's edit is kept");
    assert.ok(chefProxy.delayed() >= 20, 'the PUTs went through the delaying proxy');
  });

  it('two releases change different images of one shared Kustomization: both pass, both images set', async () => {
    await kube();
    const name = uniqueName('shared-ks');
    await createKustomization({ namespace: ns, name, images: [{ name: 'ghcr.io/acme/web', newTag: '2.0.0' }, { name: 'ghcr.io/acme/sidecar', newTag: '1.0.0' }] }, kc);
    const release = (app: string, image: { name: string; newTag: string }) =>
      spec(app, {
        flux: [{ id: 'web', kind: 'Kustomization', namespace: ns, name, images: [image] }],
        gates: { ready: { fluxReady: { target: 'web' }, timeout: '3m', interval: '1s' } },
        steps: [{ flux: 'web' }, { gate: 'ready' }],
      });
    const [a, b] = await Promise.all([
      startRelease(tw.client, release(uniqueName('web'), { name: 'ghcr.io/acme/web', newTag: '2.1.0' }), { taskQueue: tw.taskQueue }),
      startRelease(tw.client, release(uniqueName('sidecar'), { name: 'ghcr.io/acme/sidecar', newTag: '1.1.0' }), { taskQueue: tw.taskQueue }),
    ]);
    const [ra, rb] = [await ended(a), await ended(b)];
    assert.equal(ra.status.phase, 'Succeeded', ra.message);
    assert.equal(rb.status.phase, 'Succeeded', rb.message);
    assert.deepEqual(await images(name), [{ name: 'ghcr.io/acme/web', newTag: '2.1.0' }, { name: 'ghcr.io/acme/sidecar', newTag: '1.1.0' }]);
  });

  it('a hotfix = 2.1.1 during the pause, then abort: RollbackFailed naming = 2.1.1, the environment keeps it', async () => {
    const environment = uniqueName('hotfix');
    await createEnvironment(chef, environment, { [cookbook]: '= 2.0.0' });
    const app = uniqueName('hotfix');
    const handle = await startRelease(tw.client, spec(app, { chef: [chefTarget(environment, { [cookbook]: '= 2.1.0' })], steps: [{ chef: 'vms' }, { pause: {} }] }), { taskQueue: tw.taskQueue });
    await phase(handle, 'AwaitingApproval');
    const now = await env(environment);
    await chef.put(`environments/${environment}`, { object: environment, body: { ...now, name: environment, cookbook_versions: { ...now.cookbook_versions, [cookbook]: '= 2.1.1' } } });
    await sendCommand(handle, 'abort', { by: 'alice', reason: 'hotfix went out' });
    const stuck = await phase(handle, 'RollbackFailed');
    assert.match(stuck.changes[0]!.error!, new RegExp(`cookbook_versions.${cookbook} in environment ${environment} .* is "= 2.1.1", not "= 2.1.0" as this release wrote: changed outside this release`));
    assert.equal((await env(environment)).cookbook_versions[cookbook], '= 2.1.1');
    await sendCommand(handle, 'skip', { by: 'alice' });
    const { status } = await ended(handle);
    assert.equal(status.phase, 'PartiallyRolledBack');
    assert.equal((await env(environment)).cookbook_versions[cookbook], '= 2.1.1');
  });

  // the targets of the abort-while-writing tests, checked again 60 s after the last abort
  const inFlight: { checks: Array<() => Promise<void>>; lastAbort: number } = { checks: [], lastAbort: 0 };

  it('abort while the Chef pin is in flight (the PUT 1.5 s late through the proxy), 20 times: the environment ends as before', async () => {
    chefProxy.setDelay(delayMethod('PUT', 1_500));
    try {
      for (let i = 0; i < 20; i++) {
        const environment = uniqueName(`inflight${i}`);
        await createEnvironment(chef, environment, { [cookbook]: '= 2.0.0' });
        const seen = chefProxy.delayed();
        const handle = await startRelease(tw.client, spec(uniqueName('inflight'), { chef: [chefTarget(environment, { [cookbook]: '= 2.1.0' }, `http://${chefProxy.address}`)], steps: [{ chef: 'vms' }, { pause: {} }] }), { taskQueue: tw.taskQueue });
        await waitForCount(() => chefProxy.delayed() > seen, 'the pin PUT to reach the proxy');
        await sendCommand(handle, 'abort', { by: 'alice' });
        inFlight.lastAbort = Date.now();
        const { status, message } = await ended(handle);
        assert.equal(status.phase, 'RolledBack', message);
        const check = async () => assert.deepEqual((await env(environment)).cookbook_versions, { [cookbook]: '= 2.0.0' }, environment);
        await check();
        inFlight.checks.push(check);
      }
    } finally {
      chefProxy.setDelay(() => 0);
    }
  });

  it('abort while the Flux patch is in flight (every request 400 ms late through the proxy), 20 times: the Kustomization ends as before', async () => {
    await kube();
    const name = uniqueName('inflight-ks');
    await createKustomization({ namespace: ns, name, images: [{ name: 'ghcr.io/acme/web', newTag: '2.0.0' }], wait: false }, kc);
    const beforeImages = await images(name);
    kubeProxy.setDelay(() => 400);
    try {
      for (let i = 0; i < 20; i++) {
        const handle = await startRelease(
          tw.client,
          spec(uniqueName('inflight-ks'), { flux: [{ id: 'web', kind: 'Kustomization', context: SLOW, namespace: ns, name, images: [{ name: 'ghcr.io/acme/web', newTag: `2.1.${i}` }] }], steps: [{ flux: 'web' }, { pause: {} }] }),
          { taskQueue: tw.taskQueue },
        );
        // the snapshot is recorded: what reaches the apiserver next is the pin's read and patch
        await waitFor(handle, (s) => s.changes.length > 0, 'the Flux change to be registered');
        const seen = kubeProxy.delayed();
        await waitForCount(() => kubeProxy.delayed() > seen, 'a request of the pin through the slow proxy');
        await sendCommand(handle, 'abort', { by: 'alice' });
        inFlight.lastAbort = Date.now();
        const { status, message } = await ended(handle);
        assert.equal(status.phase, 'RolledBack', message);
        assert.deepEqual(await images(name), beforeImages, `round ${i}`);
      }
    } finally {
      kubeProxy.setDelay(() => 0);
    }
    inFlight.checks.push(async () => assert.deepEqual(await images(name), beforeImages, name));
  });

  it('60 s after the last abort, every target of the abort-while-writing tests is still as before', async () => {
    assert.ok(inFlight.checks.length > 0, 'the abort-while-writing tests ran');
    // nothing sent during the aborts may land later
    await new Promise((r) => setTimeout(r, Math.max(0, inFlight.lastAbort + 60_000 - Date.now())));
    for (const check of inFlight.checks) await check();
  });

  it('the engine enforces its rules on a raw start: an invalid input, or a second release of a running app, is refused with nothing changed', async () => {
    const environment = uniqueName('raw');
    await createEnvironment(chef, environment, { [cookbook]: '= 2.0.0' });
    const app = uniqueName('raw');
    const input = spec(app, { chef: [chefTarget(environment, { [cookbook]: '= 2.1.0' })], steps: [{ chef: 'vms' }, { pause: {} }] });
    // as `temporal workflow start --type releaseV2` would: no CLI, no client-side validation
    const raw = (workflowId: string, args: unknown) => tw.client.workflow.start('releaseV2', { taskQueue: tw.taskQueue, workflowId, args: [args] });
    const invalid = await ended(await raw(`release-${app}`, { spec: { ...input.spec, spec: { ...input.spec.spec, chef: [{ ...input.spec.spec.chef[0], cookbooks: { [cookbook]: '>=2.1.0' } }] } } }));
    assert.equal(invalid.status.phase, 'Failed');
    assert.match(invalid.message, /the release spec is not valid/);
    const first = await raw(`release-${app}`, input);
    await phase(first, 'AwaitingApproval');
    // the same app under another workflow id: refused by the worker's admission
    const other = await ended(await raw(`my-own-${app}`, input));
    assert.equal(other.status.phase, 'Failed');
    assert.match(other.message, new RegExp(`runs as workflow release-${app}, one at a time`));
    // under its own id while one runs: Temporal refuses the start
    await assert.rejects(raw(`release-${app}`, input), WorkflowExecutionAlreadyStartedError);
    assert.equal((await env(environment)).cookbook_versions[cookbook], '= 2.1.0', 'only the first release changed the environment');
    await sendCommand(first, 'abort', { by: 'alice' });
    assert.equal((await ended(first)).status.phase, 'RolledBack');
    assert.equal((await env(environment)).cookbook_versions[cookbook], '= 2.0.0');
  });

  it('the final webhook reaches a real receiver before the release closes; a failing webhook changes nothing', async () => {
    const environment = uniqueName('hook');
    await createEnvironment(chef, environment, { [cookbook]: '= 2.0.0' });
    const app = uniqueName('hook');
    const hooks = { notifications: { webhooks: [{ urlFrom: { env: 'SHARED_TEST_HOOK_OK' } }, { urlFrom: { env: 'SHARED_TEST_HOOK_FAIL' } }] } };
    const handle = await startRelease(tw.client, spec(app, { chef: [chefTarget(environment, { [cookbook]: '= 2.1.0' })], ...hooks }), { taskQueue: tw.taskQueue });
    const { status, message } = await ended(handle);
    assert.equal(status.phase, 'Succeeded', message);
    // already there when the result is: the release waited for it
    assert.ok(received.some((e) => e.path === '/ok' && e.release === `${app}-r` && e.phase === 'Succeeded'), JSON.stringify(received.filter((e) => e.release === `${app}-r`)));
    assert.ok(received.some((e) => e.path === '/fail' && e.release === `${app}-r` && e.phase === 'Succeeded'), 'the failing receiver was asked too');
  });
});

async function waitForCount(ok: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`waited for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
