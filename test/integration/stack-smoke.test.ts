/**
 * Smoke tests of the local stack: each real server answers the way the project relies on.
 * Servers come from .stack/env (npm test loads it); a missing one fails with what to do.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { ChefClient, closeChefPools } from '../../activities/chef/client.ts';
import { requireEnv, uniqueName } from '../support/env.ts';
import {
  adminKubeConfig,
  createHelmRelease,
  createKustomization,
  createNamespace,
  fluxGroups,
  getFluxObject,
  secondClusterKubeConfig,
  serviceAccountKubeConfig,
} from '../support/seed-kube.ts';
import { commitFiles, gitRepoUrl, publishChart } from '../support/sources.ts';

describe('Temporal dev server', () => {
  it('runs a trivial workflow to completion', async () => {
    // the worker's bundler and lifecycle logs drown the test output at INFO
    Runtime.install({ logger: new DefaultLogger('WARN') });
    const address = requireEnv('TEMPORAL_ADDRESS');
    const namespace = requireEnv('TEMPORAL_NAMESPACE');
    const taskQueue = uniqueName('smoke');
    const nativeConnection = await NativeConnection.connect({ address });
    const worker = await Worker.create({
      connection: nativeConnection,
      namespace,
      taskQueue,
      workflowsPath: new URL('../support/smoke-workflow.ts', import.meta.url).pathname,
      activities: { greet: async (name: string) => `hello, ${name}` },
    });
    const connection = await Connection.connect({ address });
    try {
      const client = new Client({ connection, namespace });
      const result = await worker.runUntil(
        client.workflow.execute('smokeWorkflow', { taskQueue, workflowId: uniqueName('smoke-wf'), args: ['stack'] }),
      );
      assert.equal(result, 'hello, stack');
    } finally {
      await connection.close();
      await nativeConnection.close();
    }
  });
});

describe('Chef server (goiardi)', () => {
  after(() => closeChefPools());
  const client = (key: KeyObject) =>
    new ChefClient({ serverUrl: requireEnv('CHEF_SERVER_URL'), identity: { clientName: requireEnv('CHEF_CLIENT_NAME'), key, source: 'smoke test' } });

  it('answers an authenticated request', async () => {
    const env = await client(createPrivateKey(readFileSync(requireEnv('CHEF_CLIENT_KEY')))).get<{ name: string }>('environments/_default', { object: 'environment _default' });
    assert.equal(env.name, '_default');
  });

  it('refuses a request signed with the wrong key (401)', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await assert.rejects(client(privateKey).get('environments/_default', { object: 'environment _default' }), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, 'ChefAuth');
      assert.match(err.message, /401/);
      return true;
    });
  });
});

describe('Kubernetes API server with the Flux CRDs', () => {
  const g = fluxGroups.kustomization;

  it('creates a Kustomization and merge-patches it; refuses strategic merge patch (415)', async () => {
    const kc = adminKubeConfig();
    const namespace = uniqueName('smoke');
    await createNamespace(namespace, kc);
    await createKustomization({ namespace, name: 'app', images: [{ name: 'ghcr.io/acme/app', newTag: '1.0.0' }] }, kc);
    const api = kc.makeApiClient(k8s.CustomObjectsApi);
    const ref = { group: g.group, version: g.version, plural: g.plural, namespace, name: 'app' };
    const patched: any = await api.patchNamespacedCustomObject(
      { ...ref, body: { spec: { images: [{ name: 'ghcr.io/acme/app', newTag: '1.1.0' }] } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    assert.equal(patched.spec.images[0].newTag, '1.1.0');
    assert.equal(patched.metadata.generation, 2);
    await assert.rejects(
      api.patchNamespacedCustomObject(
        { ...ref, body: { spec: { suspend: true } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
      ),
      (err: { code?: number }) => err.code === 415,
    );
  });

  it('denies a ServiceAccount without rights (403)', async () => {
    const namespace = uniqueName('smoke');
    await createNamespace(namespace);
    const { kubeConfig } = await serviceAccountKubeConfig(namespace, 'nobody');
    const api = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    await assert.rejects(
      api.listNamespacedCustomObject({ group: g.group, version: g.version, plural: g.plural, namespace }),
      (err: { code?: number }) => err.code === 403,
    );
  });
});

describe('the source server', () => {
  it('takes a push to a new repository, serves it back over smart HTTP, and serves a published chart', async () => {
    const repo = uniqueName('smoke/repo');
    const sha = await commitFiles(repo, { 'README.md': 'hello\n' }, 'first');
    const { execFileSync } = await import('node:child_process');
    const refs = execFileSync('git', ['ls-remote', gitRepoUrl(repo), 'refs/heads/main'], { encoding: 'utf8' });
    assert.equal(refs.split('\t')[0], sha);
    const url = await publishChart(uniqueName('smoke'), { version: '1.2.3' });
    const index = await (await fetch(`${url}index.yaml`)).text();
    assert.match(index, /name: web/);
    assert.match(index, /version: 1\.2\.3/);
    assert.match(index, /urls:\s+- web-1\.2\.3\.tgz/);
  });
});

describe('the real controllers', () => {
  const kc = adminKubeConfig();
  const ready = (o: any) => o.status?.conditions?.find((c: any) => c.type === 'Ready');

  it('Git → source-controller → kustomize-controller → Deployment → ReplicaSet → pods Running and Ready on kwok nodes', async () => {
    const namespace = uniqueName('smoke');
    await createNamespace(namespace, kc);
    // kube-controller-manager's serviceaccount controller gives every namespace its default ServiceAccount
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await createKustomization({ namespace, name: 'web', images: [{ name: 'ghcr.io/acme/web', newTag: '1.0.0' }], replicas: 3 }, kc);
    const ks = await getFluxObject(fluxGroups.kustomization, namespace, 'web', kc);
    assert.equal(ready(ks).reason, 'ReconciliationSucceeded');
    assert.match(ks.status.lastAppliedRevision, /^main@sha1:[0-9a-f]{40}$/);
    const d = await kc.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({ namespace, name: 'web' });
    assert.equal(d.status?.readyReplicas, 3);
    const pods = (await core.listNamespacedPod({ namespace })).items;
    assert.equal(pods.length, 3);
    for (const p of pods) {
      assert.equal(p.status?.phase, 'Running');
      assert.match(p.spec?.nodeName ?? '', /^kwok-node-\d$/);
      assert.equal(p.metadata?.ownerReferences?.[0]?.kind, 'ReplicaSet');
    }
    await core.readNamespacedServiceAccount({ namespace, name: 'default' });
  });

  it('a HelmRepository chart → helm-controller installs the HelmRelease', async () => {
    const namespace = uniqueName('smoke');
    await createNamespace(namespace, kc);
    await createHelmRelease({ namespace, name: 'chart', values: { image: { repository: 'ghcr.io/acme/web', tag: '1.0.0' } } }, kc);
    const hr = await getFluxObject(fluxGroups.helmRelease, namespace, 'chart', kc);
    assert.equal(ready(hr).reason, 'InstallSucceeded');
    assert.deepEqual(hr.status.history.map((h: any) => [h.version, h.status, h.chartName, h.chartVersion]), [[1, 'deployed', 'web', '1.0.0']]);
  });

  it('the second cluster is a cluster of its own, with its own nodes and controllers', async () => {
    const b = secondClusterKubeConfig();
    assert.notEqual(b.getCurrentCluster()?.server, kc.getCurrentCluster()?.server);
    const namespace = uniqueName('smoke-b');
    await createNamespace(namespace, b);
    await createKustomization({ namespace, name: 'web', images: [{ name: 'ghcr.io/acme/web', newTag: '1.0.0' }], replicas: 1 }, b);
    const nodes = (await b.makeApiClient(k8s.CoreV1Api).listNode()).items.map((n) => n.metadata?.name).sort();
    assert.deepEqual(nodes, ['kwok-node-0', 'kwok-node-1', 'kwok-node-2']);
    // not visible in the main cluster
    await assert.rejects(kc.makeApiClient(k8s.CoreV1Api).readNamespace({ name: namespace }), (err: { code?: number }) => err.code === 404);
  });
});

describe('Prometheus', () => {
  it('scrapes the demo exporter: its series are queryable', async () => {
    const prom = requireEnv('PROMETHEUS_URL');
    const exporter = requireEnv('DEMO_EXPORTER_URL');
    const query = async (q: string) => {
      const res = await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(q)}`);
      assert.equal(res.status, 200, await res.clone().text());
      return ((await res.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }).data.result;
    };
    // read-only on purpose: other test files steer the shared exporter's error rate concurrently
    const control = await fetch(`${exporter}/control`);
    assert.equal(control.status, 200);
    assert.equal(typeof ((await control.json()) as { errorRate: unknown }).errorRate, 'number');
    const up = await query('up{job="demo"}');
    assert.equal(up[0]?.value[1], '1', `Prometheus does not scrape the exporter: ${JSON.stringify(up)}`);
    const byCode = await query('sum by (code) (demo_http_requests_total{job="demo"})');
    assert.deepEqual(byCode.map((s) => s.metric.code).sort(), ['200', '500']);
  });
});
