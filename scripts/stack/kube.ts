/**
 * One Kubernetes cluster of the local stack, every process real and on free loopback ports:
 *
 *   etcd → kube-apiserver (+ the Flux CRDs, namespace flux-system)
 *        → kube-controller-manager (deployment, replicaset, garbage-collector, namespace,
 *          serviceaccount, node-lifecycle controllers), kube-scheduler,
 *          kwok (fake nodes that run pods without kubelets; scripts/stack/kwok-stages.yaml has
 *          the fault stage: images ending in "-broken" never become Ready),
 *          source-controller, kustomize-controller, helm-controller (out of cluster, $KUBECONFIG).
 *
 * `cluster('')` is the main cluster (group `kube`, state in .stack/kube, context
 * hybrid-release-local); `cluster('-b')` the second one (group `kube-b`, .stack/kube-b, context
 * hybrid-release-b), a separate etcd, API server and set of controllers.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { cachedBinaries, fluxCrdDir, repoRoot, stackDir, versions } from '../lib/paths.ts';
import { adminKubeconfig, ensureKubePki, type KubePki } from '../lib/pki.ts';
import { freePort } from '../lib/ports.ts';
import { isAlive, startDetached } from '../lib/proc.ts';
import type { ServiceRecord, StackState } from '../lib/state.ts';
import { fetchQuick, waitFor } from '../lib/wait.ts';
import type { Service } from './service.ts';

/** the audience minted ServiceAccount tokens carry; the apiserver accepts exactly this one */
export const serviceAccountIssuer = 'https://kubernetes.default.svc.cluster.local';

/** kwok's fake nodes in each cluster */
export const KWOK_NODES = ['kwok-node-0', 'kwok-node-1', 'kwok-node-2'];

/** The Flux controllers' runtime namespace (events, leader election if it were on). */
export const FLUX_NAMESPACE = 'flux-system';

/** kube-controller-manager's controllers: what Deployments, namespaces and kwok nodes need. */
export const KCM_CONTROLLERS = [
  'deployment-controller',
  'replicaset-controller',
  // deletes what a deleted owner leaves behind (pods of a deleted ReplicaSet, …)
  'garbage-collector-controller',
  // finishes namespace deletion (deletes the content, then the namespace)
  'namespace-controller',
  // creates each namespace's `default` ServiceAccount, without which pod admission refuses pods
  'serviceaccount-controller',
  // removes the not-ready taint from kwok's nodes once they report Ready, so pods get scheduled
  'node-lifecycle-controller',
];

