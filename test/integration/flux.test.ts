/**
 * Flux activities against the real controllers of the local stack, run as the worker's
 * ServiceAccount (deploy/rbac.yaml only). Every app is seeded the real way (manifests in the
 * stack's Git server, a GitRepository, a Kustomization with wait: true; a chart in the stack's Helm
 * repository and a HelmRelease with remediation), and every status the gates judge is written by
 * source-, kustomize- or helm-controller, kube-controller-manager and kwok. Failures come from the
 * real thing: an image tag ending in -broken (kwok never makes its pods Ready), a path that does
 * not build, a suspended object.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mockInfo } from '../support/policy.ts';
import { DefaultLogger } from '@temporalio/worker';
import { CancelledFailure } from '@temporalio/activity';
import * as flux from '../../activities/flux/index.ts';
import * as k8s from '@kubernetes/client-node';
import type { FluxTarget, FluxWritten, KustomizeImage } from '../../activities/flux/index.ts';
import { applyFlux } from '../../activities/flux/pin.ts';
import { FLUX_KINDS, fluxRef } from '../../activities/flux/resource.ts';
import { evaluateFlux } from '../../activities/flux/readiness.ts';
import { waitForFlux } from '../../activities/flux/wait.ts';
import { rejects, runActivity } from '../support/activity.ts';
import { uniqueName } from '../support/env.ts';
import { admin, createNamespace, deleteNamespace, mintKubeconfig, switchKubeconfig, useWorkerIdentity, waitAllowed, type Admin } from '../support/kube-worker.ts';
import { adminKubeConfig, createHelmRelease, createKustomization, fluxGroups, requestReconcile } from '../support/seed-kube.ts';

const ns = uniqueName('flux-it');
const WEB = 'ghcr.io/acme/web';
let a: Admin;
let workerKubeconfig: string;
const kc = () => adminKubeConfig();

type Kind = FluxTarget['kind'];
const coords = (kind: Kind, name: string, namespace = ns) => ({ ...FLUX_KINDS[kind], namespace, name });
const read = (kind: Kind, name: string, namespace = ns): Promise<any> => a.custom.getNamespacedCustomObject(coords(kind, name, namespace));
const deployment = (name: string) => a.apps.readNamespacedDeployment({ namespace: ns, name });
const templateImage = async (name: string) => (await deployment(name)).spec?.template.spec?.containers[0]?.image;

/** The fluxReady gate on what a pin or restore wrote; deadlines sized for a busy 2-core machine. */
const gate = (target: FluxTarget, written: FluxWritten, timeoutMs = 180_000, intervalMs = 1_000) =>
  runActivity(flux.fluxReadyGate, { gate: 'flux-ready', target, ...written, timeoutMs, intervalMs });

const kustomization = (name: string, images: KustomizeImage[], namespace = ns): FluxTarget => ({ id: name, kind: 'Kustomization', namespace, name, images });

before(async () => {
  a = admin();
  await createNamespace(a, ns);
  workerKubeconfig = await useWorkerIdentity(a);
});

after(async () => {
  await deleteNamespace(a, ns);
});

