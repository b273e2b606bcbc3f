import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { cachedBinaries, fluxCrdDir, stackDir, versions } from '../lib/paths.ts';
import { adminKubeconfig, ensureKubePki, type KubePki } from '../lib/pki.ts';
import { freePort } from '../lib/ports.ts';
import { isAlive, startDetached } from '../lib/proc.ts';
import { fetchQuick, waitFor } from '../lib/wait.ts';
import type { Service } from './service.ts';

const dir = join(stackDir, 'kube');
/** the audience minted ServiceAccount tokens carry; the apiserver accepts exactly this one */
export const serviceAccountIssuer = 'https://kubernetes.default.svc.cluster.local';

function requireBinary(path: string, what: string): string {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}: run scripts/provision.sh (builds it into the cache)`);
  return path;
}

export const etcd: Service = {
  name: 'etcd',
  group: 'kube',
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
    const { pid } = startDetached(binary, args, { logFile: join(dir, 'etcd.log'), cwd: dir });
    return { pid, binary, ports: { client, peer }, env: {}, startedAt: new Date().toISOString() };
  },
  async ready(rec, timeoutMs) {
    await waitFor(
      `etcd on 127.0.0.1:${rec.ports.client}`,
      async () => {
        const body = (await (await fetchQuick(`http://127.0.0.1:${rec.ports.client}/health`)).json()) as { health?: string };
        return body.health === 'true';
      },
      { timeoutMs, alive: () => isAlive(rec.pid) },
    );
  },
};

function httpsGet(url: string, pki: KubePki): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca: readFileSync(pki.caCert),
        cert: readFileSync(pki.adminCert),
        key: readFileSync(pki.adminKey),
        timeout: 3000,
      },
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

export const kubeApiserver: Service = {
  name: 'kube-apiserver',
  group: 'kube',
  stale(rec, state) {
    // it was started against an etcd that has since moved
    return rec.ports.etcd !== state.etcd?.ports.client;
  },
  async start(previous, state) {
    const binary = requireBinary(cachedBinaries.kubeApiserver, 'kube-apiserver');
    const etcdPort = state.etcd?.ports.client;
    if (!etcdPort) throw new Error('etcd must start before kube-apiserver');
    const pki = ensureKubePki(join(dir, 'pki'));
    const port = await freePort(previous?.https);
    const args = [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, 'pki')}`,
      `--tls-cert-file=${pki.serverCert}`,
      `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--authorization-mode=Node,RBAC',
      // TokenRequest needs all three; tokens are minted for least-privilege tests
      `--service-account-issuer=${serviceAccountIssuer}`,
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      `--api-audiences=${serviceAccountIssuer}`,
      '--service-cluster-ip-range=10.96.0.0/24',
      '--profiling=false',
      '--v=1',
    ];
    const { pid } = startDetached(binary, args, { logFile: join(dir, 'kube-apiserver.log'), cwd: dir });
    const kubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(kubeconfig, adminKubeconfig(`https://127.0.0.1:${port}`, pki));
    return {
      pid,
      binary,
      ports: { https: port, etcd: etcdPort },
      startedAt: new Date().toISOString(),
      env: { KUBECONFIG: kubeconfig },
    };
  },
  async ready(rec, timeoutMs) {
    const pki = ensureKubePki(join(dir, 'pki'));
    await waitFor(
      `kube-apiserver on https://127.0.0.1:${rec.ports.https}`,
      async () => {
        const res = await httpsGet(`https://127.0.0.1:${rec.ports.https}/readyz`, pki);
        if (res.status !== 200) throw new Error(`/readyz: HTTP ${res.status} ${res.body.slice(0, 300)}`);
        return true;
      },
      { timeoutMs, intervalMs: 500, alive: () => isAlive(rec.pid) },
    );
  },
  async afterReady(rec) {
    await installFluxCrds(rec.env.KUBECONFIG!);
  },
};

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
  const kust = kc.makeApiClient(k8s.CustomObjectsApi);
  await waitFor(
    'Flux APIs served',
    async () => {
      await kust.listClusterCustomObject({ group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations' });
      await kust.listClusterCustomObject({ group: 'helm.toolkit.fluxcd.io', version: 'v2', plural: 'helmreleases' });
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
}
