/**
 * Rollout gate and canary weight against the real kube-apiserver, run as the worker's
 * ServiceAccount (deploy/rbac.yaml only). There is no kube-controller-manager in the stack, so
 * Deployment status is written here through the status subresource, the way the Deployment
 * controller writes it, to drive each case of `kubectl rollout status`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import * as kube from '../../activities/kube/index.ts';
import { CANARY, CANARY_WEIGHT } from '../../activities/kube/canary.ts';
import { kubeClients } from '../../activities/kube/clients.ts';
import { rejects, runActivity } from '../support/activity.ts';
import { uniqueName } from '../support/env.ts';
import { startStandIn } from '../support/controller-standin.ts';
import { admin, createNamespace, deleteNamespace, mintKubeconfig, switchKubeconfig, useWorkerIdentity, type Admin } from '../support/kube-worker.ts';

const ns = uniqueName('kube-it');
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
  const image = 'ghcr.io/acme/web:1.2.0';

  async function seedDeployment(name: string, replicas = 2) {
    await a.apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name },
        spec: {
          replicas,
          selector: { matchLabels: { app: name } },
          template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image }, { name: 'proxy', image: 'envoyproxy/envoy:v1.30.1' }] } },
        },
      },
    });
  }

  /** The API server validates status like the controller keeps it (available <= ready). */
  async function writeStatus(name: string, status: k8s.V1DeploymentStatus) {
    const d = await a.apps.readNamespacedDeployment({ namespace: ns, name });
    await a.apps.patchNamespacedDeploymentStatus(
      { namespace: ns, name, body: { status: { observedGeneration: d.metadata?.generation, readyReplicas: status.availableReplicas, ...status } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  }

  const gate = (name: string, extra: Partial<kube.DeploymentRef> = {}, timeoutMs = 15_000) =>
    runActivity(kube.rolloutGate, { gate: 'rollout', deployment: { namespace: ns, name, ...extra }, timeoutMs, intervalMs: 200, successes: 2 });

  test('waits through the kubectl stages and passes when all updated replicas are available', async () => {
    const name = uniqueName('web');
    await seedDeployment(name);
    const pending = gate(name);
    // Unobserved generation (no status at all), then stages in kubectl's order.
    await new Promise((r) => setTimeout(r, 500));
    await writeStatus(name, { replicas: 3, updatedReplicas: 1, availableReplicas: 2 });
    await new Promise((r) => setTimeout(r, 500));
    await writeStatus(name, { replicas: 3, updatedReplicas: 2, availableReplicas: 2 });
    await new Promise((r) => setTimeout(r, 500));
    await writeStatus(name, { replicas: 2, updatedReplicas: 2, availableReplicas: 1 });
    await new Promise((r) => setTimeout(r, 500));
    await writeStatus(name, { replicas: 2, updatedReplicas: 2, availableReplicas: 2, readyReplicas: 2 });
    const result = await pending;
    assert.equal(result.ok, true);
    assert.equal(result.reason, `deployment "${name}" successfully rolled out`);
    assert.ok(result.checks >= 6, `checked through the stages (${result.checks} checks)`);
  });

  test('ProgressDeadlineExceeded fails at once with the controller message', async () => {
    const name = uniqueName('web');
    await seedDeployment(name);
    await writeStatus(name, {
      replicas: 3, updatedReplicas: 1, availableReplicas: 2,
      conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: `ReplicaSet "${name}-5d8" has timed out progressing.`, lastUpdateTime: new Date(), lastTransitionTime: new Date() }],
    });
    const started = Date.now();
    await rejects(gate(name, {}, 60_000), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.equal(e.type, 'GateFailed');
      assert.match(e.message, /exceeded its progress deadline: ReplicaSet ".*" has timed out progressing/);
    });
    assert.ok(Date.now() - started < 5_000);
  });

  test('image check: waits for pods on the old image, passes once they run the released one', async () => {
    const name = uniqueName('web');
    await seedDeployment(name, 1);
    await writeStatus(name, { replicas: 1, updatedReplicas: 1, availableReplicas: 1 });
    // No kubelet here: the pods exist as API objects, which is all the check reads.
    await a.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: `${name}-old`, labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'ghcr.io/acme/web:1.1.0' }] } } });
    await a.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: `${name}-new`, labels: { app: name } }, spec: { containers: [{ name: 'app', image }] } } });
    await a.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: `${name}-unrelated`, labels: { app: 'other' } }, spec: { containers: [{ name: 'app', image: 'busybox:1' }] } } });
    const pending = gate(name, { container: 'app', image });
    await new Promise((r) => setTimeout(r, 800));
    // Pod container images are mutable: the old pod now runs the new image.
    await a.core.patchNamespacedPod(
      { namespace: ns, name: `${name}-old`, body: { spec: { containers: [{ name: 'app', image }] } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    const result = await pending;
    assert.equal(result.ok, true);
    assert.match(result.reason, new RegExp(`runs ${image} in 2 pods`));
    assert.ok(result.elapsedMs >= 700, 'waited for the stale pod');

    await rejects(gate(name, { container: 'app', image: 'ghcr.io/acme/web:9.9.9' }, 1_000), (e) => {
      assert.equal(e.type, 'GateTimedOut');
      assert.match(e.message, /template runs ghcr\.io\/acme\/web:1\.2\.0 in container "app", not ghcr\.io\/acme\/web:9\.9\.9 yet/);
    });
  });

  test('a Deployment in a second context', async () => {
    const name = uniqueName('web');
    await seedDeployment(name, 1);
    await writeStatus(name, { replicas: 1, updatedReplicas: 1, availableReplicas: 1 });
    assert.equal((await gate(name, { context: 'worker-b' })).ok, true);
  });
});

describe('rollout gate with the controller stand-in', () => {
  test('a rollout the stand-in completes passes; one it times out fails with ProgressDeadlineExceeded', async () => {
    const ctrl = uniqueName('kube-it-ctrl');
    await createNamespace(a, ctrl);
    const standin = startStandIn({ kubeconfig: process.env.HYBRID_RELEASE_ADMIN_KUBECONFIG!, namespaces: [ctrl], delayMs: 300 });
    try {
      const deploy = (name: string) =>
        a.apps.createNamespacedDeployment({
          namespace: ctrl,
          body: { metadata: { name }, spec: { replicas: 3, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'ghcr.io/acme/web:2.0.0' }] } } } },
        });
      standin.setFailure('stuck', { message: 'ReplicaSet "stuck-6b7" has timed out progressing.' });
      await deploy('good');
      await deploy('stuck');
      const run = (name: string) => runActivity(kube.rolloutGate, { gate: 'rollout', deployment: { namespace: ctrl, name, container: 'app', image: 'ghcr.io/acme/web:2.0.0' }, timeoutMs: 15_000, intervalMs: 200, successes: 1 });
      const ok = await run('good');
      assert.equal(ok.ok, true);
      assert.match(ok.reason, /successfully rolled out; deployment "good" runs ghcr\.io\/acme\/web:2\.0\.0 in 0 pods/);
      await rejects(run('stuck'), (e) => {
        assert.equal(e.type, 'GateFailed');
        assert.match(e.message, /"stuck" exceeded its progress deadline: ReplicaSet "stuck-6b7" has timed out progressing/);
      });
      assert.ok(standin.handled.Deployment >= 2);
    } finally {
      await standin.stop();
      await deleteNamespace(a, ctrl);
    }
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
