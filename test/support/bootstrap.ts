/**
 * A `flux bootstrap`-like layout on the local stack, for Git mode and the live-mode guard:
 *
 *   repository <repo> on the stack's Git server (branch main)
 *   ├── clusters/local/<app>.yaml        the app's Flux objects: a Kustomization with spec.images
 *   │                                    (or a HelmRepository and a HelmRelease with values)
 *   └── apps/<app>/                      the app's manifests: kustomization.yaml (images: entry),
 *       deployment.yaml, service.yaml      Deployment, Service
 *
 *   namespace <system> (the test's own "flux-system")
 *   ├── GitRepository flux-system        reads <repo>, branch main
 *   └── Kustomization flux-system        the parent: applies ./clusters/local with server-side
 *                                        apply (prune, no wait, as flux bootstrap makes it)
 *
 * So the app's Kustomization / HelmRelease in the cluster is itself applied from Git by the
 * parent, and every field Git sets on it is owned by the field manager kustomize-controller: a
 * live patch of it is put back by the parent's next reconcile. Each test passes its own names, so
 * files run in parallel.
 */
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { commitFiles, gitRepoUrl, publishChart } from './sources.ts';
import { adminKubeConfig, appFiles, createNamespace, fluxGroups, getFluxObject, requestReconcile, waitForFluxReady } from './seed-kube.ts';

export const PARENT = 'flux-system';

export type BootstrapApp =
  | {
      kind: 'Kustomization';
      /** the app's namespace: its Kustomization and what that applies */
      namespace: string;
      name: string;
      /** image repository, and the tag Git sets in the Kustomization's spec.images */
      image: string;
      tag: string;
      /** where the tag lives in Git: the Flux Kustomization's spec.images (default) or apps/<name>/kustomization.yaml */
      tagIn?: 'flux-object' | 'kustomize-file';
      /** annotations on the Flux Kustomization in Git (e.g. kustomize.toolkit.fluxcd.io/ssa) */
      annotations?: Record<string, string>;
    }
  | {
      kind: 'HelmRelease';
      namespace: string;
      name: string;
      /** spec.values.image.tag in Git */
      tag: string;
    };

export interface Bootstrap {
  /** the test's flux-system namespace: GitRepository and parent Kustomization `flux-system` */
  system: string;
  repo: string;
  apps: BootstrapApp[];
}

/** The Git path of an app's Flux objects. */
export const appManifestPath = (app: Pick<BootstrapApp, 'name'>) => `clusters/local/${app.name}.yaml`;
/** The Git path of an app's kustomize file. */
export const appKustomizePath = (app: Pick<BootstrapApp, 'name'>) => `apps/${app.name}/kustomization.yaml`;

function manifests(b: Bootstrap, app: BootstrapApp, chartUrl: string | undefined): Record<string, string> {
  if (app.kind === 'HelmRelease') {
    const text = [
      `# ${app.name}: Helm release of the sample chart, applied by ${b.system}/${PARENT}`,
      stringify({ apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'HelmRepository', metadata: { name: `${app.name}-charts`, namespace: app.namespace }, spec: { interval: '10m', url: chartUrl, timeout: '30s' } }),
      '---',
      stringify({
        apiVersion: 'helm.toolkit.fluxcd.io/v2',
        kind: 'HelmRelease',
        metadata: { name: app.name, namespace: app.namespace },
        spec: {
          interval: '10m',
          timeout: '20s',
          chart: { spec: { chart: 'web', version: '1.0.0', sourceRef: { kind: 'HelmRepository', name: `${app.name}-charts` }, interval: '10m' } },
          install: { remediation: { retries: 1 } },
          upgrade: { remediation: { retries: 1, remediateLastFailure: true, strategy: 'rollback' } },
          values: { image: { tag: app.tag } },
        },
      }),
    ].join('\n');
    return { [appManifestPath(app)]: text };
  }
  const inFile = app.tagIn === 'kustomize-file';
  const files = appFiles(`apps/${app.name}`, { name: app.name, image: `${app.image}:0.0.1-in-manifest` });
  files[appKustomizePath(app)] = stringify({
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: ['deployment.yaml', 'service.yaml'],
    images: [{ name: app.image, newTag: inFile ? app.tag : '0.0.2-in-kustomize-file' }],
  });
  files[appManifestPath(app)] =
    `# ${app.name}: applied by ${b.system}/${PARENT}; the release of ${app.image} is set here\n` +
    stringify({
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name: app.name, namespace: app.namespace, ...(app.annotations ? { annotations: app.annotations } : {}) },
      spec: {
        interval: '10m',
        path: `./apps/${app.name}`,
        prune: true,
        wait: true,
        timeout: '2m',
        targetNamespace: app.namespace,
        sourceRef: { kind: 'GitRepository', name: PARENT, namespace: b.system },
        ...(inFile ? {} : { images: [{ name: app.image, newTag: app.tag }] }),
      },
    });
  return files;
}