describe('Kustomization images', () => {
  const other = { name: 'ghcr.io/acme/other', newName: 'registry.acme.dev/other', newTag: '9' };

  test('pin: Flux applies the new tag and the Deployment rolls out; restore: the old tag is back, running', async () => {
    const name = uniqueName('ks');
    const original = [{ name: WEB, newTag: '1.0.0' }, other];
    await createKustomization({ namespace: ns, name, images: original }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.1.0' }]);
    const pre = await flux.fluxPreflight(target);
    assert.equal(pre.suspended, false);
    assert.equal(pre.readyBefore, true);
    assert.deepEqual(pre.warnings, [], 'wait: true, so no warning');

    const snapshot = await flux.fluxSnapshot(target);
    assert.deepEqual(snapshot, { kind: 'Kustomization', images: { [WEB]: { name: WEB, newTag: '1.0.0' } } });

    const token = uniqueName('release-1');
    const { previous, written } = await flux.fluxPin({ target, token });
    assert.deepEqual(previous, snapshot);
    assert.deepEqual(written, { token, generation: 2, specChanged: true });
    const applied = await read('Kustomization', name);
    assert.deepEqual(applied.spec.images, [{ name: WEB, newTag: '1.1.0' }, other]);
    assert.equal(applied.metadata.annotations['reconcile.fluxcd.io/requestedAt'], token);

    const result = await gate(target, written);
    assert.equal(result.ok, true, result.reason);
    assert.equal(result.kind, 'fluxReady');
    assert.match(result.reason, /Ready=True ReconciliationSucceeded at main@sha1:[0-9a-f]{40} \(generation 2\)/);
    // Flux applied the patched images: the Deployment's template and its rollout
    assert.equal(await templateImage(name), `${WEB}:1.1.0`);
    const rolled = await deployment(name);
    assert.equal(rolled.status?.updatedReplicas, 2);
    assert.equal(rolled.status?.readyReplicas, 2);

    // Idempotent: the same pin again writes nothing and says the spec did not change.
    const rv = (await read('Kustomization', name)).metadata.resourceVersion;
    const again = await flux.fluxPin({ target, token });
    assert.equal((await read('Kustomization', name)).metadata.resourceVersion, rv);
    assert.equal(again.written.specChanged, false);

    const undo = `${token}/undo`;
    const restored = await flux.fluxUnpin({ target, previous, token: undo });
    assert.deepEqual(restored, { token: undo, generation: 3, specChanged: true });
    assert.deepEqual((await read('Kustomization', name)).spec.images, original);
    assert.equal((await gate(target, restored)).ok, true);
    assert.equal(await templateImage(name), `${WEB}:1.0.0`, 'the old template is what runs again');

    // Restore twice is harmless: no write at all.
    const rv2 = (await read('Kustomization', name)).metadata.resourceVersion;
    await flux.fluxRestore({ target, previous, token: undo });
    assert.equal((await read('Kustomization', name)).metadata.resourceVersion, rv2);
  });

  test('an image the Kustomization has no entry for resolves through the Deployment in its inventory; restore removes the entry', async () => {
    const name = uniqueName('ks');
    // no spec.images: the manifests in Git run ghcr.io/acme/web:1.0.0
    await createKustomization({ namespace: ns, name, image: `${WEB}:1.0.0` }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '2.0.0' }]);
    await flux.fluxPreflight(target);
    const { previous, written } = await flux.fluxPin({ target, token: uniqueName('t') });
    assert.deepEqual(previous, { kind: 'Kustomization', images: { [WEB]: null } });
    assert.equal((await gate(target, written)).ok, true);
    assert.equal(await templateImage(name), `${WEB}:2.0.0`);
    const restored = await flux.fluxUnpin({ target, previous, token: uniqueName('t') });
    assert.equal((await read('Kustomization', name)).spec.images, undefined);
    assert.equal((await gate(target, restored)).ok, true);
    assert.equal(await templateImage(name), `${WEB}:1.0.0`, 'the tag in Git again');
  });

  test('a concurrent edit between read and patch: 409, re-read, both edits kept', async () => {
    const name = uniqueName('ks');
    // suspended: the controller writes nothing to it, so the only conflict is the test's own edit
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }, other], suspend: true }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.2.0' }]);
    const { previous, attempts } = await applyFlux(target, 'tok-409', {
      afterRead: async (attempt) => {
        if (attempt !== 1) return;
        // Someone else pins the web image and bumps the other one after our read.
        const obj = await read('Kustomization', name);
        await a.custom.replaceNamespacedCustomObject({
          ...coords('Kustomization', name),
          body: { ...obj, spec: { ...obj.spec, images: [{ name: WEB, newTag: '1.0.5' }, { ...other, newTag: '10' }] } },
        });
      },
    });
    assert.ok(attempts >= 2, `the first patch must have hit 409 (attempts: ${attempts})`);
    assert.deepEqual(previous, { kind: 'Kustomization', images: { [WEB]: { name: WEB, newTag: '1.0.5' } } }, 'previous is what the patch really replaced');
    assert.deepEqual((await read('Kustomization', name)).spec.images, [{ name: WEB, newTag: '1.2.0' }, { ...other, newTag: '10' }]);
  });
});

