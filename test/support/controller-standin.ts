/**
 * Stand-in for kustomize-controller, helm-controller and the Deployment controller, used only by
 * tests and the demo, because the local stack runs a bare kube-apiserver without controllers.
 * It stands in for the controllers, not for the API: it reads and writes through the real API
 * server, and writes status through the `/status` subresource the way those controllers do.
 *
 * - Kustomization / HelmRelease: when `reconcile.fluxcd.io/requestedAt` differs from
 *   `status.lastHandledReconcileAt`, or the spec changed (generation != observedGeneration), it
 *   first marks `Ready=Unknown/Progressing`, then after `delayMs` writes `lastHandledReconcileAt`,
 *   `observedGeneration`, `lastAppliedRevision` (Kustomization) or a new `history[0]` snapshot
 *   (HelmRelease), and `Ready=True/ReconciliationSucceeded` — or `Ready=False` with the reason and
 *   message injected for that object's name. Suspended objects are left alone, as Flux does.
 * - Deployment: when generation != observedGeneration, after `delayMs` it writes a completed
 *   rollout (replicas = updated = available = spec.replicas, Progressing=True/NewReplicaSetAvailable),
 *   or, if a failure is injected for the name, Progressing=False/ProgressDeadlineExceeded.
 *
 * It polls (every `pollMs`) rather than watches: simpler to stop cleanly, and fast enough for
 * tests. Pass `namespaces` so parallel test files do not handle each other's objects.
 */
import { createHash } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';

export interface InjectedFailure {
  /** Ready=False reason for Flux objects, e.g. HealthCheckFailed; ignored for Deployments */
  reason?: string;
  message?: string;
}

export interface StandInOptions {
  /** path or KubeConfig; default $KUBECONFIG */
  kubeconfig?: string | k8s.KubeConfig;
  /** namespaces to handle; default all (do not use the default when tests run in parallel) */
  namespaces?: string[];
  /** time between noticing a request and writing the outcome; default 300 ms */
  delayMs?: number;
  pollMs?: number;
  /**
   * failure to report instead of success, keyed by object name, or by `Kind/name`
   * (`Kustomization/web`, `HelmRelease/web`, `Deployment/web`) when names are shared across kinds
   */
  failures?: Record<string, InjectedFailure>;
}

export interface StandIn {
  /** change or clear (undefined) the injected failure for a name or `Kind/name`, for later reconciles */
  setFailure(name: string, failure: InjectedFailure | undefined): void;
  /** how many outcomes it has written, by kind (handy for asserting it did its part) */
  readonly handled: { Kustomization: number; HelmRelease: number; Deployment: number };
  stop(): Promise<void>;
}

