/**
 * Rollout gate and canary weight against the real kube-apiserver, run as the worker's
 * ServiceAccount (deploy/rbac.yaml only). Deployments are rolled out by the stack's real
 * kube-controller-manager through ReplicaSets onto kwok's fake nodes; a rollout stalls for real
 * when its image ends in -broken (kwok never makes those pods Ready).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import * as flux from '../../activities/flux/index.ts';
import type { FluxTarget } from '../../activities/flux/index.ts';
import * as kube from '../../activities/kube/index.ts';
import { CANARY, CANARY_WEIGHT, CANARY_WEIGHT_TOTAL } from '../../activities/kube/canary.ts';
import { kubeClients } from '../../activities/kube/clients.ts';
import { rejects, runActivity } from '../support/activity.ts';
import { uniqueName } from '../support/env.ts';
import { admin, createNamespace, deleteNamespace, mintKubeconfig, switchKubeconfig, useWorkerIdentity, type Admin } from '../support/kube-worker.ts';
import { adminKubeConfig, createHelmRelease, createKustomization } from '../support/seed-kube.ts';

const ns = uniqueName('kube-it');
const WEB = 'ghcr.io/acme/web';
let a: Admin;
let workerKubeconfig: string;

before(async () => {
  a = admin();
  await createNamespace(a, ns);
  workerKubeconfig = await useWorkerIdentity(a);
});

after(async () => {
  await deleteNamespace(a, ns);
});

describe('rollout gate', () => {
  async function seedDeployment(name: string, image: string, replicas = 2) {
    await a.apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name },
        spec: {
          replicas,
          progressDeadlineSeconds: 10,
          selector: { matchLabels: { app: name } },
          strategy: { rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
          template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image }, { name: 'proxy', image: 'envoyproxy/envoy:v1.30.1' }] } },
        },
      },
    });
  }
  const setImage = (name: string, image: string) =>
    a.apps.patchNamespacedDeployment(
      { namespace: ns, name, body: { spec: { template: { spec: { containers: [{ name: 'app', image }] } } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );

  const gate = (name: string, extra: Partial<kube.DeploymentRef> = {}, timeoutMs = 180_000, expect?: kube.RolloutExpectation) =>
    runActivity(kube.rolloutGate, { gate: 'rollout', deployment: { namespace: ns, name, ...extra }, timeoutMs, intervalMs: 500, successes: 2, ...(expect ? { expect } : {}) });

  test('a new Deployment rolls out through its ReplicaSet onto kwok nodes: the gate passes', async () => {
    const name = uniqueName('web');
    await seedDeployment(name, `${WEB}:1.2.0`);
    const result = await gate(name);
    assert.equal(result.ok, true, result.reason);
    assert.equal(result.reason, `deployment "${name}" successfully rolled out`);
    assert.ok(result.checks >= 2, 'two consecutive passing checks');
    const d = await a.apps.readNamespacedDeployment({ namespace: ns, name });
    assert.equal(d.status?.readyReplicas, 2);
  });

  test('a rollout that stalls fails with the Deployment controller\'s ProgressDeadlineExceeded', async () => {
    const name = uniqueName('web');
    await seedDeployment(name, `${WEB}:1.2.0`);
    assert.equal((await gate(name)).ok, true);
    await setImage(name, `${WEB}:1.3.0-broken`);
    await rejects(gate(name), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.equal(e.type, 'GateFailed');
      assert.match(e.message, new RegExp(`"${name}" exceeded its progress deadline: ReplicaSet "${name}-[a-z0-9]+" has timed out progressing`));
    });
  });

  test('image check: passes once the template and every live pod run the released image', async () => {
    const name = uniqueName('web');
    await seedDeployment(name, `${WEB}:1.1.0`);
    assert.equal((await gate(name)).ok, true);
    await setImage(name, `${WEB}:1.2.0`);
    const result = await gate(name, { container: 'app', image: `${WEB}:1.2.0` });
    assert.equal(result.ok, true, result.reason);
    assert.match(result.reason, new RegExp(`runs ${WEB}:1\\.2\\.0 in 2 pods`));
    await rejects(gate(name, { container: 'app', image: `${WEB}:9.9.9` }, 3_000), (e) => {
      assert.equal(e.type, 'GateTimedOut');
      assert.match(e.message, /template runs ghcr\.io\/acme\/web:1\.2\.0 in container "app", not ghcr\.io\/acme\/web:9\.9\.9 yet/);
    });
  });

  test('a Deployment in a second context', async () => {
    const name = uniqueName('web');
    await seedDeployment(name, `${WEB}:1.0.0`, 1);
    assert.equal((await gate(name, { context: 'worker-b' })).ok, true);
  });
});

describe('rollout gate: the template the release produced', () => {
  const kustomization = (name: string, tag: string) => ({ id: name, kind: 'Kustomization' as const, namespace: ns, name, images: [{ name: WEB, newTag: tag }] });
  const gate = (name: string, expect: kube.RolloutExpectation, timeoutMs = 180_000) =>
    runActivity(kube.rolloutGate, { gate: 'rollout', deployment: { namespace: ns, name }, timeoutMs, intervalMs: 500, successes: 1, expect });

  test('never passes on the previous ReplicaSet; passes once Flux applied the release and it rolled out', async () => {
    const name = uniqueName('app');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, adminKubeConfig());
    const target = kustomization(name, '1.1.0');
    // the Deployment is fully rolled out, but on the template from before the release
    await rejects(gate(name, { images: target.images }, 3_000), (e) => {
      assert.equal(e.type, 'GateTimedOut');
      assert.match(e.message, /container "app" runs ghcr\.io\/acme\/web:1\.0\.0, not ghcr\.io\/acme\/web:1\.1\.0 yet: Flux has not applied the release's template yet/);
    });
    const { written } = await flux.fluxPin({ target, token: uniqueName('t') });
    const result = await gate(name, { images: target.images, flux: [{ target, written }] });
    assert.equal(result.ok, true, result.reason);
    assert.equal(result.reason, `deployment "${name}" successfully rolled out`);
    const d = await a.apps.readNamespacedDeployment({ namespace: ns, name });
    assert.equal(d.spec?.template.spec?.containers[0]?.image, `${WEB}:1.1.0`);
  });

  test('the released template stalls: fails with the Deployment\'s own reason', async () => {
    const name = uniqueName('app');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, adminKubeConfig());
    const target = kustomization(name, '1.1.0-broken');
    const { written } = await flux.fluxPin({ target, token: uniqueName('t') });
    await rejects(gate(name, { images: target.images, flux: [{ target, written }] }), (e) => {
      assert.equal(e.type, 'GateFailed');
      assert.match(e.message, new RegExp(`"${name}" exceeded its progress deadline: ReplicaSet "${name}-[a-z0-9]+" has timed out progressing`));
    });
  });

  test('a HelmRelease\'s Deployment: judged by the generation helm-controller applied; a failed upgrade never passes on the rolled-back template', async () => {
    const name = uniqueName('hr');
    await createHelmRelease({ namespace: ns, name, values: { image: { repository: WEB, tag: '1.0.0' } } }, adminKubeConfig());
    const good: FluxTarget = { id: name, kind: 'HelmRelease', namespace: ns, name, values: [{ path: 'image.tag', value: '1.1.0' }] };
    const pinned = await flux.fluxPin({ target: good, token: uniqueName('t') });
    const ok = await gate(name, { images: [], flux: [{ target: good, written: pinned.written }] });
    assert.equal(ok.ok, true, ok.reason);
    assert.equal((await a.apps.readNamespacedDeployment({ namespace: ns, name })).spec?.template.spec?.containers[0]?.image, `${WEB}:1.1.0`);

    const bad: FluxTarget = { ...good, values: [{ path: 'image.tag', value: '1.2.0-broken' }] };
    const { written } = await flux.fluxPin({ target: bad, token: uniqueName('t') });
    await rejects(gate(name, { images: [], flux: [{ target: bad, written }] }), (e) => {
      assert.equal(e.type, 'GateFailed');
      // the Deployment's own reason while the broken template is in place, Flux's once helm rolled back
      assert.match(e.message, /exceeded its progress deadline|the release's template was not rolled out: HelmRelease .* Ready=False (UpgradeFailed|RollbackSucceeded)/);
    });
  });

  test('after a rollback: a Deployment the restored object does not manage has nothing to wait for', async () => {
    const name = uniqueName('web');
    await a.apps.createNamespacedDeployment({
      namespace: ns,
      body: { metadata: { name }, spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'busybox:1.36-broken' }] } } } },
    });
    const target = kustomization('some-other-app', '1.0.0');
    const result = await gate(name, { images: [], flux: [{ target, written: { token: 't', generation: 1, specChanged: true } }], managedOnly: true });
    assert.equal(result.ok, true);
    assert.match(result.reason, /not managed by Kustomization .*\/some-other-app: nothing to wait for/);
  });
});

describe('canary weight', () => {
  async function seedIngress(name: string, annotations: Record<string, string> = {}) {
    await a.networking.createNamespacedIngress({
      namespace: ns,
      body: {
        metadata: { name, annotations },
        spec: { ingressClassName: 'nginx', rules: [{ host: 'shop.example', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web-canary', port: { number: 80 } } } }] } }] },
      },
    });
  }
  const annotations = async (name: string) => (await a.networking.readNamespacedIngress({ namespace: ns, name })).metadata?.annotations ?? {};

  test('set, step, restore to absent, each returning the previous weight', async () => {
    const name = uniqueName('canary');
    await seedIngress(name, { 'nginx.ingress.kubernetes.io/rewrite-target': '/' });
    const ingress = { namespace: ns, name };
    await kube.canaryPreflight(ingress);
    assert.deepEqual(await kube.canarySnapshot(ingress), { weight: null });

    assert.deepEqual(await kube.setCanaryWeight({ ingress, weight: 10 }), { previous: null });
    assert.deepEqual(await annotations(name), { 'nginx.ingress.kubernetes.io/rewrite-target': '/', [CANARY]: 'true', [CANARY_WEIGHT]: '10' });
    assert.deepEqual(await kube.setCanaryWeight({ ingress, weight: 50 }), { previous: 10 });
    assert.deepEqual(await kube.canarySnapshot(ingress), { weight: 50 });
    // Idempotent.
    assert.deepEqual(await kube.setCanaryWeight({ ingress, weight: 50 }), { previous: 50 });
    assert.deepEqual(await kube.setCanaryWeight({ ingress, weight: null }), { previous: 50 });
    const after = await annotations(name);
    assert.equal(after[CANARY_WEIGHT], undefined);
    assert.equal(after['nginx.ingress.kubernetes.io/rewrite-target'], '/', 'other annotations untouched');
  });

  test('exact undo: flag, weight and total absent before are absent after; weightTotal is written; a foreign weight is a conflict naming its writer', async () => {
    const name = uniqueName('canary');
    await seedIngress(name, { 'nginx.ingress.kubernetes.io/rewrite-target': '/' });
    const ingress = { namespace: ns, name };
    const before = await kube.canaryAnnotations(ingress);
    assert.deepEqual(before, { canary: null, weight: null, weightTotal: null });
    await kube.setCanaryWeight({ ingress, weight: 200, weightTotal: 1000 });
    await kube.setCanaryWeight({ ingress, weight: 500, weightTotal: 1000 });
    assert.deepEqual(await annotations(name), { 'nginx.ingress.kubernetes.io/rewrite-target': '/', [CANARY]: 'true', [CANARY_WEIGHT]: '500', [CANARY_WEIGHT_TOTAL]: '1000' });
    await kube.canaryRestore({ ingress, before, written: [200, 500] });
    assert.deepEqual(await annotations(name), { 'nginx.ingress.kubernetes.io/rewrite-target': '/' }, 'absent stays absent');
    await kube.canaryRestore({ ingress, before, written: [200, 500] }); // idempotent

    // someone else sets the weight: the undo refuses, naming the value and the field manager
    await kube.setCanaryWeight({ ingress, weight: 20 });
    await a.networking.patchNamespacedIngress(
      { namespace: ns, name, body: { metadata: { annotations: { [CANARY_WEIGHT]: '70' } } }, fieldManager: 'kubectl-annotate' },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await rejects(kube.canaryRestore({ ingress, before, written: [20] }), (e) => {
      assert.equal(e.type, 'UndoConflict');
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /canary-weight is "70", not a weight this release set \(20\) — changed by kubectl-annotate \(Update\) at /);
    });
    assert.equal((await annotations(name))[CANARY_WEIGHT], '70', 'not overwritten');
  });

  test('preflight refuses an Ingress without the canary flag unless canary.allowPrimary', async () => {
    const name = uniqueName('primary');
    await seedIngress(name);
    const ingress = { namespace: ns, name };
    await rejects(kube.canaryPreflightExact({ ingress, allowPrimary: false }), (e) => {
      assert.equal(e.type, 'CanaryIsPrimary');
      assert.match(e.message, /allowPrimary/);
    });
    await kube.canaryPreflightExact({ ingress, allowPrimary: true });
    const canary = uniqueName('marked');
    await seedIngress(canary, { [CANARY]: 'true' });
    await kube.canaryPreflightExact({ ingress: { namespace: ns, name: canary }, allowPrimary: false });
  });

  test('an unreadable weight is refused, not overwritten blindly', async () => {
    const name = uniqueName('canary');
    await seedIngress(name, { [CANARY]: 'true', [CANARY_WEIGHT]: 'ten' });
    await rejects(kube.canaryPreflight({ namespace: ns, name }), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /canary-weight: "ten", not a whole number/);
    });
  });

  test('a missing Ingress is a non-retryable 404 naming it', async () => {
    await rejects(kube.canaryPreflight({ namespace: ns, name: 'no-such-ingress' }), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.equal(e.type, 'KubeNotFound');
      assert.match(e.message, new RegExp(`ingresses.networking.k8s.io ${ns}/no-such-ingress`));
    });
  });

  test('through the second context', async () => {
    const name = uniqueName('canary');
    await seedIngress(name);
    const ingress = { namespace: ns, name, context: 'worker-b' };
    assert.deepEqual(await kube.setCanaryWeight({ ingress, weight: 5 }), { previous: null });
    assert.deepEqual(await kube.canarySnapshot({ namespace: ns, name }), { weight: 5 });
  });
});

describe('errors', () => {
  test('the worker role has no access to other resources: 403 is non-retryable and says what to grant', async () => {
    // Secrets are granted only in the hybrid-release namespace (RoleBinding), not in this one.
    const clients = kubeClients();
    const { kubeCall } = await import('../../activities/kube/errors.ts');
    await rejects(
      kubeCall({ verb: 'get', resource: 'secrets', namespace: ns, name: 'chef-key', context: clients.context }, () => clients.core.readNamespacedSecret({ namespace: ns, name: 'chef-key' })),
      (e) => {
        assert.equal(e.nonRetryable, true);
        assert.equal(e.type, 'KubeDenied');
        assert.match(e.message, /forbidden \(403\).*Grant the worker "get" on secrets/);
      },
    );
  });

  test('a rejected token (401) is non-retryable and says to refresh credentials', async () => {
    const kubeconfig = await mintKubeconfig(a, { namespace: 'hybrid-release', name: 'hybrid-release-worker' }, { token: 'not-a-valid-token' });
    switchKubeconfig(kubeconfig);
    try {
      await rejects(kube.canarySnapshot({ namespace: ns, name: 'x' }), (e) => {
        assert.equal(e.nonRetryable, true);
        assert.equal(e.type, 'KubeDenied');
        assert.match(e.message, /rejected the credentials of context worker \(401\)/);
      });
    } finally {
      switchKubeconfig(workerKubeconfig);
    }
  });

  test('an unreachable API server is retryable', async () => {
    const kubeconfig = await mintKubeconfig(a, { namespace: 'hybrid-release', name: 'hybrid-release-worker' }, { token: 'x', server: 'https://127.0.0.1:1' });
    switchKubeconfig(kubeconfig);
    try {
      await rejects(kube.canarySnapshot({ namespace: ns, name: 'x' }), (e) => {
        assert.equal(e.nonRetryable, false);
        assert.equal(e.type, 'KubeUnavailable');
        assert.match(e.message, /API server unreachable/);
      });
    } finally {
      switchKubeconfig(workerKubeconfig);
    }
  });
});
