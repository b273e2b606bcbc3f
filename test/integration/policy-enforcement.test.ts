/**
 * The policy inside the activities, with no workflow in front: whatever schedules an activity on
 * the worker's task queue (a bug in the workflow, or another workflow in the namespace), the
 * activity refuses what the policy does not allow for the app it runs for (from the workflow id),
 * before any request leaves — against the real servers, which show nothing changed.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/activity';
import { closeChefPools } from '../../activities/chef/client.ts';
import * as chef from '../../activities/chef/index.ts';
import * as flux from '../../activities/flux/index.ts';
import * as gates from '../../activities/gates/index.ts';
import * as kube from '../../activities/kube/index.ts';
import * as notify from '../../activities/notify/index.ts';
import { adminClient, chefServerEnv, createEnvironment, uploadCookbook } from '../support/chef-fixtures.ts';
import { requireEnv } from '../support/env.ts';
import { makePolicy, mockActivityEnv } from '../support/policy.ts';
import { adminKubeConfig, createCanaryIngress, createHelmRelease, createNamespace } from '../support/seed-kube.ts';
import { DefaultLogger } from '@temporalio/worker';

const suffix = Math.random().toString(36).slice(2, 7);
const app = `enforce-${suffix}`;
const ns = `enforce-${suffix}`;
const other = `enforce-other-${suffix}`;
const cookbook = `enf_${suffix}`;
const chefEnv = chefServerEnv();
const chefAdmin = adminClient();
const kc = adminKubeConfig();
const queue = `strict-${suffix}`;
let listener: { server: Server; url: string; hits: number };

const policy = () =>
  makePolicy({
    apiVersion: 'hybrid-release.dev/v1alpha1',
    kind: 'ReleasePolicy',
    apps: [
      {
        app,
        kubernetes: [{ namespaces: [ns] }],
        chef: [{ server: chefEnv.serverUrl, environments: [app], cookbooks: [cookbook], credentials: [{ keyFile: chefEnv.keyFile, clientName: chefEnv.clientName }] }],
        hosts: ['gate.example.com'],
        references: [],
      },
    ],
  });

/** Runs an activity as the worker would for a release of `forApp`, under the strict policy. */
function run<A, R>(fn: (input: A) => Promise<R>, input: A, forApp = app): Promise<R> {
  return mockActivityEnv({ taskQueue: queue, workflowExecution: { workflowId: `release-${forApp}`, runId: 'r' } }, { policy: policy(), logger: new DefaultLogger('ERROR') }).run(fn, input) as Promise<R>;
}

