/**
 * Flux activities against the real kube-apiserver with the Flux CRDs, run as the worker's
 * ServiceAccount (deploy/rbac.yaml only). Status is written by the stack's controller stand-in
 * for the reconcile paths, and by small helpers below where a test needs one precise status
 * (a stale token, a failure the stand-in would not produce at that moment).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mockInfo } from '../support/policy.ts';
import { DefaultLogger } from '@temporalio/worker';
import { CancelledFailure } from '@temporalio/activity';
import * as flux from '../../activities/flux/index.ts';
import type { FluxTarget } from '../../activities/flux/index.ts';
import { applyFlux } from '../../activities/flux/pin.ts';
import { FLUX_KINDS, fluxRef } from '../../activities/flux/resource.ts';
import { evaluateFlux } from '../../activities/flux/readiness.ts';
import { waitForFlux } from '../../activities/flux/wait.ts';
import { rejects, runActivity } from '../support/activity.ts';
import { uniqueName } from '../support/env.ts';
import { admin, createNamespace, deleteNamespace, mintKubeconfig, patchStatus, switchKubeconfig, useWorkerIdentity, waitAllowed, type Admin } from '../support/kube-worker.ts';
import { startStandIn, type StandIn } from '../support/controller-standin.ts';

/** handled by the controller stand-in */
const ns = uniqueName('flux-it');
/** status written by hand, per test, for precise cases */
const manual = uniqueName('flux-it-manual');
let a: Admin;
let workerKubeconfig: string;
let standin: StandIn;

type Kind = FluxTarget['kind'];
const coords = (kind: Kind, name: string, namespace = ns) => ({ ...FLUX_KINDS[kind], namespace, name });

async function seedKustomization(name: string, spec: Record<string, unknown> = {}, namespace = ns) {
  await a.custom.createNamespacedCustomObject({
    ...FLUX_KINDS.Kustomization,
    namespace,
    body: {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name, namespace },
      spec: { interval: '10m', path: './deploy', prune: true, sourceRef: { kind: 'GitRepository', name: 'app' }, ...spec },
    },
  });
}

async function seedHelmRelease(name: string, values: Record<string, unknown>, namespace = ns) {
  await a.custom.createNamespacedCustomObject({
    ...FLUX_KINDS.HelmRelease,
    namespace,
    body: {
      apiVersion: 'helm.toolkit.fluxcd.io/v2',
      kind: 'HelmRelease',
      metadata: { name, namespace },
      spec: { interval: '10m', chart: { spec: { chart: 'web', sourceRef: { kind: 'HelmRepository', name: 'charts' } } }, values },
    },
  });
}

async function read(kind: Kind, name: string, namespace = ns): Promise<any> {
  return a.custom.getNamespacedCustomObject(coords(kind, name, namespace));
}

/**
 * Writes Flux-shaped status for one request token, as the admin (a controller's identity), in the
 * namespace the stand-in does not handle, so nothing else writes these objects' status.
 */
async function writeStatus(kind: Kind, name: string, s: { token: string; ready: 'True' | 'False' | 'Unknown'; reason: string; message: string; generation?: number }) {
  const obj = await read(kind, name, manual);
  const generation = s.generation ?? obj.metadata.generation;
  await patchStatus(a, coords(kind, name, manual), {
    observedGeneration: generation,
    lastHandledReconcileAt: s.token,
    conditions: [{ type: 'Ready', status: s.ready, reason: s.reason, message: s.message, observedGeneration: generation, lastTransitionTime: new Date().toISOString() }],
  });
}

const gate = (target: FluxTarget, token: string, timeoutMs = 20_000, intervalMs = 1_000) =>
  runActivity(flux.fluxReadyGate, { gate: 'flux-ready', target, token, timeoutMs, intervalMs });

before(async () => {
  a = admin();
  await createNamespace(a, ns);
  await createNamespace(a, manual);
  // The stand-in runs as the admin (a controller's identity), the activities as the worker.
  standin = startStandIn({ kubeconfig: process.env.KUBECONFIG!, namespaces: [ns], delayMs: 300 });
  workerKubeconfig = await useWorkerIdentity(a);
});

after(async () => {
  await standin?.stop();
  await deleteNamespace(a, ns);
  await deleteNamespace(a, manual);
});

