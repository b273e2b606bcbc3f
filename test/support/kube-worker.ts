/**
 * Least-privilege credentials for the Flux/Kubernetes integration tests: the worker's RBAC as
 * policy/rbac.ts generates it from a policy — here one naming the namespaces each test file
 * creates (createNamespace grants the worker its namespace-scoped Role there) and the credentials
 * namespace — applied with the admin kubeconfig; then a ServiceAccount token minted with the
 * TokenRequest API, in a temporary kubeconfig whose contexts use that token — `worker` (current)
 * and `worker-b`, a second context (its own cluster entry) pointing at the same API server, for
 * the multi-cluster paths.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { resetKubeClients } from '../../activities/kube/clients.ts';
import { rbacObjects } from '../../policy/rbac.ts';
import { policySchema } from '../../policy/schema.ts';
import { requireEnv } from './env.ts';

export interface Admin {
  config: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  networking: k8s.NetworkingV1Api;
  rbac: k8s.RbacAuthorizationV1Api;
  custom: k8s.CustomObjectsApi;
  objects: k8s.KubernetesObjectApi;
}

const ADMIN_ENV = 'HYBRID_RELEASE_ADMIN_KUBECONFIG';

/** The admin kubeconfig from the stack (KUBECONFIG before the tests switch it to the worker's). */
export function adminKubeconfigPath(): string {
  process.env[ADMIN_ENV] ??= requireEnv('KUBECONFIG');
  return process.env[ADMIN_ENV]!;
}

/** The admin of the main cluster, or of the cluster of `context` (e.g. $HR_KUBE_CONTEXT_B). */
export function admin(context?: string): Admin {
  const config = new k8s.KubeConfig();
  config.loadFromFile(adminKubeconfigPath());
  if (context) config.setCurrentContext(context);
  return {
    config,
    core: config.makeApiClient(k8s.CoreV1Api),
    apps: config.makeApiClient(k8s.AppsV1Api),
    networking: config.makeApiClient(k8s.NetworkingV1Api),
    rbac: config.makeApiClient(k8s.RbacAuthorizationV1Api),
    custom: config.makeApiClient(k8s.CustomObjectsApi),
    objects: k8s.KubernetesObjectApi.makeApiClient(config),
  };
}

/** Server-side apply: idempotent, and safe when several test files apply the same manifest at once. */
export async function applyManifest(a: Admin, file: string): Promise<void> {
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const obj = doc.toJS() as k8s.KubernetesObject | null;
    if (!obj) continue;
    await a.objects.patch(obj, undefined, undefined, 'hybrid-release-tests', true, k8s.PatchStrategy.ServerSideApply);
  }
}

/**
 * A test namespace, in which the worker gets its generated namespace-scoped Role; waits for the
 * `default` ServiceAccount that kube-controller-manager's serviceaccount controller creates.
 */