const FLUX = [
  { kind: 'Kustomization', group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations' },
  { kind: 'HelmRelease', group: 'helm.toolkit.fluxcd.io', version: 'v2', plural: 'helmreleases' },
] as const;
type FluxKind = (typeof FLUX)[number];

const REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const digest = (v: unknown) => createHash('sha256').update(JSON.stringify(v ?? null)).digest('hex');

export function startStandIn(opts: StandInOptions = {}): StandIn {
  const kc = typeof opts.kubeconfig === 'object' ? opts.kubeconfig : new k8s.KubeConfig();
  if (typeof opts.kubeconfig !== 'object') {
    const path = opts.kubeconfig ?? process.env.KUBECONFIG;
    if (!path) throw new Error('controller stand-in: no kubeconfig given and KUBECONFIG is not set (npm run stack -- up)');
    kc.loadFromFile(path);
  }
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const delayMs = opts.delayMs ?? 300;
  const failures = new Map(Object.entries(opts.failures ?? {}));
  const handled = { Kustomization: 0, HelmRelease: 0, Deployment: 0 };
  // what we have noticed and when it becomes due, keyed by kind/ns/name + the request it answers
  const pending = new Map<string, number>();
  let stopped = false;

  async function listFlux(k: FluxKind): Promise<any[]> {
    const base = { group: k.group, version: k.version, plural: k.plural };
    if (!opts.namespaces) return ((await custom.listClusterCustomObject(base)) as any).items;
    const lists = await Promise.all(opts.namespaces.map((namespace) => custom.listNamespacedCustomObject({ ...base, namespace })));
    return lists.flatMap((l: any) => l.items);
  }

  async function listDeployments(): Promise<k8s.V1Deployment[]> {
    if (!opts.namespaces) return (await apps.listDeploymentForAllNamespaces()).items;
    const lists = await Promise.all(opts.namespaces.map((namespace) => apps.listNamespacedDeployment({ namespace })));
    return lists.flatMap((l) => l.items);
  }

  const failureFor = (kind: string, name: string) => failures.get(`${kind}/${name}`) ?? failures.get(name);

  function due(key: string): boolean {
    const at = pending.get(key);
    if (at === undefined) {
      pending.set(key, Date.now() + delayMs);
      return false;
    }
    return Date.now() >= at;
  }

  async function writeFluxStatus(k: FluxKind, obj: any, status: Record<string, unknown>): Promise<void> {
    await custom.patchNamespacedCustomObjectStatus(
      { group: k.group, version: k.version, plural: k.plural, namespace: obj.metadata.namespace, name: obj.metadata.name, body: { status } },
      mergePatch,
    );
  }

  async function reconcileFlux(k: FluxKind, obj: any): Promise<void> {
    if (obj.spec?.suspend) return;
    const gen: number = obj.metadata.generation;
    const token: string | undefined = obj.metadata.annotations?.[REQUESTED_AT];
    const st = obj.status ?? {};
    const wanted = (token !== undefined && token !== st.lastHandledReconcileAt) || gen !== st.observedGeneration;
    const key = `${k.kind}/${obj.metadata.namespace}/${obj.metadata.name}/${gen}/${token ?? ''}`;
    if (!wanted) {
      pending.delete(key);
      return;
    }
    const first = !pending.has(key);
    if (!due(key)) {
      if (first) {
        const conditions = [condition('Ready', 'Unknown', 'Progressing', 'Reconciliation in progress', gen), condition('Reconciling', 'True', 'Progressing', 'Reconciliation in progress', gen)];
        await writeFluxStatus(k, obj, { conditions });
      }
      return;
    }
    pending.delete(key);
    const failure = failureFor(k.kind, obj.metadata.name);
    const revision = `main@sha1:${digest(obj.spec).slice(0, 40)}`;
    const status: Record<string, unknown> = { observedGeneration: gen, ...(token !== undefined ? { lastHandledReconcileAt: token } : {}) };
    if (failure) {
      const reason = failure.reason ?? 'HealthCheckFailed';
      const message = failure.message ?? `injected failure for ${obj.metadata.name}`;
      status.conditions = [condition('Ready', 'False', reason, message, gen)];
      status.lastAttemptedRevision = revision;
      if (k.kind === 'HelmRelease') {
        status.lastAttemptedGeneration = gen;
        status.conditions = [condition('Ready', 'False', reason, message, gen), condition('Released', 'False', reason, message, gen)];
      }
    } else if (k.kind === 'Kustomization') {
      status.conditions = [condition('Ready', 'True', 'ReconciliationSucceeded', `Applied revision: ${revision}`, gen)];
      status.lastAppliedRevision = revision;
      status.lastAttemptedRevision = revision;
    } else {
      const history: any[] = Array.isArray(st.history) ? st.history : [];
      const version = history.reduce((m, h) => Math.max(m, Number(h.version) || 0), 0) + 1;
      const chart = obj.spec?.chart?.spec ?? {};
      const chartVersion = chart.version && chart.version !== '*' ? chart.version : '1.0.0';
      const t = now();
      const snapshot = {
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        version,
        status: 'deployed',
        chartName: chart.chart ?? obj.metadata.name,
        chartVersion,
        configDigest: `sha256:${digest(obj.spec?.values)}`,
        digest: `sha256:${digest({ gen, values: obj.spec?.values })}`,
        firstDeployed: history.at(-1)?.firstDeployed ?? t,
        lastDeployed: t,
      };
      // helm-controller keeps history newest first, bounded by maxHistory (default 5)
      status.history = [snapshot, ...history.map((h) => (h.status === 'deployed' ? { ...h, status: 'superseded' } : h))].slice(0, 5);
      status.lastAttemptedRevision = chartVersion;
      status.lastAttemptedGeneration = gen;
      status.lastAttemptedConfigDigest = snapshot.configDigest;
      status.lastAttemptedReleaseAction = version === 1 ? 'install' : 'upgrade';
      status.lastReleaseRevision = version;
      const msg = `Helm ${version === 1 ? 'install' : 'upgrade'} succeeded for release ${obj.metadata.namespace}/${obj.metadata.name}.v${version} with chart ${snapshot.chartName}@${chartVersion}`;
      status.conditions = [condition('Ready', 'True', version === 1 ? 'InstallSucceeded' : 'UpgradeSucceeded', msg, gen), condition('Released', 'True', version === 1 ? 'InstallSucceeded' : 'UpgradeSucceeded', msg, gen)];
    }
    await writeFluxStatus(k, obj, status);
    handled[k.kind]++;
  }

  async function reconcileDeployment(d: k8s.V1Deployment): Promise<void> {
    const gen = d.metadata?.generation ?? 0;
    if (gen === d.status?.observedGeneration) return;
    const key = `Deployment/${d.metadata!.namespace}/${d.metadata!.name}/${gen}`;
    if (!due(key)) return;
    pending.delete(key);
    const replicas = d.spec?.replicas ?? 1;
    const failure = failureFor('Deployment', d.metadata!.name!);
    const t = new Date();
    const status: k8s.V1DeploymentStatus = failure
      ? {
          observedGeneration: gen,
          replicas,
          updatedReplicas: Math.max(0, replicas - 1),
          readyReplicas: Math.max(0, replicas - 1),
          availableReplicas: Math.max(0, replicas - 1),
          unavailableReplicas: 1,
          conditions: [
            { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.', lastTransitionTime: t, lastUpdateTime: t },
            {
              type: 'Progressing',
              status: 'False',
              reason: 'ProgressDeadlineExceeded',
              message: failure.message ?? `ReplicaSet "${d.metadata!.name}" has timed out progressing.`,
              lastTransitionTime: t,
              lastUpdateTime: t,
            },
          ],
        }
      : {
          observedGeneration: gen,
          replicas,
          updatedReplicas: replicas,
          readyReplicas: replicas,
          availableReplicas: replicas,
          conditions: [
            { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.', lastTransitionTime: t, lastUpdateTime: t },
            { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${d.metadata!.name}" has successfully progressed.`, lastTransitionTime: t, lastUpdateTime: t },
          ],
        };
    await apps.patchNamespacedDeploymentStatus({ namespace: d.metadata!.namespace!, name: d.metadata!.name!, body: { status } }, mergePatch);
    handled.Deployment++;
  }

  async function tick(): Promise<void> {
    const work: Promise<void>[] = [];
    for (const k of FLUX) for (const obj of await listFlux(k)) work.push(reconcileFlux(k, obj));
    for (const d of await listDeployments()) work.push(reconcileDeployment(d));
    const results = await Promise.allSettled(work);
    for (const r of results) {
      // a 409 means the object changed under us; the next tick sees the new version
      if (r.status === 'rejected' && (r.reason as { code?: number }).code !== 409 && (r.reason as { code?: number }).code !== 404) {
        console.error(`controller stand-in: ${(r.reason as Error).message}`);
      }
    }
  }

  const loop = (async () => {
    while (!stopped) {
      try {
        await tick();
      } catch (err) {
        if (!stopped) console.error(`controller stand-in: ${(err as Error).message}`);
      }
      // unref'd: a test that forgets stop() still lets its process exit
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 200).unref());
    }
  })();

  return {
    handled,
    setFailure(name, failure) {
      if (failure) failures.set(name, failure);
      else failures.delete(name);
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

function condition(type: string, status: string, reason: string, message: string, observedGeneration: number) {
  return { type, status, reason, message, observedGeneration, lastTransitionTime: now() };
}
