/**
 * The CLI as CI and people use it, end to end: `start --wait` in one process, `approve` / `abort`
 * from another, against the real Temporal dev server, goiardi and kube-apiserver, with a worker
 * on its own task queue. The final state of Chef and Kubernetes is read back from the servers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { closeChefPools } from '../../activities/chef/client.ts';
import { adminClient, chefServerEnv, createEnvironment, uploadCookbook } from '../support/chef-fixtures.ts';
import { uniqueName } from '../support/env.ts';
import { adminKubeConfig, createCanaryIngress, createKustomization, createNamespace } from '../support/seed-kube.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';

const bin = fileURLToPath(new URL('../../client/bin.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'hr-cli-'));
const chef = adminClient();
const kc = adminKubeConfig();
const ns = uniqueName('cli');
const cookbook = uniqueName('gw').replace(/-/g, '_');
let tw: TestWorker;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): { done: Promise<Run> } {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, HR_TASK_QUEUE: tw.taskQueue, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return { done: new Promise((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))) };
}

// the real Flux controllers answer in seconds, more on a busy 2-core machine
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

before(async () => {
  await createNamespace(ns, kc);
  for (const v of ['1.0.0', '1.1.0']) await uploadCookbook(chef, cookbook, v);
  tw = await startTestWorker();
});
after(async () => {
  await tw?.stop();
  await closeChefPools();
});

async function seedApp(): Promise<{ app: string; spec: string }> {
  const app = uniqueName('cli-app');
  await createEnvironment(chef, app, { [cookbook]: '= 1.0.0' });
  await createKustomization({ namespace: ns, name: app, images: [{ name: 'ghcr.io/acme/web', newTag: '1.0.0' }] }, kc);
  await createCanaryIngress({ namespace: ns, name: `${app}-canary`, host: 'x.example', serviceName: app }, kc);
  const c = chefServerEnv();
  const spec = join(dir, `${app}.yaml`);
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
    - { id: web, kind: Kustomization, namespace: ${ns}, name: ${app}, images: [{ name: ghcr.io/acme/web, newTag: "1.1.0" }] }
  canary: { ingress: { namespace: ${ns}, name: ${app}-canary } }
  gates:
    ready: { fluxReady: { target: web }, timeout: 3m, interval: 1s }
  steps:
    - chef: vms
    - flux: web
    - gate: ready
    - setWeight: 30
    - pause: {}
    - setWeight: 100
  approvals: { approvers: [alice] }
`,
  );
  return { app, spec };
}

const pinned = async (app: string) => (await chef.get<{ cookbook_versions: Record<string, string> }>(`environments/${app}`, { object: app })).cookbook_versions[cookbook];
const image = async (app: string) =>
  ((await kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({ group: 'kustomize.toolkit.fluxcd.io', version: 'v1', namespace: ns, plural: 'kustomizations', name: app })) as { spec: { images: { newTag: string }[] } }).spec.images[0]!.newTag;
const weight = async (app: string) => (await kc.makeApiClient(k8s.NetworkingV1Api).readNamespacedIngress({ namespace: ns, name: `${app}-canary` })).metadata?.annotations?.['nginx.ingress.kubernetes.io/canary-weight'];
const awaiting = (app: string) => async () => {
  const s = await cli(['status', app, '-o', 'json']).done;
  return s.code === 0 && JSON.parse(s.stdout).phase === 'AwaitingApproval';
};

describe('hybrid-release CLI', () => {
  it('start --wait, then approve from another process: exit 0, both worlds released, step summary written', async () => {
    const { app, spec } = await seedApp();
    const summary = join(dir, `${app}-summary.md`);
    const started = cli(['start', '-f', spec, '--wait', '--as', 'ci-bot'], { GITHUB_STEP_SUMMARY: summary });
    await until(awaiting(app), 'the approval pause');
    const stranger = await cli(['approve', app, '--as', 'mallory']).done;
    assert.equal(stranger.code, 2, stranger.stderr);
    assert.match(stranger.stderr, /mallory is not an approver/);
    const approve = await cli(['approve', app, '--as', 'alice', '--reason', 'canary is healthy']).done;
    assert.equal(approve.code, 0, approve.stderr);
    assert.match(approve.stdout, /approved by alice/);
    const run = await started.done;
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /started release-/);
    assert.match(run.stdout, /hybrid-release approve /);
    assert.match(run.stdout, /step 4\/6 done: canary 30%/);
    assert.match(run.stdout, /phase Succeeded|: Succeeded/);
    assert.equal(await pinned(app), '= 1.1.0');
    assert.equal(await image(app), '1.1.0');
    assert.equal(await weight(app), '100');
    assert.match(readFileSync(summary, 'utf8'), /### ✅ .*Succeeded/);
    const status = JSON.parse((await cli(['status', app, '-o', 'json']).done).stdout);
    assert.deepEqual(status.decisions.map((d: { by: string; accepted: boolean }) => [d.by, d.accepted]), [['alice', true]]);
    assert.equal(status.startedBy, 'ci-bot');
  });

  it('start --wait, then abort: exit 1 and every change restored', async () => {
    const { app, spec } = await seedApp();
    const started = cli(['start', '-f', spec, '--wait', '-o', 'json']);
    await until(awaiting(app), 'the approval pause');
    assert.equal(await weight(app), '30');
    const abort = await cli(['abort', app, '--as', 'alice', '--reason', 'error budget']).done;
    assert.equal(abort.code, 0, abort.stderr);
    const run = await started.done;
    assert.equal(run.code, 1, run.stderr);
    const final = JSON.parse(run.stdout);
    assert.equal(final.phase, 'RolledBack');
    assert.equal(final.error, 'aborted by alice: error budget');
    assert.equal(await pinned(app), '= 1.0.0');
    assert.equal(await image(app), '1.0.0');
    assert.equal(await weight(app), '0');
    const again = await cli(['abort', app, '--as', 'alice']).done;
    assert.equal(again.code, 2, 'a command to an ended release is refused');
  });

  it('an invalid spec exits 2 with every problem and starts nothing', async () => {
    const { app, spec } = await seedApp();
    writeFileSync(spec, readFileSync(spec, 'utf8').replace('"= 1.1.0"', '">=1.1"').replace('newTag: "1.1.0"', 'newtag: "1.1.0"').replace(`name: ${app}-1-1-0`, 'name: Not_Valid'));
    const run = await cli(['start', '-f', spec, '--wait']).done;
    assert.equal(run.code, 2);
    assert.match(run.stderr, /3 problems|4 problems/);
    assert.match(run.stderr, /metadata\.name/);
    assert.match(run.stderr, /spec\.chef\[0\]\.cookbooks\.\w+: ">=1.1" is not a Chef version constraint \(write ">= 1.1"/);
    assert.match(run.stderr, /spec\.flux\[0\]\.images\[0\]\.newtag: unknown field \(did you mean "newTag"\?\)/);
    const list = JSON.parse((await cli(['list', '-o', 'json', '--limit', '200']).done).stdout) as { app: string }[];
    assert.ok(!list.some((r) => r.app === app), 'no release was started');
    assert.equal(await pinned(app), '= 1.0.0');
  });

  it('exit 4 when Temporal cannot be reached', async () => {
    const run = await cli(['status', 'anything'], { TEMPORAL_ADDRESS: '127.0.0.1:1' }).done;
    assert.equal(run.code, 4);
    assert.match(run.stderr, /cannot reach Temporal at 127\.0\.0\.1:1/);
  });

  it('exit 3 when --timeout runs out before the release ends', async () => {
    const { app, spec } = await seedApp();
    const run = await cli(['start', '-f', spec, '--wait', '--timeout', '3s']).done;
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.match(run.stdout, /stopped waiting/);
    await cli(['abort', app, '--as', 'alice']).done;
  });
});
