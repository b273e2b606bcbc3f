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
import { startStandIn } from '../support/controller-standin.ts';
import {
  adminKubeConfig,
  createDeployment,
  createHelmRelease,
  createKustomization,
  createNamespace,
  fluxGroups,
  serviceAccountKubeConfig,
} from '../support/seed-kube.ts';

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

describe('controller stand-in (through the real API server)', () => {
  const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

  async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await read();
      if (ok(v)) return v;
      if (Date.now() > deadline) throw new Error(`${what}: not reached in ${timeoutMs}ms; last: ${JSON.stringify(v)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('answers reconcile requests and rollouts as the controllers do, or fails on request', async () => {
    const kc = adminKubeConfig();
    const namespace = uniqueName('standin');
    await createNamespace(namespace, kc);
    await createKustomization({ namespace, name: 'good', images: [{ name: 'app', newTag: '1' }] }, kc);
    await createKustomization({ namespace, name: 'bad' }, kc);
    await createHelmRelease({ namespace, name: 'chart', values: { image: { tag: '1' } } }, kc);
    await createDeployment({ namespace, name: 'web', image: 'nginx:1', replicas: 3 }, kc);
    const standIn = startStandIn({
      kubeconfig: kc,
      namespaces: [namespace],
      delayMs: 100,
      failures: { bad: { reason: 'HealthCheckFailed', message: 'timeout waiting for Deployment/web' } },
    });
    try {
      const api = kc.makeApiClient(k8s.CustomObjectsApi);
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      const k = fluxGroups.kustomization;
      const h = fluxGroups.helmRelease;
      const token = new Date().toISOString();
      for (const name of ['good', 'bad']) {
        await api.patchNamespacedCustomObject(
          { group: k.group, version: k.version, plural: k.plural, namespace, name, body: { metadata: { annotations: { 'reconcile.fluxcd.io/requestedAt': token } } } },
          mergePatch,
        );
      }
      const ready = (o: any) => o.status?.conditions?.find((c: any) => c.type === 'Ready');
      const good: any = await until(
        'good Kustomization handled',
        () => api.getNamespacedCustomObject({ group: k.group, version: k.version, plural: k.plural, namespace, name: 'good' }),
        (o: any) => o.status?.lastHandledReconcileAt === token,
      );
      assert.equal(ready(good).status, 'True');
      assert.equal(ready(good).reason, 'ReconciliationSucceeded');
      assert.equal(good.status.observedGeneration, good.metadata.generation);
      assert.match(good.status.lastAppliedRevision, /^main@sha1:/);
      const bad: any = await until(
        'bad Kustomization handled',
        () => api.getNamespacedCustomObject({ group: k.group, version: k.version, plural: k.plural, namespace, name: 'bad' }),
        (o: any) => o.status?.lastHandledReconcileAt === token,
      );
      assert.deepEqual([ready(bad).status, ready(bad).reason], ['False', 'HealthCheckFailed']);
      const hr: any = await until(
        'HelmRelease installed',
        () => api.getNamespacedCustomObject({ group: h.group, version: h.version, plural: h.plural, namespace, name: 'chart' }),
        (o: any) => ready(o)?.status === 'True',
      );
      assert.equal(hr.status.history[0].version, 1);
      const dep = await until(
        'Deployment rolled out',
        () => apps.readNamespacedDeployment({ namespace, name: 'web' }),
        (d) => d.status?.observedGeneration === d.metadata?.generation,
      );
      assert.equal(dep.status?.updatedReplicas, 3);
      assert.equal(dep.status?.availableReplicas, 3);
    } finally {
      await standIn.stop();
    }
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