function requireBinary(path: string, what: string): string {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}: run scripts/provision.sh (builds it into the cache)`);
  return path;
}

/** GET over TLS to a loopback component; `pki` authenticates as the cluster's admin. */
function httpsGet(url: string, pki?: KubePki): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      pki
        ? { ca: readFileSync(pki.caCert), cert: readFileSync(pki.adminCert), key: readFileSync(pki.adminKey), timeout: 3000 }
        : // kube-controller-manager and kube-scheduler serve with a self-signed certificate
          { rejectUnauthorized: false, timeout: 3000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export interface Cluster {
  /** '' for the main cluster, '-b' for the second */
  suffix: '' | '-b';
  group: 'kube' | 'kube-b';
  /** kubeconfig context name, also the cluster's name in kubeconfigs */
  context: string;
  dir: string;
  /** the cluster's own single-context admin kubeconfig (what its controllers use) */
  kubeconfig: string;
  apiserverName: string;
  services: Service[];
}

export function cluster(suffix: '' | '-b'): Cluster {
  const dir = join(stackDir, `kube${suffix}`);
  const group = suffix === '' ? 'kube' : 'kube-b';
  const context = suffix === '' ? 'hybrid-release-local' : 'hybrid-release-b';
  const kubeconfig = join(dir, 'admin.kubeconfig');
  const name = (base: string) => `${base}${suffix}`;
  const pki = () => ensureKubePki(join(dir, 'pki'));
  const apiserverName = name('kube-apiserver');
  const etcdName = name('etcd');
  const log = (what: string) => join(dir, `${what}.log`);

  const etcd: Service = {
    name: etcdName,
    group,
    async start(previous) {
      const binary = requireBinary(cachedBinaries.etcd, 'etcd');
      const client = await freePort(previous?.client);
      const peer = await freePort(previous?.peer);
      mkdirSync(dir, { recursive: true });
      const args = [
        '--name', 'hybrid-release',
        // keyed by version: etcd refuses data written by a newer minor (no downgrades), and the
        // cluster's content is test data that a fresh start recreates (CRDs are reinstalled)
        '--data-dir', join(dir, `etcd-data-v${versions.etcd}`),
        '--listen-client-urls', `http://127.0.0.1:${client}`,
        '--advertise-client-urls', `http://127.0.0.1:${client}`,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `hybrid-release=http://127.0.0.1:${peer}`,
        '--log-level', 'warn',
      ];
      const { pid } = startDetached(binary, args, { logFile: log('etcd'), cwd: dir });
      return { pid, binary, ports: { client, peer }, env: {}, startedAt: new Date().toISOString() };
    },
    async ready(rec, timeoutMs) {
      await waitFor(
        `${etcdName} on 127.0.0.1:${rec.ports.client}`,
        async () => {
          const body = (await (await fetchQuick(`http://127.0.0.1:${rec.ports.client}/health`)).json()) as { health?: string };
          return body.health === 'true';
        },
        { timeoutMs, alive: () => isAlive(rec.pid) },
      );
    },
  };

  const apiserver: Service = {
    name: apiserverName,
    group,
    stale(rec, state) {
      // it was started against an etcd that has since moved
      return rec.ports.etcd !== state[etcdName]?.ports.client;
    },
    async start(previous, state) {
      const binary = requireBinary(cachedBinaries.kubeApiserver, 'kube-apiserver');
      const etcdPort = state[etcdName]?.ports.client;
      if (!etcdPort) throw new Error(`${etcdName} must start before ${apiserverName}`);
      const p = pki();
      const port = await freePort(previous?.https);
      const args = [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${port}`,
        `--cert-dir=${join(dir, 'pki')}`,
        `--tls-cert-file=${p.serverCert}`,
        `--tls-private-key-file=${p.serverKey}`,
        `--client-ca-file=${p.caCert}`,
        '--authorization-mode=Node,RBAC',
        // TokenRequest needs all three; tokens are minted for least-privilege tests
        `--service-account-issuer=${serviceAccountIssuer}`,
        `--service-account-key-file=${p.saPub}`,
        `--service-account-signing-key-file=${p.saKey}`,
        `--api-audiences=${serviceAccountIssuer}`,
        '--service-cluster-ip-range=10.96.0.0/24',
        '--profiling=false',
        '--v=1',
      ];
      const { pid } = startDetached(binary, args, { logFile: log('kube-apiserver'), cwd: dir });
      writeFileSync(kubeconfig, adminKubeconfig(`https://127.0.0.1:${port}`, p, context));
      return { pid, binary, ports: { https: port, etcd: etcdPort }, startedAt: new Date().toISOString(), env: {} };
    },
    async ready(rec, timeoutMs) {
      const p = pki();
      await waitFor(
        `${apiserverName} on https://127.0.0.1:${rec.ports.https}`,
        async () => {
          const res = await httpsGet(`https://127.0.0.1:${rec.ports.https}/readyz`, p);
          if (res.status !== 200) throw new Error(`/readyz: HTTP ${res.status} ${res.body.slice(0, 300)}`);
          return true;
        },
        { timeoutMs, intervalMs: 500, alive: () => isAlive(rec.pid) },
      );
    },
    async afterReady() {
      await installFluxCrds(kubeconfig);
      await ensureNamespace(kubeconfig, FLUX_NAMESPACE);
    },
  };

  /** A process that talks to this cluster's API server: restarted when the API server moved. */
  const client = (svc: Omit<Service, 'group' | 'stale'>): Service => ({
    ...svc,
    group,
    stale: (rec, state) => rec.ports.apiserver !== state[apiserverName]?.ports.https,
  });
  const apiserverPort = (state: StackState, who: string) => {
    const port = state[apiserverName]?.ports.https;
    if (!port) throw new Error(`${apiserverName} must start before ${who}`);
    return port;
  };

  /** A component serving /healthz over TLS with its own self-signed certificate. */
  const secureComponent = (base: 'kube-controller-manager' | 'kube-scheduler', binaryPath: string, flags: string[]): Service =>
    client({
      name: name(base),
      async start(previous, state) {
        const binary = requireBinary(binaryPath, base);
        const apiserver = apiserverPort(state, name(base));
        const port = await freePort(previous?.https);
        const certDir = join(dir, base);
        mkdirSync(certDir, { recursive: true });
        const args = [
          `--kubeconfig=${kubeconfig}`,
          '--leader-elect=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${port}`,
          `--cert-dir=${certDir}`,
          ...flags,
          '--v=1',
        ];
        const { pid } = startDetached(binary, args, { logFile: log(base), cwd: dir });
        return { pid, binary, ports: { https: port, apiserver }, startedAt: new Date().toISOString(), env: {} };
      },
      async ready(rec, timeoutMs) {
        await waitFor(
          `${name(base)} on https://127.0.0.1:${rec.ports.https}/healthz`,
          async () => {
            const res = await httpsGet(`https://127.0.0.1:${rec.ports.https}/healthz`);
            if (res.status !== 200) throw new Error(`/healthz: HTTP ${res.status} ${res.body.slice(0, 300)}`);
            return true;
          },
          { timeoutMs, intervalMs: 250, alive: () => isAlive(rec.pid) },
        );
      },
    });

  const controllerManager = secureComponent('kube-controller-manager', cachedBinaries.kubeControllerManager, [
    `--controllers=${KCM_CONTROLLERS.join(',')}`,
    // the controllers act with kube-controller-manager's own (admin) credentials
    '--use-service-account-credentials=false',
  ]);
  const scheduler = secureComponent('kube-scheduler', cachedBinaries.kubeScheduler, []);

  const kwok: Service = client({
    name: name('kwok'),
    async start(previous, state) {
      const binary = requireBinary(cachedBinaries.kwok, 'kwok');
      const apiserver = apiserverPort(state, name('kwok'));
      const port = await freePort(previous?.http);
      const args = [
        `--kubeconfig=${kubeconfig}`,
        '--manage-all-nodes=true',
        // with --config, kwok's default lease duration is lost (0): no Lease, the node goes
        // NotReady after ~50 s and node-lifecycle-controller marks every pod not Ready
        '--node-lease-duration-seconds=40',
        `--config=${join(repoRoot, 'scripts', 'stack', 'kwok-stages.yaml')}`,
        `--server-address=127.0.0.1:${port}`,
      ];
      const { pid } = startDetached(binary, args, { logFile: log('kwok'), cwd: dir });
      return { pid, binary, ports: { http: port, apiserver }, startedAt: new Date().toISOString(), env: {} };
    },
    async ready(rec, timeoutMs) {
      await waitFor(`${name('kwok')} at http://127.0.0.1:${rec.ports.http}/healthz`, async () => (await fetchQuick(`http://127.0.0.1:${rec.ports.http}/healthz`)).ok, {
        timeoutMs,
        alive: () => isAlive(rec.pid),
      });
    },
    async afterReady(rec) {
      await ensureKwokNodes(kubeconfig);
      // pods can be scheduled once a node is Ready and its not-ready taint is gone
      await waitFor(
        `a schedulable kwok node in ${context}`,
        async () => {
          const nodes = await clientFor(kubeconfig).core.listNode();
          return nodes.items.some(
            (n) =>
              n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
              !(n.spec?.taints ?? []).some((t) => t.key === 'node.kubernetes.io/not-ready' || t.key === 'node.kubernetes.io/unreachable'),
          );
        },
        { timeoutMs: 60_000, intervalMs: 250, alive: () => isAlive(rec.pid) },
      );
    },
  });

  /** A Flux controller out of cluster: the kubeconfig only through $KUBECONFIG (no flag exists). */
  const fluxController = (base: 'source-controller' | 'kustomize-controller' | 'helm-controller', binaryPath: string): Service =>
    client({
      name: name(base),
      async start(previous, state) {
        const binary = requireBinary(binaryPath, base);
        const apiserver = apiserverPort(state, name(base));
        const metrics = await freePort(previous?.metrics);
        const health = await freePort(previous?.health);
        const ports: Record<string, number> = { metrics, health, apiserver };
        const args = [
          '--watch-all-namespaces=true',
          '--enable-leader-election=false',
          `--metrics-addr=127.0.0.1:${metrics}`,
          `--health-addr=127.0.0.1:${health}`,
          '--log-encoding=console',
        ];
        if (base === 'source-controller') {
          // artifacts (tarballs of fetched revisions) are served over HTTP to the other
          // controllers at the advertised address; out of cluster that must be loopback
          const storage = await freePort(previous?.storage);
          ports.storage = storage;
          const storageDir = join(dir, 'source-controller-storage');
          mkdirSync(storageDir, { recursive: true }); // it exits at start without it
          args.push(`--storage-path=${storageDir}`, `--storage-addr=127.0.0.1:${storage}`, `--storage-adv-addr=127.0.0.1:${storage}`);
        }
        if (base === 'kustomize-controller') args.push('--no-remote-bases=true');
        const { pid } = startDetached(binary, args, {
          logFile: log(base),
          cwd: dir,
          env: { ...process.env, KUBECONFIG: kubeconfig, RUNTIME_NAMESPACE: FLUX_NAMESPACE },
        });
        return { pid, binary, ports, startedAt: new Date().toISOString(), env: {} };
      },
      async ready(rec, timeoutMs) {
        await waitFor(`${name(base)} at http://127.0.0.1:${rec.ports.health}/readyz`, async () => (await fetchQuick(`http://127.0.0.1:${rec.ports.health}/readyz`)).ok, {
          timeoutMs,
          alive: () => isAlive(rec.pid),
        });
      },
    });

  return {
    suffix,
    group,
    context,
    dir,
    kubeconfig,
    apiserverName,
    services: [
      etcd,
      apiserver,
      controllerManager,
      scheduler,
      kwok,
      fluxController('source-controller', cachedBinaries.sourceController),
      fluxController('kustomize-controller', cachedBinaries.kustomizeController),
      fluxController('helm-controller', cachedBinaries.helmController),
    ],
  };
}