describe('Kustomization images', () => {
  const web = 'ghcr.io/acme/web';
  const other = 'ghcr.io/acme/other';
  const worker = 'ghcr.io/acme/worker';
  const original = [
    { name: web, newTag: '1.0.0' },
    { name: other, newName: 'registry.acme.dev/other', newTag: '9' },
  ];

  test('pin, wait for the stand-in to reconcile, restore exactly', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, { images: original });
    // The worker image has no entry yet; it resolves through a Deployment in the inventory.
    await a.apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'worker' },
        spec: {
          selector: { matchLabels: { app: 'worker' } },
          template: { metadata: { labels: { app: 'worker' } }, spec: { containers: [{ name: 'w', image: `${worker}:0.9.0` }] } },
        },
      },
    });
    await patchStatus(a, coords('Kustomization', name), { inventory: { entries: [{ id: `${ns}_worker_apps_Deployment`, v: 'v1' }] } });

    const target: FluxTarget = {
      id: 'web', kind: 'Kustomization', namespace: ns, name,
      images: [{ name: web, newTag: '1.1.0' }, { name: worker, digest: `sha256:${'a'.repeat(64)}` }],
    };
    const pre = await flux.fluxPreflight(target);
    assert.equal(pre.suspended, false);
    assert.equal(pre.generation, 1);

    const snapshot = await flux.fluxSnapshot(target);
    assert.deepEqual(snapshot, { kind: 'Kustomization', images: { [web]: { name: web, newTag: '1.0.0' }, [worker]: null } });

    const token = `release-1-${Date.now()}`;
    const previous = await flux.fluxApply({ target, token });
    assert.deepEqual(previous, snapshot);
    const applied = await read('Kustomization', name);
    assert.deepEqual(applied.spec.images, [
      { name: web, newTag: '1.1.0' },
      original[1],
      { name: worker, digest: `sha256:${'a'.repeat(64)}` },
    ]);
    assert.equal(applied.metadata.annotations['reconcile.fluxcd.io/requestedAt'], token);
    assert.equal(applied.metadata.generation, 2);

    const result = await gate(target, token);
    assert.equal(result.ok, true);
    assert.equal(result.kind, 'fluxReady');
    assert.equal((result.observed as { lastHandledReconcileAt: string }).lastHandledReconcileAt, token);

    // Idempotent: the same apply again writes nothing (the stand-in is done, so nothing else does).
    const before = (await read('Kustomization', name)).metadata.resourceVersion;
    const again = await flux.fluxApply({ target, token });
    assert.equal((await read('Kustomization', name)).metadata.resourceVersion, before);
    assert.deepEqual(again.kind === 'Kustomization' && again.images[web], { name: web, newTag: '1.1.0' });

    const undo = `release-1-undo-${Date.now()}`;
    await flux.fluxRestore({ target, previous, token: undo });
    const restored = await read('Kustomization', name);
    assert.deepEqual(restored.spec.images, original);
    assert.equal(restored.metadata.annotations['reconcile.fluxcd.io/requestedAt'], undo);
    assert.equal((await gate(target, undo)).ok, true);

    // Restore twice is harmless: no write at all.
    const rv = (await read('Kustomization', name)).metadata.resourceVersion;
    await flux.fluxRestore({ target, previous, token: undo });
    assert.equal((await read('Kustomization', name)).metadata.resourceVersion, rv);
  });

  test('restore of a Kustomization that had no images removes the field', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name);
    const target: FluxTarget = { id: 'x', kind: 'Kustomization', namespace: ns, name, images: [{ name: web, newTag: '2.0.0' }] };
    const previous = await flux.fluxApply({ target, token: 't1' });
    assert.deepEqual(previous, { kind: 'Kustomization', images: { [web]: null } });
    assert.deepEqual((await read('Kustomization', name)).spec.images, [{ name: web, newTag: '2.0.0' }]);
    await flux.fluxRestore({ target, previous, token: 't2' });
    assert.equal((await read('Kustomization', name)).spec.images, undefined);
  });

  test('a concurrent edit between read and patch: 409, re-read, both edits kept', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, { images: original }, manual);
    const target: FluxTarget = { id: 'web', kind: 'Kustomization', namespace: manual, name, images: [{ name: web, newTag: '1.2.0' }] };
    const { previous, attempts } = await applyFlux(target, 'tok-409', {
      afterRead: async (attempt) => {
        if (attempt !== 1) return;
        // Someone else pins the web image and bumps the other one after our read.
        const obj = await read('Kustomization', name, manual);
        await a.custom.replaceNamespacedCustomObject({
          ...coords('Kustomization', name, manual),
          body: { ...obj, spec: { ...obj.spec, images: [{ name: web, newTag: '1.0.5' }, { ...original[1], newTag: '10' }] } },
        });
      },
    });
    assert.equal(attempts, 2, 'the first patch must have hit 409');
    assert.deepEqual(previous, { kind: 'Kustomization', images: { [web]: { name: web, newTag: '1.0.5' } } }, 'previous is what the patch really replaced');
    assert.deepEqual((await read('Kustomization', name, manual)).spec.images, [{ name: web, newTag: '1.2.0' }, { ...original[1], newTag: '10' }]);
  });
});