describe('guarded undo', () => {
  test('restores only what still holds the release\'s value; a tag someone set since is a conflict naming key, value and field manager', async () => {
    const name = uniqueName('ks');
    // suspended: the controller writes nothing to it; only the test and the activities do
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }], suspend: true }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.2.0' }]);
    const { previous } = await runActivity(flux.fluxPin, { target, token: 'tok-guard' });
    // a person's hotfix lands after the pin
    await a.custom.patchNamespacedCustomObject(
      { ...coords('Kustomization', name), body: { spec: { images: [{ name: WEB, newTag: '1.2.1' }] } }, fieldManager: 'kubectl-edit' },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await rejects(runActivity(flux.fluxUnpin, { target, previous, token: 'tok-guard/undo', guard: true }), (e) => {
      assert.equal(e.type, 'UndoConflict');
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /spec.images\[name=ghcr.io\/acme\/web\] is \{"name":"ghcr.io\/acme\/web","newTag":"1.2.1"\}, not .*"newTag":"1.2.0".* as this release wrote — changed by kubectl-edit \(Update\) at /);
    });
    assert.deepEqual((await read('Kustomization', name)).spec.images, [{ name: WEB, newTag: '1.2.1' }], 'the hotfix stays');
    // once the value is back to what the release wrote, the undo restores it
    await a.custom.patchNamespacedCustomObject(
      { ...coords('Kustomization', name), body: { spec: { images: [{ name: WEB, newTag: '1.2.0' }] } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await runActivity(flux.fluxUnpin, { target, previous, token: 'tok-guard/undo2', guard: true });
    assert.deepEqual((await read('Kustomization', name)).spec.images, [{ name: WEB, newTag: '1.0.0' }]);
  });
});