function clientFor(kubeconfig: string) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  return { kc, core: kc.makeApiClient(k8s.CoreV1Api) };
}

const ignoreConflict = (err: unknown) => {
  if ((err as { code?: number }).code !== 409) throw err;
};

async function ensureNamespace(kubeconfig: string, name: string): Promise<void> {
  await clientFor(kubeconfig).core.createNamespace({ body: { metadata: { name } } }).catch(ignoreConflict);
}

/** kwok's fake nodes: Node objects annotated for kwok, which then keeps them Ready and runs their pods. */
async function ensureKwokNodes(kubeconfig: string): Promise<void> {
  const { core } = clientFor(kubeconfig);
  for (const node of KWOK_NODES) {
    await core
      .createNode({
        body: {
          metadata: {
            name: node,
            annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
            labels: { 'kubernetes.io/hostname': node, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok' },
          },
          spec: {},
        },
      })
      .catch(ignoreConflict);
  }
}

/** Server-side apply of every cached Flux CRD, then wait until each is Established. */
export async function installFluxCrds(kubeconfig: string): Promise<void> {
  const crdDir = fluxCrdDir();
  if (!existsSync(crdDir)) throw new Error(`Flux CRDs not found in ${crdDir}: run scripts/provision.sh`);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const names: string[] = [];
  for (const file of readdirSync(crdDir).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(crdDir, file), 'utf8'))) {
      const crd = doc.toJS() as k8s.V1CustomResourceDefinition | null;
      if (!crd?.metadata?.name) continue;
      await api.patchCustomResourceDefinition(
        { name: crd.metadata.name, body: crd, fieldManager: 'hybrid-release-stack', force: true },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply),
      );
      names.push(crd.metadata.name);
    }
  }
  for (const name of names) {
    await waitFor(
      `CRD ${name} Established`,
      async () => {
        const crd = await api.readCustomResourceDefinition({ name });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  }
  // discovery lags Established by a moment; wait until the group versions are served
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  await waitFor(
    'Flux APIs served',
    async () => {
      await custom.listClusterCustomObject({ group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations' });
      await custom.listClusterCustomObject({ group: 'helm.toolkit.fluxcd.io', version: 'v2', plural: 'helmreleases' });
      await custom.listClusterCustomObject({ group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'gitrepositories' });
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
}

/**
 * The kubeconfig `.stack/env` points KUBECONFIG at: every running cluster as a context (the main
 * one current), each with its admin client certificate.
 */
export function mergedKubeconfig(clusters: Cluster[], state: StackState): { path: string; env: Record<string, string> } | undefined {
  const running = clusters.filter((c) => state[c.apiserverName] && existsSync(c.kubeconfig));
  if (running.length === 0) return undefined;
  const docs = running.map((c) => new k8s.KubeConfig());
  running.forEach((c, i) => docs[i]!.loadFromFile(c.kubeconfig));
  const merged = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: running.map((c, i) => ({ name: c.context, cluster: { server: docs[i]!.getCurrentCluster()!.server, 'certificate-authority': docs[i]!.getCurrentCluster()!.caFile } })),
    users: running.map((c, i) => ({ name: `${c.context}-admin`, user: { 'client-certificate': docs[i]!.getCurrentUser()!.certFile, 'client-key': docs[i]!.getCurrentUser()!.keyFile } })),
    contexts: running.map((c) => ({ name: c.context, context: { cluster: c.context, user: `${c.context}-admin`, namespace: 'default' } })),
    'current-context': running[0]!.context,
  };
  const path = join(stackDir, 'kubeconfig');
  writeFileSync(path, JSON.stringify(merged, null, 2) + '\n');
  const env: Record<string, string> = { KUBECONFIG: path };
  for (const c of running) if (c.suffix === '-b') env.HR_KUBE_CONTEXT_B = c.context;
  return { path, env };
}

export type { ServiceRecord };