describe('reconcile wait', () => {
  test('ignores an older handled token and passes on its own token', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, {}, manual);
    const target: FluxTarget = { id: 'w', kind: 'Kustomization', namespace: manual, name, images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] };
    await writeStatus('Kustomization', name, { token: 'older-release', ready: 'True', reason: 'ReconciliationSucceeded', message: 'Applied revision: main@sha1:old' });
    const started = Date.now();
    const pending = gate(target, 'this-release');
    // An older token that is Ready, then failing, must not end the wait either way.
    await new Promise((r) => setTimeout(r, 700));
    await writeStatus('Kustomization', name, { token: 'older-release', ready: 'False', reason: 'HealthCheckFailed', message: 'old failure' });
    await new Promise((r) => setTimeout(r, 700));
    await writeStatus('Kustomization', name, { token: 'this-release', ready: 'True', reason: 'ReconciliationSucceeded', message: 'Applied revision: main@sha1:new' });
    const result = await pending;
    assert.equal(result.ok, true);
    assert.ok(Date.now() - started >= 1400, 'must not have passed on the older token');
    assert.equal((result.observed as { lastHandledReconcileAt: string }).lastHandledReconcileAt, 'this-release');
  });

  test('Ready=False for its own token fails at once, quoting Flux', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, {}, manual);
    const target: FluxTarget = { id: 'w', kind: 'Kustomization', namespace: manual, name, images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] };
    const message = 'Deployment/shop/web status: \'Failed\': health check failed after 2m0s';
    await writeStatus('Kustomization', name, { token: 'bad-release', ready: 'False', reason: 'HealthCheckFailed', message });
    const started = Date.now();
    await rejects(gate(target, 'bad-release', 60_000, 10_000), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.equal(e.type, 'GateFailed');
      assert.match(e.message, /Ready=False HealthCheckFailed/);
      assert.ok(e.message.includes(message), e.message);
      assert.match(e.message, new RegExp(`Kustomization ${manual}/${name}`));
    });
    assert.ok(Date.now() - started < 5_000, 'fails fast, not at the deadline');
  });

  test('a failure injected into the stand-in ends the wait with its reason', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, { images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] });
    const target: FluxTarget = { id: 'w', kind: 'Kustomization', namespace: ns, name, images: [{ name: 'ghcr.io/acme/web', newTag: '2' }] };
    standin.setFailure(name, { reason: 'BuildFailed', message: 'kustomize build failed: accumulating resources' });
    await flux.fluxApply({ target, token: 'will-fail' });
    await rejects(gate(target, 'will-fail', 30_000), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /BuildFailed: kustomize build failed: accumulating resources/);
    });
  });

  test('times out with the last reason when nothing handles the token', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, {}, manual);
    const target: FluxTarget = { id: 'w', kind: 'Kustomization', namespace: manual, name, images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] };
    await rejects(gate(target, 'never-handled', 1_500, 500), (e) => {
      assert.equal(e.type, 'GateTimedOut');
      assert.match(e.message, /reconcile request never-handled not handled yet/);
    });
  });

  test('cancellation ends the wait promptly', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, {}, manual);
    const target: FluxTarget = { id: 'w', kind: 'Kustomization', namespace: manual, name, images: [{ name: 'x', newTag: '1' }] };
    const env = new MockActivityEnvironment(mockInfo(), { logger: new DefaultLogger('ERROR') });
    const pending = env.run(flux.fluxReadyGate, { gate: 'g', target, token: 'never', timeoutMs: 60_000, intervalMs: 1_000 });
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    env.cancel();
    await assert.rejects(pending, (e: Error) => e instanceof CancelledFailure);
    assert.ok(Date.now() - started < 1_000);
  });

  test('falls back to polling when the identity may not watch', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, {}, manual);
    // The namespace's default ServiceAccount, allowed get but not watch.
    await a.rbac.createNamespacedRole({ namespace: manual, body: { metadata: { name: 'get-only' }, rules: [{ apiGroups: ['kustomize.toolkit.fluxcd.io'], resources: ['kustomizations'], verbs: ['get'] }] } });
    await a.rbac.createNamespacedRoleBinding({ namespace: manual, body: { metadata: { name: 'get-only' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'get-only' }, subjects: [{ kind: 'ServiceAccount', name: 'default', namespace: manual }] } });
    const kubeconfig = await mintKubeconfig(a, { namespace: manual, name: 'default' });
    await waitAllowed(kubeconfig, { group: 'kustomize.toolkit.fluxcd.io', resource: 'kustomizations', verb: 'get', namespace: manual });
    switchKubeconfig(kubeconfig);
    try {
      const target: FluxTarget = { id: 'w', kind: 'Kustomization', namespace: manual, name, images: [{ name: 'x', newTag: '1' }] };
      setTimeout(() => void writeStatus('Kustomization', name, { token: 'poll-me', ready: 'True', reason: 'ReconciliationSucceeded', message: 'ok' }), 800);
      const r = await waitForFlux({ ref: fluxRef(target), evaluate: (o) => evaluateFlux('Kustomization', o, 'poll-me'), deadline: Date.now() + 15_000, intervalMs: 1_000 });
      assert.equal(r.outcome.status, 'pass');
      assert.equal(r.via, 'get', 'seen by polling');
      assert.ok(r.watchFailures >= 1, 'the watch was tried and refused');
    } finally {
      switchKubeconfig(workerKubeconfig);
    }
  });
});

