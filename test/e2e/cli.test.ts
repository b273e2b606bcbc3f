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
import { adminClient, chefServerEnv, createEnvironment, deleteEnvironment, uploadCookbook } from '../support/chef-fixtures.ts';
import { uniqueName } from '../support/env.ts';
import { adminKubeConfig, createCanaryIngress, createKustomization, createNamespace } from '../support/seed-kube.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';
import { waitFor, waitForPhase } from '../support/wait.ts';

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

function cli(args: string[], env: Record<string, string> = {}): { done: Promise<Run>; output: () => string } {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, HR_TASK_QUEUE: tw.taskQueue, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return { done: new Promise((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))), output: () => stdout + stderr };
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

const STEPS = `
    - chef: vms
    - flux: web
    - gate: ready
    - setWeight: 30
    - pause: {}
    - setWeight: 100`;

/** An app in both worlds and its release spec; `steps` and `extra` (more spec fields) vary the plan. */
async function seedApp(options: { steps?: string; extra?: string; fluxName?: (app: string) => string } = {}): Promise<{ app: string; spec: string }> {
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
    - { id: web, kind: Kustomization, namespace: ${ns}, name: ${options.fluxName?.(app) ?? app}, images: [{ name: ghcr.io/acme/web, newTag: "1.1.0" }] }
  canary: { ingress: { namespace: ${ns}, name: ${app}-canary } }
  gates:
    ready: { fluxReady: { target: web }, timeout: 3m, interval: 1s }
  steps:${options.steps ?? STEPS}
  approvals: { approvers: [alice] }
${options.extra ?? ''}`,
  );
  return { app, spec };
}

const pinned = async (app: string) => (await chef.get<{ cookbook_versions: Record<string, string> }>(`environments/${app}`, { object: app })).cookbook_versions[cookbook];
const image = async (app: string) =>
  ((await kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({ group: 'kustomize.toolkit.fluxcd.io', version: 'v1', namespace: ns, plural: 'kustomizations', name: app })) as { spec: { images: { newTag: string }[] } }).spec.images[0]!.newTag;
const weight = async (app: string) => (await kc.makeApiClient(k8s.NetworkingV1Api).readNamespacedIngress({ namespace: ns, name: `${app}-canary` })).metadata?.annotations?.['nginx.ingress.kubernetes.io/canary-weight'];
const handleOf = (app: string) => tw.client.workflow.getHandle(`release-${app}`);
// the approval pause, seen through the release's status query (a deadline of minutes, only a backstop)
const awaiting = (app: string) => waitForPhase(handleOf(app), 'AwaitingApproval');
/** The approval pause of a release a CLI process started; a start that exits first fails at once with its output. */
async function paused(app: string, started: { done: Promise<Run> }): Promise<void> {
  let waiting = true;
  const exited = started.done.then((r) => {
    if (waiting) assert.fail(`the CLI exited ${r.code} before the approval pause: ${r.stdout}${r.stderr}`);
  });
  try {
    await Promise.race([awaiting(app), exited]);
  } finally {
    waiting = false;
  }
}

describe('hybrid-release CLI', () => {
  it('start --wait, then approve from another process: exit 0, both worlds released, step summary written', async () => {
    const { app, spec } = await seedApp();
    const summary = join(dir, `${app}-summary.md`);
    const started = cli(['start', '-f', spec, '--wait', '--as', 'ci-bot'], { GITHUB_STEP_SUMMARY: summary });
    await paused(app, started);
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
    await paused(app, started);
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

  it('an unknown app, id or namespace: one line naming what was not found, exit 2', async () => {
    const app = uniqueName('no-such-app');
    for (const args of [['status', app], ['watch', app], ['approve', app, '--as', 'alice'], ['status', `release-${app}`]]) {
      const run = await cli(args).done;
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stdout}${run.stderr}`);
      assert.equal(run.stderr, `no release of app ${app} (workflow id release-${app}) in namespace ${tw.namespace}\n`, `${args[0]}: one line, no stack`);
    }
    const ns = uniqueName('no-such-ns');
    const { spec } = await seedApp();
    for (const args of [['status', app], ['start', '-f', spec]]) {
      const run = await cli(args, { TEMPORAL_NAMESPACE: ns }).done;
      assert.equal(run.code, 2, `${args[0]}: ${run.stdout}${run.stderr}`);
      assert.match(run.stderr, new RegExp(`^namespace ${ns} does not exist on this Temporal server: create it \\(temporal operator namespace create --namespace ${ns}\\) or set TEMPORAL_NAMESPACE\n$`));
    }
  });

  it('a namespace without the search attributes: start says how to register them, exit 2, nothing started', async () => {
    const ns = uniqueName('hr-bare');
    await tw.client.workflowService.registerNamespace({ namespace: ns, workflowExecutionRetentionPeriod: { seconds: 86_400 as never } });
    const { spec } = await seedApp();
    // a new namespace takes a moment to be known to the frontend: until then the answer is "does not exist"
    const run = await waitFor('start in the new namespace to get past "does not exist"', () => cli(['start', '-f', spec], { TEMPORAL_NAMESPACE: ns }).done, (r) => !/does not exist/.test(r.stderr), {
      intervalMs: 2_000,
      show: (r) => `exit ${r.code}: ${r.stderr}`,
    });
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, new RegExp(`^search attribute Hr\\w+ is not registered in namespace ${ns} \\(.*\\): register them once with\n  for a in HrRelease HrApp HrPhase HrImageTag HrCookbookConstraint; do temporal operator search-attribute create --namespace ${ns} --name "\\$a" --type Keyword; done\n$`));
  });

  it('preflight refuses the release: exit 5, nothing changed', async () => {
    const { app, spec } = await seedApp({ fluxName: (a) => `${a}-missing` });
    const run = await cli(['start', '-f', spec, '--wait']).done;
    assert.equal(run.code, 5, run.stdout + run.stderr);
    assert.match(run.stdout, /: Failed — preflight failed: .*missing.* \(nothing was changed\)/);
    assert.match(run.stdout, /^nothing was changed$/m);
    assert.equal(await pinned(app), '= 1.0.0');
    assert.equal(await image(app), '1.0.0');
  });

  it('terminated from outside during --wait: exit 8 at once, saying who, why and what stays changed', async () => {
    const { app, spec } = await seedApp();
    const summary = join(dir, `${app}-summary.md`);
    const started = cli(['start', '-f', spec, '--wait'], { GITHUB_STEP_SUMMARY: summary });
    await paused(app, started);
    await handleOf(app).terminate('stuck | <b>see</b> [ops](http://x)');
    const run = await started.done;
    assert.equal(run.code, 8, run.stdout + run.stderr);
    assert.match(run.stdout, /the release's workflow was terminated by [^:]+: stuck \| <b>see<\/b> \[ops\]\(http:\/\/x\)\. Nothing was undone; changes it had made: .*1\.1\.0.*\(applied\)/);
    assert.equal(await pinned(app), '= 1.1.0', 'a terminated release undoes nothing: that is why it has its own code');
    const md = readFileSync(summary, 'utf8');
    assert.match(md, /^### ⚠️ /m);
    assert.ok(!md.includes('<b>') && !md.includes('[ops](http'), `the terminate reason is escaped in the summary: ${md}`);
  });

  it('an undo that keeps failing: --wait ends in RollbackFailed with exit 6 and what to do; watch then sees the rollback through', async () => {
    const { app, spec } = await seedApp({ steps: '\n    - chef: vms\n    - flux: web\n    - gate: ready\n    - pause: {}', extra: '  rollback: { maxAttempts: 2 }\n' });
    const started = cli(['start', '-f', spec, '--wait']);
    await paused(app, started);
    await deleteEnvironment(chef, app); // someone deletes the Chef environment mid-release: its undo cannot work
    assert.equal((await cli(['abort', app, '--as', 'alice', '--reason', 'checkout errors']).done).code, 0);
    const run = await started.done;
    assert.equal(run.code, 6, run.stdout + run.stderr);
    assert.match(run.stdout, /: RollbackFailed/);
    assert.match(run.stdout, new RegExp(`a person must act: .*hybrid-release retry ${app}.*hybrid-release skip ${app}`));
    await createEnvironment(chef, app, { [cookbook]: '= 1.1.0' }); // the environment is back
    const watching = cli(['watch', app]);
    assert.equal((await cli(['retry', app, '--as', 'alice', '--reason', 'environment recreated']).done).code, 0);
    // watch may start before the retry (it ends at once, 6) or after it (it follows the rollback to its end, 1)
    const watched = await watching.done;
    assert.ok([1, 6].includes(watched.code), watched.stdout + watched.stderr);
    const after = await cli(['watch', app]).done;
    assert.equal(after.code, 1, after.stdout + after.stderr);
    assert.match(after.stdout, /: RolledBack — aborted by alice: checkout errors/);
    assert.equal(await pinned(app), '= 1.0.0');
  });

  it('the worker goes away during --wait for longer than a status query waits, and comes back: the CLI keeps following and exits 0', async () => {
    // an approval pause that promotes itself: its timer fires while no worker is there
    const { app, spec } = await seedApp({ steps: '\n    - chef: vms\n    - flux: web\n    - gate: ready\n    - pause: { deadline: 45s, onTimeout: promote }' });
    const started = cli(['start', '-f', spec, '--wait']);
    await paused(app, started);
    await tw.stop();
    try {
      // with no worker, a command is refused after a bounded wait, saying the release is alive
      const approve = await cli(['approve', app, '--as', 'alice', '--timeout', '5s']).done;
      assert.equal(approve.code, 4, approve.stdout + approve.stderr);
      assert.match(approve.stderr, /is alive \(running, phase AwaitingApproval\) but no worker is serving it/);
      // the pause's timer fires; the CLI asks for the status and gets no answer (10 s), says so, and goes on
      await waitFor('the CLI noting that the release does not answer', async () => started.output(), (o) => /no answer to the status query/.test(o), { intervalMs: 500 });
    } finally {
      tw = await startTestWorker({ taskQueue: tw.taskQueue });
    }
    const run = await started.done;
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /the release answers its status query again/);
    assert.match(run.stdout, /: Succeeded/);
    assert.equal(await pinned(app), '= 1.1.0');
  });
});
