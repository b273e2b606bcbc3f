/**
 * Least privilege for real: the worker's Roles generated from a policy (policy/rbac.ts, what
 * `npm run policy -- rbac` writes into deploy/rbac.yaml), applied to the stack's kube-apiserver,
 * and then the worker's own ServiceAccount token tried against it: patch is allowed on the named
 * object in the policy's namespace, and refused (403) in another namespace, on another object,
 * for cluster-wide pods and for the worker's own Secrets.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { rbacObjects } from '../../policy/rbac.ts';
import { policySchema } from '../../policy/schema.ts';
import { uniqueName } from '../support/env.ts';
import { admin, deleteNamespace, mintKubeconfig, waitAllowed, WORKER_SA, type Admin } from '../support/kube-worker.ts';
import { createHelmRelease } from '../support/seed-kube.ts';

const allowed = uniqueName('rbac-allowed');
const elsewhere = uniqueName('rbac-elsewhere');
let a: Admin;
let worker: { custom: k8s.CustomObjectsApi; core: k8s.CoreV1Api };

const policy = policySchema.parse({
  apiVersion: 'hybrid-release.dev/v1alpha1',
  kind: 'ReleasePolicy',
  apps: [{ app: 'web', kubernetes: [{ namespaces: [allowed], kinds: ['HelmRelease'], names: ['web'] }] }],
});

const hr = { group: 'helm.toolkit.fluxcd.io', version: 'v2', plural: 'helmreleases' };
const patch = (namespace: string, name: string, tag: string) =>
  worker.custom.patchNamespacedCustomObject({ ...hr, namespace, name, body: { spec: { values: { image: { tag } } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
const status = (p: Promise<unknown>) => p.then(() => 200, (e: { code?: number }) => e.code);

before(async () => {
  a = admin();
  // no cluster-wide binding from the first stage may linger on this stack
  await a.rbac.deleteClusterRoleBinding({ name: 'hybrid-release-worker' }).catch(() => undefined);
  for (const ns of [allowed, elsewhere]) {
    await a.core.createNamespace({ body: { metadata: { name: ns, labels: { 'hybrid-release.dev/test': 'true' } } } });
    for (const name of ['web', 'other']) await createHelmRelease({ namespace: ns, name, values: { image: { tag: '1' } } }, a.config);
  }
  for (const obj of rbacObjects(policy, { serviceAccount: WORKER_SA })) {
    await a.objects.patch(obj as unknown as k8s.KubernetesObject, undefined, undefined, 'hybrid-release-tests', true, k8s.PatchStrategy.ServerSideApply);
  }
  const kubeconfig = await mintKubeconfig(a, WORKER_SA);
  await waitAllowed(kubeconfig, { group: hr.group, resource: hr.plural, verb: 'patch', namespace: allowed, name: 'web' });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  worker = { custom: kc.makeApiClient(k8s.CustomObjectsApi), core: kc.makeApiClient(k8s.CoreV1Api) };
});
after(async () => {
  for (const ns of [allowed, elsewhere]) await deleteNamespace(a, ns);
});

describe("the worker's ServiceAccount under the Roles generated from the policy", () => {
  it('may patch the named HelmRelease in the namespace the policy names', async () => {
    assert.equal(await status(patch(allowed, 'web', '2')), 200);
    const obj = (await a.custom.getNamespacedCustomObject({ ...hr, namespace: allowed, name: 'web' })) as { spec: { values: unknown } };
    assert.deepEqual(obj.spec.values, { image: { tag: '2' } });
  });

  it('may not patch in another namespace, nor another object in its own', async () => {
    assert.equal(await status(patch(elsewhere, 'web', 'evil')), 403);
    assert.equal(await status(patch(allowed, 'other', 'evil')), 403);
    for (const [ns, name] of [[elsewhere, 'web'], [allowed, 'other']] as const) {
      const obj = (await a.custom.getNamespacedCustomObject({ ...hr, namespace: ns, name })) as { spec: { values: unknown } };
      assert.deepEqual(obj.spec.values, { image: { tag: '1' } }, `${ns}/${name} unchanged`);
    }
  });

  it("may not list pods cluster-wide, nor read the Secrets of its own namespace", async () => {
    assert.equal(await status(worker.core.listPodForAllNamespaces()), 403);
    assert.equal(await status(worker.core.listNamespacedSecret({ namespace: WORKER_SA.namespace })), 403);
    assert.equal(await status(worker.core.readNamespacedSecret({ namespace: WORKER_SA.namespace, name: 'hybrid-release-worker' })), 403);
  });
});