describe('preflight', () => {
  test('a suspended Kustomization is refused, naming it', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, { suspend: true, images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] });
    const target: FluxTarget = { id: 'w', kind: 'Kustomization', namespace: ns, name, images: [{ name: 'ghcr.io/acme/web', newTag: '2' }] };
    await rejects(flux.fluxPreflight(target), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, new RegExp(`Kustomization ${ns}/${name}.*suspended`));
    });
  });

  test('an image the Kustomization does not use is refused', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, { images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] });
    const target: FluxTarget = { id: 'w', kind: 'Kustomization', namespace: ns, name, images: [{ name: 'ghcr.io/acme/wbe', newTag: '2' }] };
    await rejects(flux.fluxPreflight(target), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /"ghcr\.io\/acme\/wbe" not found.*entries: ghcr\.io\/acme\/web/);
    });
  });

  test('a missing object is a non-retryable 404 naming it', async () => {
    const target: FluxTarget = { id: 'w', kind: 'HelmRelease', namespace: ns, name: 'does-not-exist', values: [{ path: 'image.tag', value: '1' }] };
    await rejects(flux.fluxPreflight(target), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.equal(e.type, 'KubeNotFound');
      assert.match(e.message, new RegExp(`helmreleases.helm.toolkit.fluxcd.io ${ns}/does-not-exist`));
    });
  });

  test('an identity without patch is refused by SelfSubjectAccessReview, naming object and verb', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, { images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] });
    const sa = uniqueName('reader');
    await a.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
    await a.rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: sa }, rules: [{ apiGroups: ['kustomize.toolkit.fluxcd.io'], resources: ['kustomizations'], verbs: ['get'] }] } });
    await a.rbac.createNamespacedRoleBinding({ namespace: ns, body: { metadata: { name: sa }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa }, subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns }] } });
    const kubeconfig = await mintKubeconfig(a, { namespace: ns, name: sa });
    await waitAllowed(kubeconfig, { group: 'kustomize.toolkit.fluxcd.io', resource: 'kustomizations', verb: 'get', namespace: ns });
    switchKubeconfig(kubeconfig);
    try {
      const target: FluxTarget = { id: 'w', kind: 'Kustomization', namespace: ns, name, images: [{ name: 'ghcr.io/acme/web', newTag: '2' }] };
      await rejects(flux.fluxPreflight(target), (e) => {
        assert.equal(e.nonRetryable, true);
        assert.equal(e.type, 'KubeDenied');
        assert.match(e.message, new RegExp(`may not "patch" kustomizations.kustomize.toolkit.fluxcd.io ${ns}/${name}`));
      });
    } finally {
      switchKubeconfig(workerKubeconfig);
    }
  });
});