export async function createNamespace(a: Admin, name: string): Promise<void> {
  await a.core.createNamespace({ body: { metadata: { name, labels: { 'hybrid-release.dev/test': 'true' } } } });
  for (let i = 0; ; i++) {
    try {
      await a.core.readNamespacedServiceAccount({ namespace: name, name: 'default' });
      break;
    } catch (err) {
      if ((err as { code?: number }).code !== 404 || i >= 600) throw new Error(`namespace ${name}: no default ServiceAccount after 60s (is kube-controller-manager running?): ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await grantWorker(a, [name]);
}

/** Namespaces this process granted the worker, so useWorkerIdentity can wait until the grants are in effect. */
const granted = new Set<string>();

/** The policy the tests' worker RBAC is generated from: these namespaces, any Secret in the credentials namespace. */
export function rbacTestPolicy(namespaces: string[]) {
  return policySchema.parse({
    apiVersion: 'hybrid-release.dev/v1alpha1',
    kind: 'ReleasePolicy',
    apps: [{ app: '*', kubernetes: namespaces.length ? [{ namespaces }] : [], references: [{ secret: { namespace: CREDENTIALS_NAMESPACE, name: '*' } }] }],
  });
}

/** Applies the worker's generated Role in each namespace (what `npm run policy -- rbac` writes for them). */
export async function grantWorker(a: Admin, namespaces: string[], sa = WORKER_SA): Promise<void> {
  for (const obj of rbacObjects(rbacTestPolicy(namespaces), { serviceAccount: sa })) {
    const md = (obj as { metadata: { namespace?: string } }).metadata;
    if (md.namespace && namespaces.includes(md.namespace)) await applyObject(a, obj as unknown as k8s.KubernetesObject);
  }
  if (sa === WORKER_SA) namespaces.forEach((n) => granted.add(n));
}

async function applyObject(a: Admin, obj: k8s.KubernetesObject): Promise<void> {
  await a.objects.patch(obj, undefined, undefined, 'hybrid-release-tests', true, k8s.PatchStrategy.ServerSideApply);
}

export async function deleteNamespace(a: Admin, name: string): Promise<void> {
  await a.core.deleteNamespace({ name }).catch(() => undefined);
}

/** A kubeconfig with a ServiceAccount's token, contexts `worker` and `worker-b`. */
export async function mintKubeconfig(a: Admin, sa: { namespace: string; name: string }, opts: { token?: string; server?: string } = {}): Promise<string> {
  const token =
    opts.token ??
    (await a.core.createNamespacedServiceAccountToken({ namespace: sa.namespace, name: sa.name, body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status?.token;
  if (!token) throw new Error(`TokenRequest for ${sa.namespace}/${sa.name} returned no token`);
  const cluster = a.config.getCurrentCluster();
  if (!cluster) throw new Error('admin kubeconfig has no current cluster');
  const caData = cluster.caData ?? (cluster.caFile ? readFileSync(cluster.caFile).toString('base64') : undefined);
  const clusterEntry = (name: string) => ({
    name,
    cluster: {
      server: opts.server ?? cluster.server,
      ...(caData ? { 'certificate-authority-data': caData } : {}),
      ...(cluster.skipTLSVerify ? { 'insecure-skip-tls-verify': true } : {}),
    },
  });
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [clusterEntry('cluster-a'), clusterEntry('cluster-b')],
    users: [{ name: sa.name, user: { token } }],
    contexts: [
      { name: 'worker', context: { cluster: 'cluster-a', user: sa.name } },
      { name: 'worker-b', context: { cluster: 'cluster-b', user: sa.name } },
    ],
    'current-context': 'worker',
  };
  const path = join(mkdtempSync(join(tmpdir(), 'hr-kube-')), 'kubeconfig');
  writeFileSync(path, stringify(config), { mode: 0o600 });
  return path;
}

export const WORKER_SA = { namespace: 'hybrid-release', name: 'hybrid-release-worker' };
/** where release specs' Secret references may point (deploy/rbac.yaml) */
export const CREDENTIALS_NAMESPACE = 'hybrid-release-credentials';

/**
 * Applies the worker's generated RBAC (its namespace, ServiceAccount, the credentials namespace's
 * Role; the Roles of test namespaces come with createNamespace), points KUBECONFIG at a token of
 * the worker ServiceAccount and resets the activities' client cache, then waits until the RBAC
 * authorizer's cache has the new bindings.
 */
export async function useWorkerIdentity(a: Admin): Promise<string> {
  // the first stage bound a cluster-wide role; it must not linger on a stack that ran it
  await a.rbac.deleteClusterRoleBinding({ name: 'hybrid-release-worker' }).catch(() => undefined);
  await a.rbac.deleteClusterRole({ name: 'hybrid-release-worker' }).catch(() => undefined);
  for (const obj of rbacObjects(rbacTestPolicy([]), { serviceAccount: WORKER_SA })) await applyObject(a, obj as unknown as k8s.KubernetesObject);
  const path = await mintKubeconfig(a, WORKER_SA);
  switchKubeconfig(path);
  await waitAllowed(path, { group: '', resource: 'secrets', verb: 'get', namespace: CREDENTIALS_NAMESPACE });
  for (const namespace of granted) await waitAllowed(path, { group: 'kustomize.toolkit.fluxcd.io', resource: 'kustomizations', verb: 'patch', namespace });
  return path;
}

/**
 * The worker's identity in both clusters of the stack: in each, the worker's RBAC generated for
 * `namespaces` (as useWorkerIdentity does for one cluster) and a token of the worker ServiceAccount;
 * one kubeconfig with contexts `cluster-a` (current) and `cluster-b`. Points KUBECONFIG at it.
 */
export async function useWorkerIdentityInBothClusters(contextB: string, namespaces: string[]): Promise<string> {
  const clusters = [
    { name: 'cluster-a', admin: admin() },
    { name: 'cluster-b', admin: admin(contextB) },
  ];
  const config: { clusters: unknown[]; users: unknown[]; contexts: unknown[] } = { clusters: [], users: [], contexts: [] };
  for (const c of clusters) {
    for (const obj of rbacObjects(rbacTestPolicy(namespaces), { serviceAccount: WORKER_SA })) await applyObject(c.admin, obj as unknown as k8s.KubernetesObject);
    const token = (await c.admin.core.createNamespacedServiceAccountToken({ namespace: WORKER_SA.namespace, name: WORKER_SA.name, body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status?.token;
    const cluster = c.admin.config.getCurrentCluster()!;
    const caData = cluster.caData ?? (cluster.caFile ? readFileSync(cluster.caFile).toString('base64') : undefined);
    config.clusters.push({ name: c.name, cluster: { server: cluster.server, 'certificate-authority-data': caData } });
    config.users.push({ name: `${c.name}-worker`, user: { token } });
    config.contexts.push({ name: c.name, context: { cluster: c.name, user: `${c.name}-worker` } });
  }
  const path = join(mkdtempSync(join(tmpdir(), 'hr-kube-')), 'kubeconfig');
  writeFileSync(path, stringify({ apiVersion: 'v1', kind: 'Config', ...config, 'current-context': 'cluster-a' }), { mode: 0o600 });
  switchKubeconfig(path);
  const check = new k8s.KubeConfig();
  check.loadFromFile(path);
  for (const c of clusters) {
    check.setCurrentContext(c.name);
    const ctxFile = join(mkdtempSync(join(tmpdir(), 'hr-kube-')), 'kubeconfig');
    writeFileSync(ctxFile, check.exportConfig(), { mode: 0o600 });
    for (const namespace of namespaces) await waitAllowed(ctxFile, { group: 'kustomize.toolkit.fluxcd.io', resource: 'kustomizations', verb: 'patch', namespace });
  }
  return path;
}

export function switchKubeconfig(path: string): void {
  adminKubeconfigPath();
  process.env.KUBECONFIG = path;
  resetKubeClients();
}

/** RBAC changes reach the authorizer through an informer: wait for them instead of racing. */
export async function waitAllowed(kubeconfig: string, attrs: { group: string; resource: string; verb: string; namespace?: string; name?: string }): Promise<void> {
  const config = new k8s.KubeConfig();
  config.loadFromFile(kubeconfig);
  const authz = config.makeApiClient(k8s.AuthorizationV1Api);
  for (let i = 0; i < 100; i++) {
    const review = await authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: attrs } } });
    if (review.status?.allowed) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`RBAC never allowed ${attrs.verb} ${attrs.resource} for ${kubeconfig}`);
}
