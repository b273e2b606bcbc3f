/**
 * One release across both clusters of the stack and a Chef environment, started with the CLI:
 * Chef is pinned, the app is released to cluster A (it rolls out and passes its gates), then to
 * cluster B, where the tag's pods never become Ready (kwok's -broken fault). The release rolls
 * back all three targets, newest first, and says RolledBack only once each cluster's Flux applied
 * the restored spec and its Deployment rolled back. Every controller in both clusters is real; the
 * worker acts with its own ServiceAccount in each cluster (two kubeconfig contexts).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { closeChefPools } from '../../activities/chef/client.ts';
import type { ReleaseStatus } from '../../workflows/messages.ts';
import { adminClient, chefServerEnv, createEnvironment, uploadCookbook } from '../support/chef-fixtures.ts';
import { requireEnv, uniqueName } from '../support/env.ts';
import { useWorkerIdentityInBothClusters } from '../support/kube-worker.ts';
import { adminKubeConfig, createKustomization, createNamespace, fluxGroups, getFluxObject } from '../support/seed-kube.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';

const bin = fileURLToPath(new URL('../../client/bin.ts', import.meta.url));
const chef = adminClient();
const contextB = requireEnv('HR_KUBE_CONTEXT_B');
const clusterA = adminKubeConfig();
const clusterB = adminKubeConfig(contextB);
const ns = uniqueName('two-clusters');
const cookbook = uniqueName('gw').replace(/-/g, '_');
const WEB = 'ghcr.io/acme/web';
let tw: TestWorker;

before(async () => {
  for (const kc of [clusterA, clusterB]) await createNamespace(ns, kc);
  for (const v of ['1.0.0', '1.1.0']) await uploadCookbook(chef, cookbook, v);
  await useWorkerIdentityInBothClusters(contextB, [ns]);
  tw = await startTestWorker();
});
after(async () => {
  await tw?.stop();
  await closeChefPools();
  for (const kc of [clusterA, clusterB]) await kc.makeApiClient(k8s.CoreV1Api).deleteNamespace({ name: ns }).catch(() => undefined);
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, HR_TASK_QUEUE: tw.taskQueue, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

/** What runs in a cluster: the Deployment's pod template image and its ready replicas. */
async function running(kc: k8s.KubeConfig, name: string) {
  const d = await kc.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({ namespace: ns, name });
  return { image: d.spec?.template.spec?.containers[0]?.image, ready: d.status?.readyReplicas ?? 0 };
}

describe('a release to two clusters and Chef', () => {
  it('cluster B never becomes Ready: Chef, cluster A and cluster B are all rolled back, the old pods run again in both', async () => {
    const app = uniqueName('shop');
    await createEnvironment(chef, app, { [cookbook]: '= 1.0.0' });
    for (const kc of [clusterA, clusterB]) await createKustomization({ namespace: ns, name: app, images: [{ name: WEB, newTag: '1.0.0' }] }, kc);
    const c = chefServerEnv();
    const spec = join(mkdtempSync(join(tmpdir(), 'hr-two-')), 'release.yaml');
    writeFileSync(
      spec,
      `apiVersion: hybrid-release.dev/v1alpha1
kind: HybridRelease
metadata: { name: ${app}-1-1-0 }
spec:
  app: ${app}
  version: "1.1.0"
  chef:
    - { id: vms, serverUrl: "${c.serverUrl}", environment: ${app}, cookbooks: { ${cookbook}: "= 1.1.0" }, credentials: { keyFile: "${c.keyFile}", clientName: ${c.clientName} } }
  flux:
    - { id: web-a, kind: Kustomization, namespace: ${ns}, name: ${app}, context: cluster-a, images: [{ name: ${WEB}, newTag: "1.1.0" }] }
    - { id: web-b, kind: Kustomization, namespace: ${ns}, name: ${app}, context: cluster-b, images: [{ name: ${WEB}, newTag: "1.1.0-broken" }] }
  gates:
    a-ready: { fluxReady: { target: web-a }, timeout: 3m, interval: 1s }
    a-rollout: { rollout: { namespace: ${ns}, name: ${app}, context: cluster-a }, timeout: 3m, interval: 1s }
    b-ready: { fluxReady: { target: web-b }, timeout: 3m, interval: 1s }
    b-rollout: { rollout: { namespace: ${ns}, name: ${app}, context: cluster-b }, timeout: 3m, interval: 1s }
  steps:
    - chef: vms
    - flux: web-a
    - gate: [a-ready, a-rollout]
    - flux: web-b
    - gate: [b-ready, b-rollout]
`,
    );
    const run = await cli(['start', '-f', spec, '--wait', '-o', 'json', '--as', 'ci-bot']);
    const status = JSON.parse(run.stdout) as ReleaseStatus;
    assert.equal(status.phase, 'RolledBack', `${run.stdout}\n${run.stderr}`);
    assert.equal(run.code, 1, 'exit 1: rolled back');
    // the failure is cluster B's, in Flux's or the Deployment's own words
    assert.match(status.error!, /HealthCheckFailed: .*stalled resources|exceeded its progress deadline/);
    assert.match(status.error!, /b-ready|b-rollout/);
    // cluster A passed before; every change restored, newest first
    assert.deepEqual(status.gates.filter((g) => !g.gate.startsWith('rollback/')).map((g) => [g.gate, g.ok]).sort(), [['a-ready', true], ['a-rollout', true], [status.gates.find((g) => g.gate.startsWith('b-'))!.gate, false]].sort());
    assert.deepEqual(status.changes.map((ch) => [ch.system, ch.target, ch.state]), [['chef', 'vms', 'restored'], ['flux', 'web-a', 'restored'], ['flux', 'web-b', 'restored']]);
    // the rollback waited in both clusters: Flux applied the restored spec, the rollout came back
    assert.deepEqual(status.gates.filter((g) => g.gate.startsWith('rollback/')).map((g) => [g.gate, g.ok]), [['rollback/b-ready', true], ['rollback/b-rollout', true], ['rollback/a-ready', true], ['rollback/a-rollout', true]]);

    // read back from the servers
    const env = await chef.get<{ cookbook_versions: Record<string, string> }>(`environments/${app}`, { object: app });
    assert.equal(env.cookbook_versions[cookbook], '= 1.0.0');
    for (const kc of [clusterA, clusterB]) {
      const ks = await getFluxObject(fluxGroups.kustomization, ns, app, kc);
      assert.deepEqual(ks.spec.images, [{ name: WEB, newTag: '1.0.0' }]);
      assert.deepEqual(await running(kc, app), { image: `${WEB}:1.0.0`, ready: 2 });
    }
  });
});