describe('HelmRelease values', () => {
  test('set keeps siblings, wait checks history, restore is exact (absent parents removed)', async () => {
    const name = uniqueName('hr');
    const values = { image: { repository: 'ghcr.io/acme/web', tag: '1.0.0', pullPolicy: 'IfNotPresent' }, replicaCount: 2, ingress: { enabled: true, hosts: ['a.example'] } };
    await seedHelmRelease(name, values);
    const target: FluxTarget = {
      id: 'web', kind: 'HelmRelease', namespace: ns, name,
      values: [{ path: 'image.tag', value: '1.1.0' }, { path: 'resources.limits.cpu', value: '500m' }, { path: 'replicaCount', value: 3 }],
    };
    await flux.fluxPreflight(target);
    const token = `hr-${Date.now()}`;
    const previous = await flux.fluxApply({ target, token });
    assert.deepEqual(previous, { kind: 'HelmRelease', values: { 'image.tag': '1.0.0', resources: null, 'resources.limits.cpu': null, replicaCount: 2 } });
    const applied = await read('HelmRelease', name);
    assert.deepEqual(applied.spec.values, {
      image: { repository: 'ghcr.io/acme/web', tag: '1.1.0', pullPolicy: 'IfNotPresent' },
      replicaCount: 3,
      ingress: { enabled: true, hosts: ['a.example'] },
      resources: { limits: { cpu: '500m' } },
    });
    const result = await gate(target, token);
    assert.equal(result.ok, true);
    assert.equal((result.observed as { helmRelease: { status: string } }).helmRelease.status, 'deployed');

    await flux.fluxRestore({ target, previous, token: `${token}-undo` });
    assert.deepEqual((await read('HelmRelease', name)).spec.values, values);
  });

  test('Ready=True without a deployed newest history entry is not done', async () => {
    const name = uniqueName('hr');
    await seedHelmRelease(name, { image: { tag: '1' } }, manual);
    const target: FluxTarget = { id: 'web', kind: 'HelmRelease', namespace: manual, name, values: [{ path: 'image.tag', value: '2' }] };
    await writeStatus('HelmRelease', name, { token: 'hr-tok', ready: 'True', reason: 'UpgradeSucceeded', message: 'ok' });
    const snapshot = (version: number, status: string) => ({
      name, namespace: manual, version, status, chartName: 'web', chartVersion: `0.${version}.0`, configDigest: `sha256:${'b'.repeat(64)}`, digest: `sha256:${'c'.repeat(64)}`,
      firstDeployed: new Date().toISOString(), lastDeployed: new Date().toISOString(),
    });
    await patchStatus(a, coords('HelmRelease', name, manual), { history: [snapshot(2, 'pending-upgrade'), snapshot(1, 'deployed')] });
    await rejects(gate(target, 'hr-tok', 1_500, 500), (e) => {
      assert.equal(e.type, 'GateTimedOut');
      assert.match(e.message, /newest Helm release v2 is pending-upgrade/);
    });
    await patchStatus(a, coords('HelmRelease', name, manual), { history: [snapshot(2, 'deployed'), snapshot(1, 'superseded')] });
    assert.equal((await gate(target, 'hr-tok')).ok, true);
  });

  test('a values path through a non-map is refused in preflight', async () => {
    const name = uniqueName('hr');
    await seedHelmRelease(name, { image: 'ghcr.io/acme/web:1' });
    const target: FluxTarget = { id: 'web', kind: 'HelmRelease', namespace: ns, name, values: [{ path: 'image.tag', value: '2' }] };
    await rejects(flux.fluxPreflight(target), (e) => assert.match(e.message, /image is a string, not a map/));
  });
});

describe('multi-cluster', () => {
  test('a target in a second context uses that context, with its own clients', async () => {
    const name = uniqueName('ks');
    await seedKustomization(name, { images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] });
    const target: FluxTarget = { id: 'b', kind: 'Kustomization', namespace: ns, name, context: 'worker-b', images: [{ name: 'ghcr.io/acme/web', newTag: '5' }] };
    await flux.fluxPreflight(target);
    const previous = await flux.fluxApply({ target, token: 'ctx-b' });
    assert.deepEqual(previous, { kind: 'Kustomization', images: { 'ghcr.io/acme/web': { name: 'ghcr.io/acme/web', newTag: '1' } } });
    assert.equal((await gate(target, 'ctx-b')).ok, true);
    assert.notEqual(fluxRef(target).clients, fluxRef({ ...target, context: undefined }).clients);
    assert.equal(fluxRef(target).clients, fluxRef(target).clients, 'one client set per context, reused');
  });

  test('an unknown context is a clear error', async () => {
    const target: FluxTarget = { id: 'c', kind: 'Kustomization', namespace: ns, name: 'x', context: 'nope', images: [{ name: 'a', newTag: '1' }] };
    await assert.rejects(flux.fluxSnapshot(target), /kube context "nope" is not in the kubeconfig \(known: worker, worker-b\)/);
  });
});