async function denied(p: Promise<unknown>, why: RegExp): Promise<void> {
  const err = await p.then(
    (v) => assert.fail(`allowed: ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, String(err));
  assert.equal(err.type, 'PolicyDenied');
  assert.equal(err.nonRetryable, true);
  assert.match(err.message, why);
}

before(async () => {
  const server = createServer((_req, res) => {
    listener.hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  listener = { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: 0 };
  await createNamespace(ns, kc);
  await createNamespace(other, kc);
  await uploadCookbook(chefAdmin, cookbook, '1.0.0');
  await createEnvironment(chefAdmin, app, { [cookbook]: '= 1.0.0' });
  await createEnvironment(chefAdmin, `${app}-other`, { [cookbook]: '= 1.0.0' });
});
after(async () => {
  listener?.server.close();
  await closeChefPools();
});

describe('activities enforce the policy themselves', () => {
  it('Flux: a HelmRelease outside the namespaces is neither read nor patched', async () => {
    await createHelmRelease({ namespace: other, name: 'victim', values: { image: { tag: '1' } } }, kc);
    const target = { id: 'x', kind: 'HelmRelease' as const, namespace: other, name: 'victim', values: [{ path: 'image.tag', value: 'evil' }] };
    await denied(run(flux.fluxApply, { target, token: 't' }), new RegExp(`HelmRelease ${other}/victim is outside the kubernetes targets of app ${app}`));
    await denied(run(flux.fluxSnapshot, target), /outside/);
    await denied(run(flux.fluxRestore, { target, previous: { kind: 'HelmRelease', values: { 'image.tag': 'evil' } }, token: 'u' }), /outside/);
    const hr = (await kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({ group: 'helm.toolkit.fluxcd.io', version: 'v2', namespace: other, plural: 'helmreleases', name: 'victim' })) as { spec: { values: unknown } };
    assert.deepEqual(hr.spec.values, { image: { tag: '1' } });
  });

  it('Kubernetes: a canary Ingress or a Deployment outside the namespaces', async () => {
    await createCanaryIngress({ namespace: other, name: 'web-canary', host: 'x.example', serviceName: 'web' }, kc);
    await denied(run(kube.setCanaryWeight, { ingress: { namespace: other, name: 'web-canary' }, weight: 100 }), /Ingress .*\/web-canary is outside/);
    const ing = await kc.makeApiClient(k8s.NetworkingV1Api).readNamespacedIngress({ namespace: other, name: 'web-canary' });
    assert.equal(ing.metadata?.annotations?.['nginx.ingress.kubernetes.io/canary-weight'], '0');
    await denied(run(kube.rolloutGate, { gate: 'r', deployment: { namespace: other, name: 'web' }, timeoutMs: 1000, intervalMs: 100, successes: 1 }), /Deployment .*\/web is outside/);
  });

  it("Chef: another team's environment or credential; the environment keeps its pins", async () => {
    const target = { id: 'vms', serverUrl: chefEnv.serverUrl, environment: `${app}-other`, cookbooks: { [cookbook]: '= 1.0.0' }, credentials: { keyFile: chefEnv.keyFile, clientName: chefEnv.clientName } };
    await denied(run(chef.chefPin, target), new RegExp(`Chef environment ${app}-other .* not among the Chef environments of app ${app}`));
    await denied(run(chef.chefPin, { ...target, environment: app, credentials: { keyFile: '/tmp/other-team.pem', clientName: 'payments' } }), /Chef credentials key file \/tmp\/other-team\.pem .* are not among the Chef credentials/);
    await denied(run(chef.chefRestore, { target: { ...target, environment: app }, previous: { other_cookbook: '= 9.9.9' } }), /cookbook other_cookbook .* not among the Chef cookbooks/);
    assert.deepEqual((await chefAdmin.get<{ cookbook_versions: Record<string, string> }>(`environments/${app}`, { object: app })).cookbook_versions, { [cookbook]: '= 1.0.0' });
    // what the policy allows still works
    assert.deepEqual(await run(chef.chefSnapshot, { ...target, environment: app }), { [cookbook]: '= 1.0.0' });
  });

  it('gates and webhooks: nothing leaves for a host the policy does not list, and no header is read', async () => {
    process.env.ENFORCE_TOKEN = 'enforce-token';
    try {
      await denied(
        run(gates.httpGate, { gate: 'g', timeoutMs: 1000, intervalMs: 100, successes: 1, http: { url: `${listener.url}/x`, expectStatus: 200, requestTimeoutMs: 500, headers: { 'X-Token': { env: 'ENFORCE_TOKEN' } } } }),
        /gate g: GET http:\/\/127\.0\.0\.1:\d+\/x: 127\.0\.0\.1:\d+ is not listed in the hosts of app .* \(127\.0\.0\.1 is a loopback address\)/,
      );
      await denied(run(gates.prometheusGate, { gate: 'p', timeoutMs: 1000, intervalMs: 100, successes: 1, prometheus: { url: requireEnv('PROMETHEUS_URL'), query: 'vector(1)', comparison: '>', threshold: 0, onEmpty: 'fail' } }), /Prometheus at .* is not listed in the hosts/);
      const sent = await run(notify.notify, { webhooks: [{ urlFrom: { env: 'ENFORCE_TOKEN' } }], event: { release: 'r', app, phase: 'Applying', summary: 's', at: new Date().toISOString() } });
      assert.deepEqual(sent, { delivered: 0, failed: 1 }, 'the reference is not the app\'s to read');
      process.env.ENFORCE_HOOK = `${listener.url}/hook`;
      const policyWithRef = makePolicy({ apiVersion: 'hybrid-release.dev/v1alpha1', kind: 'ReleasePolicy', apps: [{ app, hosts: ['gate.example.com'], references: [{ env: 'ENFORCE_HOOK' }] }] });
      const hook = await mockActivityEnv({ taskQueue: `${queue}-hook`, workflowExecution: { workflowId: `release-${app}`, runId: 'r' } }, { policy: policyWithRef, logger: new DefaultLogger('ERROR') }).run(notify.notify, {
        webhooks: [{ urlFrom: { env: 'ENFORCE_HOOK' } }],
        event: { release: 'r', app, phase: 'Applying', summary: 's', at: new Date().toISOString() },
      });
      assert.deepEqual(hook, { delivered: 0, failed: 1 }, 'a readable URL to a host not listed');
      assert.equal(listener.hits, 0, 'the listener heard nothing');
    } finally {
      delete process.env.ENFORCE_TOKEN;
      delete process.env.ENFORCE_HOOK;
    }
  });

  it('an app the policy does not name, or a workflow that is not a release, may do nothing', async () => {
    await denied(run(chef.chefSnapshot, { id: 'vms', serverUrl: chefEnv.serverUrl, environment: app, cookbooks: { [cookbook]: '= 1.0.0' }, credentials: { keyFile: chefEnv.keyFile, clientName: chefEnv.clientName } }, 'someone-else'), /no entry of the worker's policy .* matches app someone-else/);
    const notARelease = mockActivityEnv({ taskQueue: queue, workflowExecution: { workflowId: 'my-own-workflow', runId: 'r' } }, { logger: new DefaultLogger('ERROR') });
    await denied(notARelease.run(kube.canarySnapshot, { namespace: ns, name: 'x' }) as Promise<unknown>, /acts only for releases \(workflow id release-<app>\), not for workflow "my-own-workflow"/);
  });
});
