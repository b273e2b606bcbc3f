/**
 * Where the stack keeps its state and where provisioning left the binaries. Versions live here so
 * provision.sh (which reads them via `node scripts/lib/paths.ts versions`) and stack.ts never drift.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const versions = {
  temporal: '1.5.1',
  etcd: '3.6.16',
  kube: '1.34.4',
  // Flux 2.7 line; only versions the Go module proxy serves are usable here.
  kustomizeController: '1.7.3',
  // 1.4.0 and 1.4.3 are served by the proxy (1.4.1, 1.4.2 are not), with identical CRDs
  helmController: '1.4.3',
  sourceController: '1.7.3',
  kwok: '0.7.0',
} as const;

export const repoRoot = resolve(import.meta.dirname, '..', '..');
// overridable so a second, independent stack can run beside the usual one (e.g. to try `down`)
export const stackDir = process.env.HYBRID_RELEASE_STACK_DIR
  ? resolve(process.env.HYBRID_RELEASE_STACK_DIR)
  : join(repoRoot, '.stack');
export const cacheDir = process.env.HYBRID_RELEASE_CACHE || join(homedir(), '.cache', 'hybrid-release');

export function fluxCrdDir(): string {
  const v = versions;
  return join(
    cacheDir,
    'flux-crds',
    `kustomize-v${v.kustomizeController}_helm-v${v.helmController}_source-v${v.sourceController}`,
  );
}

export const cachedBinaries = {
  temporal: join(cacheDir, 'temporal', `v${versions.temporal}`, 'temporal'),
  etcd: join(cacheDir, 'etcd', `v${versions.etcd}`, 'etcd'),
  kubeApiserver: join(cacheDir, 'kube', `v${versions.kube}`, 'kube-apiserver'),
  kubeControllerManager: join(cacheDir, 'kube', `v${versions.kube}`, 'kube-controller-manager'),
  kubeScheduler: join(cacheDir, 'kube', `v${versions.kube}`, 'kube-scheduler'),
  kwok: join(cacheDir, 'kwok', `v${versions.kwok}`, 'kwok'),
  sourceController: join(cacheDir, 'source-controller', `v${versions.sourceController}`, 'source-controller'),
  kustomizeController: join(cacheDir, 'kustomize-controller', `v${versions.kustomizeController}`, 'kustomize-controller'),
  helmController: join(cacheDir, 'helm-controller', `v${versions.helmController}`, 'helm-controller'),
};

if (import.meta.main && process.argv[2] === 'versions') {
  // shell-friendly KEY=VALUE lines for provision.sh
  for (const [k, val] of Object.entries(versions)) console.log(`${k}=${val}`);
  console.log(`fluxCrdDir=${fluxCrdDir()}`);
}