/**
 * Commits the layout, creates the namespaces, the GitRepository and the parent Kustomization, and
 * waits until the parent and every app are Ready (the Deployments rolled out on kwok's nodes).
 * Run again on the same names it resets the apps the GitOps way: the files are committed again
 * and the parent reconciles from source (kept objects are not recreated).
 */
export async function createBootstrap(b: Bootstrap, kc = adminKubeConfig()): Promise<void> {
  await createNamespace(b.system, kc);
  for (const ns of new Set(b.apps.map((a) => a.namespace))) await createNamespace(ns, kc);
  const files: Record<string, string> = {};
  for (const app of b.apps) {
    const chartUrl = app.kind === 'HelmRelease' ? await publishChart(app.namespace, { version: '1.0.0' }) : undefined;
    Object.assign(files, manifests(b, app, chartUrl));
  }
  await commitFiles(b.repo, files, `bootstrap: ${b.apps.map((a) => a.name).join(', ')}`);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const create = (g: (typeof fluxGroups)[keyof typeof fluxGroups], name: string, spec: object) =>
    custom.createNamespacedCustomObject({ group: g.group, version: g.version, plural: g.plural, namespace: b.system, body: { apiVersion: `${g.group}/${g.version}`, kind: g.kind, metadata: { name, namespace: b.system }, spec } });
  const keep = (err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
    return 'kept' as const;
  };
  const created = await Promise.all([
    create(fluxGroups.gitRepository, PARENT, { interval: '10m', url: gitRepoUrl(b.repo), ref: { branch: 'main' }, timeout: '30s' }).catch(keep),
    create(fluxGroups.kustomization, PARENT, { interval: '10m', path: './clusters/local', prune: true, sourceRef: { kind: 'GitRepository', name: PARENT } }).catch(keep),
  ]);
  if (created.includes('kept')) await reconcileParent(b, kc);
  await waitForFluxReady(fluxGroups.kustomization, b.system, PARENT, kc);
  await Promise.all(
    b.apps.map((a) => waitForFluxReady(a.kind === 'Kustomization' ? fluxGroups.kustomization : fluxGroups.helmRelease, a.namespace, a.name, kc, 240_000)),
  );
}

/**
 * `flux reconcile kustomization flux-system --with-source`: the GitRepository fetches, then the
 * parent applies what Git says. Resolves once the parent handled the request and is Ready again.
 */
export async function reconcileParent(b: Pick<Bootstrap, 'system'>, kc = adminKubeConfig(), timeoutMs = 180_000): Promise<any> {
  const sourceToken = await requestReconcile(fluxGroups.gitRepository, b.system, PARENT, kc);
  await waitHandled(fluxGroups.gitRepository, b.system, PARENT, sourceToken, kc, timeoutMs);
  const token = await requestReconcile(fluxGroups.kustomization, b.system, PARENT, kc);
  return waitHandled(fluxGroups.kustomization, b.system, PARENT, token, kc, timeoutMs);
}

async function waitHandled(g: (typeof fluxGroups)[keyof typeof fluxGroups], namespace: string, name: string, token: string, kc: k8s.KubeConfig, timeoutMs: number): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  for (;;) {
    last = await getFluxObject(g, namespace, name, kc);
    const ready = (last.status?.conditions ?? []).find((c: any) => c.type === 'Ready');
    if (last.status?.lastHandledReconcileAt === token && ready?.status === 'True') return last;
    if (Date.now() > deadline) throw new Error(`${g.kind} ${namespace}/${name} did not handle reconcile request ${token} within ${timeoutMs / 1000}s: last handled ${last.status?.lastHandledReconcileAt}, Ready=${ready?.status} ${ready?.reason}: ${ready?.message}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
