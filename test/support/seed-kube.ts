/**
 * Kubernetes test objects through the real API server of the local stack, made the way a team
 * would make them: an app's manifests committed to a repository on the stack's Git server, a
 * GitRepository that source-controller fetches and a Kustomization that kustomize-controller
 * applies (kube-controller-manager and kwok then roll the Deployment out); a chart published to
 * the stack's Helm repository and a HelmRelease that helm-controller installs. Plus a
 * Deployment, a canary Ingress and ServiceAccount tokens for least-privilege tests.
 * Admin access comes from KUBECONFIG (.stack/env), the main cluster unless a context is named.
 */
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { requireEnv } from './env.ts';
import { commitFiles, gitRepoUrl, publishChart } from './sources.ts';

export const fluxGroups = {
  kustomization: { group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations', kind: 'Kustomization' },
  helmRelease: { group: 'helm.toolkit.fluxcd.io', version: 'v2', plural: 'helmreleases', kind: 'HelmRelease' },
  gitRepository: { group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'gitrepositories', kind: 'GitRepository' },
  helmRepository: { group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'helmrepositories', kind: 'HelmRepository' },
} as const;
type FluxGroup = (typeof fluxGroups)[keyof typeof fluxGroups];

/** The stack's admin kubeconfig; `context` picks a cluster (HR_KUBE_CONTEXT_B is the second one). */
export function adminKubeConfig(context?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  // tests that act as the worker point KUBECONFIG at its token and keep the admin's here
  kc.loadFromFile(process.env.HYBRID_RELEASE_ADMIN_KUBECONFIG ?? requireEnv('KUBECONFIG'));
  if (context) {
    if (!kc.getContextObject(context)) throw new Error(`context ${context} is not in ${process.env.KUBECONFIG} (contexts: ${kc.getContexts().map((c) => c.name).join(', ')}): is the second cluster up (npm run stack -- up)?`);
    kc.setCurrentContext(context);
  }
  return kc;
}

/** The second cluster of the stack, as an admin kubeconfig (context $HR_KUBE_CONTEXT_B). */
export function secondClusterKubeConfig(): k8s.KubeConfig {
  return adminKubeConfig(requireEnv('HR_KUBE_CONTEXT_B'));
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

/** Creates the namespace if missing (kube-controller-manager gives it its default ServiceAccount). */
export async function createNamespace(name: string, kc = adminKubeConfig()): Promise<void> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await createOrKeep(() => core.createNamespace({ body: { metadata: { name, labels: { 'hybrid-release/test': 'true' } } } }));
}

/** Creates one Flux object of the given kind with the given spec. */
function createFluxObject(g: FluxGroup, namespace: string, name: string, spec: object, kc: k8s.KubeConfig): Promise<Record<string, any>> {
  return kc.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({
    group: g.group,
    version: g.version,
    namespace,
    plural: g.plural,
    body: { apiVersion: `${g.group}/${g.version}`, kind: g.kind, metadata: { name, namespace }, spec },
  });
}

export function getFluxObject(g: FluxGroup, namespace: string, name: string, kc = adminKubeConfig()): Promise<any> {
  return kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({ group: g.group, version: g.version, plural: g.plural, namespace, name });
}

const readyOf = (o: any) => (o?.status?.conditions ?? []).find((c: any) => c.type === 'Ready');
const describeReady = (o: any) => {
  const r = readyOf(o);
  return r ? `Ready=${r.status} ${r.reason}: ${r.message} (generation ${o.metadata?.generation}, observed ${o.status?.observedGeneration})` : `no Ready condition yet (generation ${o?.metadata?.generation})`;
};

/**
 * Waits until the Flux object reports Ready=True for its current generation. Deadlines are for a
 * busy 2-core machine; the failure says what was seen last.
 */
export async function waitForFluxReady(g: FluxGroup, namespace: string, name: string, kc = adminKubeConfig(), timeoutMs = 180_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  for (;;) {
    last = await getFluxObject(g, namespace, name, kc).catch((err: Error) => ({ error: err.message }));
    const r = readyOf(last);
    if (r?.status === 'True' && r.observedGeneration === last.metadata.generation && last.status?.observedGeneration === last.metadata.generation) return last;
    if (Date.now() > deadline) throw new Error(`${g.kind} ${namespace}/${name} not Ready within ${timeoutMs / 1000}s: ${last.error ?? describeReady(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Asks the controller to reconcile now, as `flux reconcile` does. */
export async function requestReconcile(g: FluxGroup, namespace: string, name: string, kc = adminKubeConfig()): Promise<string> {
  const token = new Date().toISOString();
  await kc.makeApiClient(k8s.CustomObjectsApi).patchNamespacedCustomObject(
    { group: g.group, version: g.version, plural: g.plural, namespace, name, body: { metadata: { annotations: { 'reconcile.fluxcd.io/requestedAt': token } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  return token;
}

// ------------------------------------------------------------------------------ apps from Git

export interface AppManifest {
  /** Deployment (and Service) name */
  name: string;
  /** image with tag, e.g. ghcr.io/acme/web:1.0.0 */
  image: string;
  replicas?: number;
  /** small by default, so a rollout that stalls is reported quickly */
  progressDeadlineSeconds?: number;
}

/** An app's manifests as kustomize files under `dir`: a Deployment, its Service, kustomization.yaml. */
export function appFiles(dir: string, app: AppManifest): Record<string, string> {
  const labels = { app: app.name };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: app.name, labels },
    spec: {
      replicas: app.replicas ?? 2,
      progressDeadlineSeconds: app.progressDeadlineSeconds ?? 10,
      revisionHistoryLimit: 3,
      selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: app.image, ports: [{ containerPort: 8080 }] }] } },
    },
  };
  const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: app.name }, spec: { selector: labels, ports: [{ port: 80, targetPort: 8080 }] } };
  return {
    [`${dir}/deployment.yaml`]: stringify(deployment),
    [`${dir}/service.yaml`]: stringify(service),
    [`${dir}/kustomization.yaml`]: stringify({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: ['deployment.yaml', 'service.yaml'] }),
  };
}

export interface KustomizationSeed {
  namespace: string;
  name: string;
  /** spec.images; without `image`, the first entry's name and newTag are the image the manifests in Git run */
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  /** the image (with tag) the Deployment in Git runs */
  image?: string;
  replicas?: number;
  progressDeadlineSeconds?: number;
  /** spec.wait (default true): Ready only once what it applied is healthy */
  wait?: boolean;
  /** spec.timeout, default 2m */
  timeout?: string;
  suspend?: boolean;
  /** commit these files instead of the generated app (e.g. a path that does not build) */
  files?: Record<string, string>;
  /** path in the repository, default ./apps/<name> */
  path?: string;
  /** wait until Ready=True (default true unless suspended) */
  ready?: boolean;
  /** repository on the Git server, default <namespace>/<name>; apps may share one */
  repo?: string;
}

/** The Git repository and GitRepository object a seed uses. */
const repoOf = (seed: KustomizationSeed) => seed.repo ?? `${seed.namespace}/${seed.name}`;
const sourceName = (repo: string) => repo.replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(-63).replace(/^-+/, '');

function seedFiles(seed: KustomizationSeed): Record<string, string> {
  if (seed.files) return seed.files;
  const first = seed.images?.[0] ?? { name: 'ghcr.io/acme/web', newTag: '1.0.0' };
  return appFiles(`apps/${seed.name}`, {
    name: seed.name,
    image: seed.image ?? `${first.name}:${first.newTag ?? 'latest'}`,
    replicas: seed.replicas,
    progressDeadlineSeconds: seed.progressDeadlineSeconds,
  });
}

/** A GitRepository for `repo` on the stack's Git server (kept if it exists). */
export async function createGitRepository(namespace: string, repo: string, kc = adminKubeConfig()): Promise<string> {
  const name = sourceName(repo);
  await createOrKeep(() => createFluxObject(fluxGroups.gitRepository, namespace, name, { interval: '10m', url: gitRepoUrl(repo), ref: { branch: 'main' }, timeout: '30s' }, kc));
  return name;
}

/**
 * One app, the real way: its manifests committed to the stack's Git server, a GitRepository and
 * a Kustomization (wait: true unless said otherwise, targetNamespace = namespace) that applies
 * them; waits until Ready (the Deployment rolled out on kwok's nodes).
 */
export async function createKustomization(seed: KustomizationSeed, kc = adminKubeConfig()): Promise<Record<string, any>> {
  return (await createKustomizations(seed.namespace, [seed], kc))[0]!;
}

/**
 * Several apps in one commit per repository (apps without `repo` share none), then their
 * Kustomizations; waits until all are Ready.
 */
export async function createKustomizations(namespace: string, seeds: KustomizationSeed[], kc = adminKubeConfig()): Promise<Record<string, any>[]> {
  const byRepo = new Map<string, KustomizationSeed[]>();
  for (const seed of seeds) byRepo.set(repoOf(seed), [...(byRepo.get(repoOf(seed)) ?? []), seed]);
  for (const [repo, group] of byRepo) {
    await commitFiles(repo, Object.assign({}, ...group.map(seedFiles)), `apps: ${group.map((s) => s.name).join(', ')}`);
    await createGitRepository(namespace, repo, kc);
  }
  const created: Record<string, any>[] = [];
  for (const seed of seeds) {
    created.push(
      await createFluxObject(fluxGroups.kustomization, namespace, seed.name, {
        interval: '10m',
        path: seed.path ?? `./apps/${seed.name}`,
        prune: true,
        wait: seed.wait ?? true,
        timeout: seed.timeout ?? '2m',
        targetNamespace: namespace,
        sourceRef: { kind: 'GitRepository', name: sourceName(repoOf(seed)) },
        ...(seed.images ? { images: seed.images } : {}),
        ...(seed.suspend ? { suspend: true } : {}),
      }, kc),
    );
  }
  // one after another: the controller reconciles a few at a time, so each wait's deadline starts
  // once the one before it is Ready (a deadline per object that makes progress, however many there are)
  for (const s of seeds.filter((s) => s.ready ?? !s.suspend)) await waitForFluxReady(fluxGroups.kustomization, namespace, s.name, kc);
  return created;
}

// ------------------------------------------------------------------------------ Helm releases

export interface HelmReleaseSeed {
  namespace: string;
  name: string;
  /** spec.values */
  values?: Record<string, unknown>;
  /** chart version published and requested, default 1.0.0 */
  chartVersion?: string;
  /** spec.timeout (helm --wait), default 20s: a stalled rollout fails the upgrade after it */
  timeout?: string;
  /** install/upgrade remediation with rollback (default true); false leaves both out */
  remediation?: boolean;
  /** wait until Ready=True (default true) */
  ready?: boolean;
}

/**
 * The sample chart (test/fixtures/charts/web) packed and published to chart repository
 * <namespace> of the stack's Helm repository, a HelmRepository `charts` for it, and a HelmRelease
 * with remediation (one retry, rollback) that helm-controller installs; waits until Ready.
 */
export async function createHelmRelease(seed: HelmReleaseSeed, kc = adminKubeConfig()): Promise<Record<string, any>> {
  const url = await publishChart(seed.namespace, { version: seed.chartVersion ?? '1.0.0' });
  await createOrKeep(() => createFluxObject(fluxGroups.helmRepository, seed.namespace, 'charts', { interval: '10m', url, timeout: '30s' }, kc));
  const remediation = seed.remediation ?? true;
  const created = await createFluxObject(fluxGroups.helmRelease, seed.namespace, seed.name, {
    interval: '10m',
    timeout: seed.timeout ?? '20s',
    chart: { spec: { chart: 'web', version: seed.chartVersion ?? '1.0.0', sourceRef: { kind: 'HelmRepository', name: 'charts' }, interval: '10m' } },
    ...(remediation
      ? { install: { remediation: { retries: 1 } }, upgrade: { remediation: { retries: 1, remediateLastFailure: true, strategy: 'rollback' } } }
      : {}),
    values: seed.values ?? {},
  }, kc);
  if (seed.ready ?? true) await waitForFluxReady(fluxGroups.helmRelease, seed.namespace, seed.name, kc);
  return created;
}

export interface DeploymentSeed {
  namespace: string;
  name: string;
  image: string;
  replicas?: number;
  progressDeadlineSeconds?: number;
}

/** A Deployment made directly (no Flux): kube-controller-manager rolls it out on kwok's nodes. */
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
 * A ServiceAccount and a short-lived token
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
