/**
 * Kubernetes test objects through the real API server: a namespace, a Flux Kustomization and
 * HelmRelease, a Deployment and a canary Ingress, plus ServiceAccount tokens for least-privilege
 * tests. Admin access comes from KUBECONFIG (.stack/env); any cluster with the Flux CRDs works.
 */
import * as k8s from '@kubernetes/client-node';
import { requireEnv } from './env.ts';

export const fluxGroups = {
  kustomization: { group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations', kind: 'Kustomization' },
  helmRelease: { group: 'helm.toolkit.fluxcd.io', version: 'v2', plural: 'helmreleases', kind: 'HelmRelease' },
  gitRepository: { group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'gitrepositories', kind: 'GitRepository' },
} as const;

export function adminKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(requireEnv('KUBECONFIG'));
  return kc;
}

function isConflict(err: unknown): boolean {
  return (err as { code?: number }).code === 409;
}

async function createOrKeep<T>(create: () => Promise<T>): Promise<void> {
  try {
    await create();
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
}

/** Creates the namespace if missing. Deletion never finalizes here (no controllers run). */
export async function createNamespace(name: string, kc = adminKubeConfig()): Promise<void> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await createOrKeep(() => core.createNamespace({ body: { metadata: { name, labels: { 'hybrid-release/test': 'true' } } } }));
}

export interface KustomizationSeed {
  namespace: string;
  name: string;
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  suspend?: boolean;
  /** source it points at; created as a GitRepository of the same name when absent */
  sourceName?: string;
}

/** Creates one Flux object of the given kind with the given spec. */
function createFluxObject(g: (typeof fluxGroups)[keyof typeof fluxGroups], namespace: string, name: string, spec: object, kc: k8s.KubeConfig): Promise<Record<string, any>> {
  return kc.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({
    group: g.group,
    version: g.version,
    namespace,
    plural: g.plural,
    body: { apiVersion: `${g.group}/${g.version}`, kind: g.kind, metadata: { name, namespace }, spec },
  });
}

export async function createKustomization(seed: KustomizationSeed, kc = adminKubeConfig()): Promise<Record<string, any>> {
  const sourceName = seed.sourceName ?? seed.name;
  await createGitRepository(seed.namespace, sourceName, kc);
  return createFluxObject(fluxGroups.kustomization, seed.namespace, seed.name, {
    interval: '10m',
    path: './deploy',
    prune: true,
    sourceRef: { kind: 'GitRepository', name: sourceName },
    images: seed.images ?? [],
    ...(seed.suspend ? { suspend: true } : {}),
  }, kc);
}

export async function createGitRepository(namespace: string, name: string, kc = adminKubeConfig()): Promise<void> {
  await createOrKeep(() =>
    createFluxObject(fluxGroups.gitRepository, namespace, name, { interval: '10m', url: 'https://example.invalid/repo.git', ref: { branch: 'main' } }, kc),
  );
}

export interface HelmReleaseSeed {
  namespace: string;
  name: string;
  values?: Record<string, unknown>;
  chart?: string;
}

export async function createHelmRelease(seed: HelmReleaseSeed, kc = adminKubeConfig()): Promise<Record<string, any>> {
  return createFluxObject(fluxGroups.helmRelease, seed.namespace, seed.name, {
    interval: '10m',
    chart: { spec: { chart: seed.chart ?? seed.name, version: '*', sourceRef: { kind: 'HelmRepository', name: 'charts' } } },
    values: seed.values ?? {},
  }, kc);
}

export interface DeploymentSeed {
  namespace: string;
  name: string;
  image: string;
  replicas?: number;
  progressDeadlineSeconds?: number;
}

/** A Deployment; nothing runs its pods here, the controller stand-in writes its status. */
export async function createDeployment(seed: DeploymentSeed, kc = adminKubeConfig()): Promise<k8s.V1Deployment> {
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const labels = { app: seed.name };
  return apps.createNamespacedDeployment({
    namespace: seed.namespace,
    body: {
      metadata: { name: seed.name, namespace: seed.namespace, labels },
      spec: {
        replicas: seed.replicas ?? 2,
        progressDeadlineSeconds: seed.progressDeadlineSeconds ?? 600,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: seed.image }] } },
      },
    },
  });
}

export interface CanaryIngressSeed {
  namespace: string;
  name: string;
  host: string;
  serviceName: string;
  weight?: number;
}

/** An NGINX canary Ingress (`canary: "true"`, `canary-weight`), weight 0 unless given. */
export async function createCanaryIngress(seed: CanaryIngressSeed, kc = adminKubeConfig()): Promise<k8s.V1Ingress> {
  const net = kc.makeApiClient(k8s.NetworkingV1Api);
  return net.createNamespacedIngress({
    namespace: seed.namespace,
    body: {
      metadata: {
        name: seed.name,
        namespace: seed.namespace,
        annotations: {
          'nginx.ingress.kubernetes.io/canary': 'true',
          'nginx.ingress.kubernetes.io/canary-weight': String(seed.weight ?? 0),
        },
      },
      spec: {
        ingressClassName: 'nginx',
        rules: [
          {
            host: seed.host,
            http: {
              paths: [
                { path: '/', pathType: 'Prefix', backend: { service: { name: seed.serviceName, port: { number: 80 } } } },
              ],
            },
          },
        ],
      },
    },
  });
}

/**
 * A ServiceAccount (created explicitly: no controller makes them here) and a short-lived token
 * minted through the TokenRequest API, as a KubeConfig for that identity. With no RoleBinding
 * it can do nearly nothing: the 403 case of least-privilege tests.
 */
export async function serviceAccountKubeConfig(
  namespace: string,
  name: string,
  kc = adminKubeConfig(),
  expirationSeconds = 3600,
): Promise<{ kubeConfig: k8s.KubeConfig; token: string }> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await createOrKeep(() => core.createNamespacedServiceAccount({ namespace, body: { metadata: { name, namespace } } }));
  const tr = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('admin kubeconfig has no current cluster');
  const out = new k8s.KubeConfig();
  out.loadFromOptions({
    clusters: [cluster],
    users: [{ name: `${namespace}:${name}`, token }],
    contexts: [{ name: 'sa', cluster: cluster.name, user: `${namespace}:${name}`, namespace }],
    currentContext: 'sa',
  });
  return { kubeConfig: out, token };
}

/** Grants a ServiceAccount a namespaced Role (rules as given), for least-privilege tests. */
export async function grantRole(
  namespace: string,
  serviceAccount: string,
  rules: k8s.V1PolicyRule[],
  kc = adminKubeConfig(),
): Promise<void> {
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const name = `${serviceAccount}-role`;
  await createOrKeep(() => rbac.createNamespacedRole({ namespace, body: { metadata: { name, namespace }, rules } }));
  await createOrKeep(() =>
    rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name, namespace },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
        subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace }],
      },
    }),
  );
}