describe('fluxReady gate on the real controllers', () => {
  test('passes although another requestedAt writer replaced the release token before Flux read it', async () => {
    const name = uniqueName('ks');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.1.0' }]);
    const { written } = await flux.fluxPin({ target, token: uniqueName('release') });
    // `flux reconcile` (or a Receiver, or another release) writes its own request right away
    const theirs = await requestReconcile(fluxGroups.kustomization, ns, name, kc());
    // the gate is told a token that Flux never saw: what remains is the generation it wrote
    const result = await gate(target, { ...written, token: 'overwritten-before-flux-read-it' });
    assert.equal(result.ok, true, result.reason);
    const obj = await read('Kustomization', name);
    assert.notEqual(obj.status.lastHandledReconcileAt, 'overwritten-before-flux-read-it');
    assert.equal(obj.metadata.annotations['reconcile.fluxcd.io/requestedAt'], theirs);
  });

  test('a tag whose pods never become Ready fails at once, quoting Flux, while observedGeneration stays behind', async () => {
    const name = uniqueName('ks');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.1.0-broken' }]);
    const { written } = await flux.fluxPin({ target, token: uniqueName('bad') });
    await rejects(gate(target, written), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.equal(e.type, 'GateFailed');
      assert.match(e.message, new RegExp(`Kustomization ${ns}/${name}: Ready=False HealthCheckFailed: health check failed after .*: failed early due to stalled resources: \\[Deployment/${ns}/${name} status: 'Failed'\\]`));
      const details = e.details?.[0] as { observed: { observedGeneration: number; releaseGeneration: number; ready: { observedGeneration: number } } };
      // kustomize-controller keeps status.observedGeneration at the last successful generation;
      // only the Ready condition speaks for the failed one
      assert.equal(details.observed.releaseGeneration, 2);
      assert.equal(details.observed.observedGeneration, 1);
      assert.equal(details.observed.ready.observedGeneration, 2);
    });
    const d = await deployment(name);
    assert.equal(d.status?.conditions?.find((c) => c.type === 'Progressing')?.reason, 'ProgressDeadlineExceeded');
  });

  test('a path that does not build fails with BuildFailed, quoting kustomize', async () => {
    const name = uniqueName('ks');
    // the app's kustomization.yaml names a file that is not in the repository
    const files = { [`apps/${name}/kustomization.yaml`]: 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n' };
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }], files, ready: false }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.1.0' }]);
    const pre = await flux.fluxPreflight(target);
    assert.equal(pre.readyBefore, false);
    const { written } = await flux.fluxPin({ target, token: uniqueName('t') });
    await rejects(gate(target, written), (e) => {
      assert.equal(e.type, 'GateFailed');
      assert.match(e.message, /Ready=False BuildFailed: .*deployment\.yaml/);
    });
  });

  test('a suspended Kustomization fails the gate, saying so', async () => {
    const name = uniqueName('ks');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.1.0' }]);
    const { written } = await flux.fluxPin({ target, token: uniqueName('t') });
    // someone suspends it before Flux gets to it
    await a.custom.patchNamespacedCustomObject({ ...coords('Kustomization', name), body: { spec: { suspend: true } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await rejects(gate(target, written), (e) => {
      assert.equal(e.type, 'GateFailed');
      assert.match(e.message, /is suspended \(spec\.suspend: true\): Flux will not apply this release/);
    });
  });

  test('times out with the last reason when Flux never handles an unchanged spec’s request', async () => {
    const name = uniqueName('ks');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.0.0' }]);
    // a token nobody wrote, for a spec that did not change: nothing can answer it
    const { generation } = await flux.fluxPreflight(target);
    await rejects(gate(target, { token: 'never-written', generation, specChanged: false }, 3_000, 500), (e) => {
      assert.equal(e.type, 'GateTimedOut');
      assert.match(e.message, /reconcile request never-written not handled yet/);
      assert.ok((e.details?.[0] as { checks: number }).checks >= 1);
    });
  });

  test('cancellation ends the wait', async () => {
    const name = uniqueName('ks');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.0.0' }]);
    const env = new MockActivityEnvironment(mockInfo(), { logger: new DefaultLogger('ERROR') });
    const pending = env.run(flux.fluxReadyGate, { gate: 'g', target, token: 'never', specChanged: false, timeoutMs: 600_000, intervalMs: 1_000 });
    await new Promise((r) => setTimeout(r, 300));
    env.cancel();
    await assert.rejects(pending, (e: Error) => e instanceof CancelledFailure);
  });

  test('falls back to polling when the identity may not watch', async () => {
    const name = uniqueName('ks');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, kc());
    const target = kustomization(name, [{ name: WEB, newTag: '1.3.0' }]);
    const { written } = await flux.fluxPin({ target, token: uniqueName('poll') });
    // The namespace's default ServiceAccount (made by kube-controller-manager), allowed get but not watch.
    await a.rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: 'get-only' }, rules: [{ apiGroups: ['kustomize.toolkit.fluxcd.io'], resources: ['kustomizations'], verbs: ['get'] }] } });
    await a.rbac.createNamespacedRoleBinding({ namespace: ns, body: { metadata: { name: 'get-only' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'get-only' }, subjects: [{ kind: 'ServiceAccount', name: 'default', namespace: ns }] } });
    const kubeconfig = await mintKubeconfig(a, { namespace: ns, name: 'default' });
    await waitAllowed(kubeconfig, { group: 'kustomize.toolkit.fluxcd.io', resource: 'kustomizations', verb: 'get', namespace: ns });
    switchKubeconfig(kubeconfig);
    try {
      const r = await waitForFlux({ ref: fluxRef(target), evaluate: (o) => evaluateFlux('Kustomization', o, written), deadline: Date.now() + 180_000, intervalMs: 1_000 });
      assert.equal(r.outcome.status, 'pass', r.outcome.reason);
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
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1' }], suspend: true }, kc());
    await rejects(flux.fluxPreflight(kustomization(name, [{ name: WEB, newTag: '2' }])), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, new RegExp(`Kustomization ${ns}/${name}.*suspended`));
    });
  });

  test('an image the Kustomization does not use is refused', async () => {
    const name = uniqueName('ks');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, kc());
    await rejects(flux.fluxPreflight(kustomization(name, [{ name: 'ghcr.io/acme/wbe', newTag: '2' }])), (e) => {
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /"ghcr\.io\/acme\/wbe" not found.*entries: ghcr\.io\/acme\/web/);
    });
  });

  test('a Kustomization with neither wait nor healthChecks is released with a warning', async () => {
    const name = uniqueName('ks');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }], wait: false }, kc());
    const pre = await flux.fluxPreflight(kustomization(name, [{ name: WEB, newTag: '1.1.0' }]));
    assert.equal(pre.warnings?.length, 1);
    assert.match(pre.warnings![0]!, new RegExp(`Kustomization ${ns}/${name} has neither wait nor healthChecks: its Ready=True means Flux applied the manifests, not that the pods are healthy`));
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
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1' }], suspend: true }, kc());
    const sa = uniqueName('reader');
    await a.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
    await a.rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: sa }, rules: [{ apiGroups: ['kustomize.toolkit.fluxcd.io'], resources: ['kustomizations'], verbs: ['get'] }] } });
    await a.rbac.createNamespacedRoleBinding({ namespace: ns, body: { metadata: { name: sa }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa }, subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns }] } });
    const kubeconfig = await mintKubeconfig(a, { namespace: ns, name: sa });
    await waitAllowed(kubeconfig, { group: 'kustomize.toolkit.fluxcd.io', resource: 'kustomizations', verb: 'get', namespace: ns });
    switchKubeconfig(kubeconfig);
    try {
      await rejects(flux.fluxPreflight(kustomization(name, [{ name: WEB, newTag: '2' }])), (e) => {
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
  const helmTarget = (name: string, values: Array<{ path: string; value: string | number | boolean }>): FluxTarget => ({ id: name, kind: 'HelmRelease', namespace: ns, name, values });
  const history = async (name: string) => ((await read('HelmRelease', name)).status.history as Array<{ version: number; status: string }>).map((h) => `v${h.version}:${h.status}`);

  test('a values pin upgrades the release (helm history grows), keeps siblings; restore is exact and upgrades back', async () => {
    const name = uniqueName('hr');
    const values = { image: { repository: WEB, tag: '1.0.0' }, replicas: 2 };
    await createHelmRelease({ namespace: ns, name, values }, kc());
    assert.deepEqual(await history(name), ['v1:deployed']);
    const target = helmTarget(name, [{ path: 'image.tag', value: '1.1.0' }, { path: 'podLabels.team', value: 'web' }, { path: 'replicas', value: 3 }]);
    const pre = await flux.fluxPreflight(target);
    assert.deepEqual(pre.warnings, [], 'remediation and wait are set');
    const { previous, written } = await flux.fluxPin({ target, token: uniqueName('hr') });
    assert.deepEqual(previous, { kind: 'HelmRelease', values: { 'image.tag': '1.0.0', podLabels: null, 'podLabels.team': null, replicas: 2 } });
    assert.deepEqual((await read('HelmRelease', name)).spec.values, { image: { repository: WEB, tag: '1.1.0' }, replicas: 3, podLabels: { team: 'web' } });
    const result = await gate(target, written);
    assert.equal(result.ok, true, result.reason);
    assert.match(result.reason, /Ready=True UpgradeSucceeded/);
    assert.deepEqual((result.observed as { helmRelease: unknown }).helmRelease, { version: 2, status: 'deployed', chart: 'web@1.0.0' });
    assert.deepEqual(await history(name), ['v2:deployed', 'v1:superseded']);
    const d = await deployment(name);
    assert.equal(d.spec?.template.spec?.containers[0]?.image, `${WEB}:1.1.0`);
    assert.equal(d.status?.readyReplicas, 3);

    const restored = await flux.fluxUnpin({ target, previous, token: uniqueName('hr-undo') });
    assert.deepEqual((await read('HelmRelease', name)).spec.values, values);
    assert.equal((await gate(target, restored)).ok, true);
    assert.deepEqual((await history(name))[0], 'v3:deployed');
    assert.equal(await templateImage(name), `${WEB}:1.0.0`);
  });

  test('a failing upgrade with remediation fails the gate at the first failure, quoting UpgradeFailed / RollbackSucceeded', async () => {
    const name = uniqueName('hr');
    await createHelmRelease({ namespace: ns, name, values: { image: { repository: WEB, tag: '1.0.0' } } }, kc());
    const target = helmTarget(name, [{ path: 'image.tag', value: '1.2.0-broken' }]);
    const { written } = await flux.fluxPin({ target, token: uniqueName('hr-bad') });
    await rejects(gate(target, written), (e) => {
      assert.equal(e.type, 'GateFailed');
      assert.match(e.message, new RegExp(`HelmRelease ${ns}/${name}: Ready=False (UpgradeFailed|RollbackSucceeded): `));
      assert.match(e.message, /UpgradeFailed: Helm upgrade failed for release .* context deadline exceeded/);
    });
    // at the first failure, not after helm-controller spent its retries (Stalled/RetriesExceeded)
    const hr = await read('HelmRelease', name);
    assert.equal(hr.status.conditions.find((c: { type: string }) => c.type === 'Stalled'), undefined, JSON.stringify(hr.status.conditions));
    assert.ok(hr.status.upgradeFailures <= 1, `upgradeFailures ${hr.status.upgradeFailures}`);
  });

  test('a HelmRelease without upgrade remediation is released with a warning', async () => {
    const name = uniqueName('hr');
    await createHelmRelease({ namespace: ns, name, remediation: false }, kc());
    const pre = await flux.fluxPreflight(helmTarget(name, [{ path: 'image.tag', value: '2' }]));
    assert.equal(pre.warnings?.length, 1);
    assert.match(pre.warnings![0]!, /has no upgrade remediation/);
  });

  test('a values path through a non-map is refused in preflight', async () => {
    const name = uniqueName('hr');
    // the chart cannot render this, so it is never installed: preflight reads the spec only
    await createHelmRelease({ namespace: ns, name, values: { image: `${WEB}:1` }, ready: false }, kc());
    await rejects(flux.fluxPreflight(helmTarget(name, [{ path: 'image.tag', value: '2' }])), (e) => assert.match(e.message, /image is a string, not a map/));
  });
});

describe('multi-context', () => {
  test('a target in a second context uses that context, with its own clients', async () => {
    const name = uniqueName('ks');
    await createKustomization({ namespace: ns, name, images: [{ name: WEB, newTag: '1.0.0' }] }, kc());
    // worker-b: a context of its own (own cluster entry) for the same API server
    const target: FluxTarget = { ...kustomization(name, [{ name: WEB, newTag: '1.5.0' }]), context: 'worker-b' } as FluxTarget;
    await flux.fluxPreflight(target);
    const { previous, written } = await flux.fluxPin({ target, token: uniqueName('ctx-b') });
    assert.deepEqual(previous, { kind: 'Kustomization', images: { [WEB]: { name: WEB, newTag: '1.0.0' } } });
    assert.equal((await gate(target, written)).ok, true);
    assert.notEqual(fluxRef(target).clients, fluxRef({ ...target, context: undefined }).clients);
    assert.equal(fluxRef(target).clients, fluxRef(target).clients, 'one client set per context, reused');
  });

  test('an unknown context is a clear error', async () => {
    const target: FluxTarget = { id: 'c', kind: 'Kustomization', namespace: ns, name: 'x', context: 'nope', images: [{ name: 'a', newTag: '1' }] };
    await assert.rejects(flux.fluxSnapshot(target), /kube context "nope" is not in the kubeconfig \(known: worker, worker-b\)/);
  });
});
