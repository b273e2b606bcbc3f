/**
 * A release spec is untrusted input. Each attack here is started both ways a spec reaches the
 * worker — through the CLI (`start -f … --wait`) and through a raw client.workflow.start('releaseV2')
 * with a hand-made input (what `temporal workflow start` and the UI's Start Workflow send, with a
 * plan of its own that the worker ignores) — against the real Temporal, goiardi and
 * kube-apiserver, with a worker running a strict policy. Each ends refused or `Failed` with
 * "nothing was changed": the servers show nothing changed, the test's listeners receive nothing,
 * and no byte of a foreign response appears in the status or the history.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { closeChefPools } from '../../activities/chef/client.ts';
import { signDecision } from '../../client/sign.ts';
import { parsePublicKey } from '../../policy/sshsig.ts';
import { EXIT } from '../../client/exit-codes.ts';
import { type ReleaseStatus, SIGNALS, statusQuery, UPDATES } from '../../workflows/messages.ts';
import { adminClient, chefServerEnv, createEnvironment, uploadCookbook } from '../support/chef-fixtures.ts';
import { uniqueName } from '../support/env.ts';
import { approversWith, makePolicy, newKeyPair } from '../support/policy.ts';
import { adminKubeConfig, createHelmRelease, createKustomization, createNamespace } from '../support/seed-kube.ts';
import { cachedBinaries } from '../../scripts/lib/paths.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';

const bin = fileURLToPath(new URL('../../client/bin.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'hr-security-'));
const chef = adminClient();
const chefEnv = chefServerEnv();
const kc = adminKubeConfig();
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const suffix = Math.random().toString(36).slice(2, 7);
const nsA = `sec-a-${suffix}`; // the apps' namespace
const nsB = `sec-b-${suffix}`; // another team's
const cookbook = `sec_gw_${suffix}`;
const alice = newKeyPair('alice');
const mallory = newKeyPair('mallory');
// a Chef key another team uses: valid on the server (a copy of the stack's), but not this app's to use
const otherTeamKey = join(dir, 'payments-deployer.pem');
/** what a foreign endpoint answers; it must never reach the status or the history */
const MARKER = `foreign-${suffix}-do-not-record`;
const TEMPORAL_API_KEY = `temporal-key-${suffix}`;

interface Listener {
  url: string;
  port: number;
  hits: string[];
  server: Server;
}
async function listen(handler: (path: string) => { status: number; headers?: Record<string, string>; body?: string }): Promise<Listener> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url} ${JSON.stringify(req.headers)}`);
    const r = handler(req.url ?? '/');
    res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers }).end(r.body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, hits, server };
}

let tw: TestWorker;
let probe: Listener; // a listener the policy does not list
let allowed: Listener; // the one it does
let elsewhere: Listener; // where redirects and DNS would smuggle requests

before(async () => {
  copyFileSync(chefEnv.keyFile, otherTeamKey);
  probe = await listen(() => ({ status: 200, body: JSON.stringify({ version: MARKER }) }));
  elsewhere = await listen(() => ({ status: 200, body: JSON.stringify({ version: MARKER, ok: true }) }));
  allowed = await listen((path) =>
    path.startsWith('/redirect') ? { status: 302, headers: { location: `http://localhost:${elsewhere.port}/stolen` } } : { status: 200, body: JSON.stringify({ version: MARKER, secret: MARKER }) },
  );
  await createNamespace(nsA, kc);
  await createNamespace(nsB, kc);
  await uploadCookbook(chef, cookbook, '1.0.0');
  await uploadCookbook(chef, cookbook, '2.0.0');
  // the worker's own credentials are within its reach: the policy keeps them from any spec
  process.env.TEMPORAL_API_KEY = TEMPORAL_API_KEY;
  tw = await startTestWorker({
    policy: makePolicy(
      {
        apiVersion: 'hybrid-release.dev/v1alpha1',
        kind: 'ReleasePolicy',
        approvers: { ...approversWith(alice, ['alice']), ...approversWith(newKeyPair('bob'), ['bob']) },
        apps: [
          {
            app: `sec-${suffix}-*`,
            approvers: ['alice'],
            kubernetes: [{ namespaces: [nsA] }],
            chef: [{ server: chefEnv.serverUrl, environments: [`sec-${suffix}-*`], cookbooks: [cookbook], credentials: [{ keyFile: chefEnv.keyFile, clientName: chefEnv.clientName }] }],
            hosts: [`127.0.0.1:${allowed.port}`, 'localhost'],
            references: [{ env: 'SEC_PROBE_TOKEN' }],
          },
        ],
      },
      'the strict policy of test/e2e/security.test.ts',
    ),
  });
});
after(async () => {
  delete process.env.TEMPORAL_API_KEY;
  await tw?.stop();
  for (const l of [probe, allowed, elsewhere]) l?.server.close();
  await closeChefPools();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
function cli(args: string[]): { done: Promise<Run> } {
  const env: NodeJS.ProcessEnv = { ...process.env, HR_TASK_QUEUE: tw.taskQueue, NO_COLOR: '1' };
  delete env.TEMPORAL_API_KEY; // the CLI talks to the dev server without one
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return { done: new Promise((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))) };
}

/** A spec document for app `app`: a Kustomization in nsA and a Chef environment, plus `body`. */
async function seedApp(name: string) {
  const app = `sec-${suffix}-${name}-${Math.random().toString(36).slice(2, 5)}`;
  await createEnvironment(chef, app, { [cookbook]: '= 1.0.0' });
  await createKustomization({ namespace: nsA, name: app, images: [{ name: 'ghcr.io/acme/web', newTag: '1.0.0' }] }, kc);
  return app;
}
function specFor(app: string, body: Record<string, unknown>, overrides: { chef?: unknown; flux?: unknown } = {}) {
  return {
    apiVersion: 'hybrid-release.dev/v1alpha1',
    kind: 'HybridRelease',
    metadata: { name: `${app}-2` },
    spec: {
      app,
      chef: overrides.chef ?? [{ id: 'vms', serverUrl: chefEnv.serverUrl, environment: app, cookbooks: { [cookbook]: '= 2.0.0' }, credentials: { keyFile: chefEnv.keyFile, clientName: chefEnv.clientName } }],
      flux: overrides.flux ?? [{ id: 'web', kind: 'Kustomization', namespace: nsA, name: app, images: [{ name: 'ghcr.io/acme/web', newTag: '2.0.0' }] }],
      ...body,
    },
  };
}

const pins = async (env: string) => (await chef.get<{ cookbook_versions: Record<string, string> }>(`environments/${env}`, { object: env })).cookbook_versions;
const flux = (kind: 'kustomizations' | 'helmreleases', namespace: string, name: string) =>
  custom.getNamespacedCustomObject({ group: kind === 'kustomizations' ? 'kustomize.toolkit.fluxcd.io' : 'helm.toolkit.fluxcd.io', version: kind === 'kustomizations' ? 'v1' : 'v2', namespace, plural: kind, name }) as Promise<{ spec: Record<string, unknown> }>;

/** Every payload in the history decoded, with the history itself: what "recorded" means. */
async function recorded(handle: WorkflowHandle): Promise<string> {
  const json = historyToJSON(await handle.fetchHistory());
  const decoded: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.data === 'string' && o.metadata) decoded.push(Buffer.from(o.data, 'base64').toString('utf8'));
      Object.values(o).forEach(walk);
    }
  };
  walk(JSON.parse(json));
  return `${json}\n${decoded.join('\n')}`;
}

/** An update the release refuses: the reason is the cause of the client's error. */
async function refusedUpdate(p: Promise<unknown>, why: RegExp): Promise<void> {
  const err = await p.then(
    () => assert.fail('the update was accepted'),
    (e: unknown) => e as Error & { cause?: Error },
  );
  assert.match(err.cause?.message ?? err.message, why);
}

async function failedStatus(handle: WorkflowHandle): Promise<ReleaseStatus> {
  const err = await handle.result().then(
    () => assert.fail(`${handle.workflowId} succeeded`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError, String(err));
  return (err.cause as { details?: unknown[] }).details?.[0] as ReleaseStatus;
}

/** Asserts the end every attack must reach, and that nothing of `secrets` was recorded. */
async function assertRefused(app: string, status: ReleaseStatus, why: RegExp) {
  assert.equal(status.phase, 'Failed', `${app}: ${status.error}`);
  assert.match(status.error!, /nothing was changed/);
  assert.match(status.error!, why);
  assert.deepEqual(status.changes, []);
  const history = await recorded(tw.client.workflow.getHandle(`release-${app}`));
  for (const s of [MARKER, TEMPORAL_API_KEY]) {
    assert.ok(!history.includes(s), `${app}: "${s}" is in the history`);
    assert.ok(!JSON.stringify(status).includes(s), `${app}: "${s}" is in the status`);
  }
}

/**
 * Starts the attack both ways and checks the outcome of each: `make(app)` gives the spec body
 * (and target overrides); `check(app)` checks the servers afterwards.
 */
async function bothWays(name: string, make: (app: string) => { body: Record<string, unknown>; chef?: unknown; flux?: unknown }, why: RegExp, check: (app: string) => Promise<void>) {
  // 1. the CLI, as CI runs it
  const viaCli = await seedApp(name);
  const m1 = make(viaCli);
  const file = join(dir, `${viaCli}.json`);
  writeFileSync(file, JSON.stringify(specFor(viaCli, m1.body, m1)));
  const run = await cli(['start', '-f', file, '--wait', '-o', 'json']).done;
  assert.ok(([EXIT.rolledBack, EXIT.failedUnchanged] as number[]).includes(run.code), `exit ${run.code}: ${run.stdout}${run.stderr}`);
  const final = JSON.parse(run.stdout) as ReleaseStatus;
  await assertRefused(viaCli, final, why);
  await check(viaCli);

  // 2. a raw start with a hand-made input and a plan of its own, which the worker ignores
  const raw = await seedApp(name);
  const m2 = make(raw);
  const handle = await tw.client.workflow.start('releaseV2', {
    workflowId: `release-${raw}`,
    taskQueue: tw.taskQueue,
    args: [{ spec: specFor(raw, m2.body, m2), plan: [{ kind: 'chef', target: 'vms', summary: 'harmless, says the caller' }], defaultPlan: false } as never],
  });
  await assertRefused(raw, await failedStatus(handle), why);
  await check(raw);
}

const unchanged = async (app: string) => {
  assert.deepEqual(await pins(app), { [cookbook]: '= 1.0.0' });
  assert.deepEqual((await flux('kustomizations', nsA, app)).spec.images, [{ name: 'ghcr.io/acme/web', newTag: '1.0.0' }]);
};

describe('a release spec is untrusted input', () => {
  it('a gate to a loopback listener with the Temporal API key as header: refused, the listener hears nothing', async () => {
    await bothWays(
      'loopback',
      () => ({ body: { gates: { probe: { http: { url: `${probe.url}/version.json`, headers: { Authorization: { env: 'TEMPORAL_API_KEY' } }, json: { '$.version': '2.0.0' } } } }, steps: [{ chef: 'vms' }, { flux: 'web' }, { gate: 'probe' }] } }),
      new RegExp(`127\\.0\\.0\\.1:${probe.port} is not listed in the hosts of app .*a loopback address.*TEMPORAL_API_KEY is the worker's own configuration and never a reference`),
      unchanged,
    );
    assert.deepEqual(probe.hits, []);
  });

  it('a gate to the cloud metadata address: refused', async () => {
    await bothWays(
      'metadata',
      () => ({ body: { gates: { meta: { http: { url: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' } } }, steps: [{ flux: 'web' }, { gate: 'meta' }, { chef: 'vms' }] } }),
      /169\.254\.169\.254:80 is not listed in the hosts of app .*a cloud metadata address/,
      unchanged,
    );
  });

  it("a HelmRelease outside the app's namespaces: refused, the other team's HelmRelease untouched", async () => {
    const victim = uniqueName('cert-manager');
    await createHelmRelease({ namespace: nsB, name: victim, values: { image: { tag: '1.0.0' } } }, kc);
    await bothWays(
      'helm',
      () => ({ body: {}, flux: [{ id: 'web', kind: 'HelmRelease', namespace: nsB, name: victim, values: [{ path: 'image.tag', value: 'evil' }] }] }),
      new RegExp(`spec\\.flux\\[0\\]: HelmRelease ${nsB}/${victim} is outside the kubernetes targets of app`),
      async (app) => {
        assert.deepEqual(await pins(app), { [cookbook]: '= 1.0.0' });
        assert.deepEqual((await flux('helmreleases', nsB, victim)).spec.values, { image: { tag: '1.0.0' } });
      },
    );
  });

  it("another team's Chef credential: refused, the environment untouched", async () => {
    await bothWays(
      'chefkey',
      (app) => ({ body: {}, chef: [{ id: 'vms', serverUrl: chefEnv.serverUrl, environment: app, cookbooks: { [cookbook]: '= 2.0.0' }, credentials: { keyFile: otherTeamKey, clientName: chefEnv.clientName } }] }),
      /spec\.chef\[0\]: Chef credentials key file .*payments-deployer\.pem .* are not among the Chef credentials of app/,
      unchanged,
    );
  });

  it('__proto__.env as a values path: refused before anything runs, and no prototype is touched', async () => {
    // the CLI validates first: nothing is started
    const viaCli = await seedApp('proto');
    const file = join(dir, `${viaCli}.json`);
    const body = (app: string) => specFor(app, {}, { flux: [{ id: 'web', kind: 'HelmRelease', namespace: nsA, name: app, values: [{ path: '__proto__.env', value: 'polluted' }] }] });
    writeFileSync(file, JSON.stringify(body(viaCli)));
    const run = await cli(['start', '-f', file, '--wait']).done;
    assert.equal(run.code, EXIT.invalid, run.stderr);
    assert.match(run.stderr, /spec\.flux\[0\]\.values\[0\]\.path: "__proto__\.env": "__proto__" is not allowed/);
    await assert.rejects(tw.client.workflow.getHandle(`release-${viaCli}`).describe(), /not found/i);
    // the raw start reaches the worker, whose admission refuses it the same way
    const raw = await seedApp('proto');
    const handle = await tw.client.workflow.start('releaseV2', { workflowId: `release-${raw}`, taskQueue: tw.taskQueue, args: [{ spec: body(raw) } as never] });
    await assertRefused(raw, await failedStatus(handle), /the release spec is not valid .*"__proto__" is not allowed/);
    await unchanged(raw);
    assert.equal(({} as Record<string, unknown>).env, undefined, "the worker's Object.prototype is untouched");
  });

  it('the Temporal CLI (`temporal workflow start`, the spec as JSON input): the same admission', async () => {
    const app = await seedApp('tctl');
    const file = join(dir, `${app}-input.json`);
    writeFileSync(file, JSON.stringify(specFor(app, { gates: { meta: { http: { url: 'http://169.254.169.254/latest/api/token' } } }, steps: [{ chef: 'vms' }, { flux: 'web' }, { gate: 'meta' }] })));
    const args = ['workflow', 'start', '--type', 'releaseV2', '--task-queue', tw.taskQueue, '--workflow-id', `release-${app}`, '--input-file', file, '--address', process.env.TEMPORAL_ADDRESS!, '--namespace', tw.namespace];
    await new Promise<void>((resolve, reject) => execFile(cachedBinaries.temporal, args, { env: { ...process.env, TEMPORAL_API_KEY: '' } }, (err, _o, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve())));
    await assertRefused(app, await failedStatus(tw.client.workflow.getHandle(`release-${app}`)), /169\.254\.169\.254:80 is not listed .*a cloud metadata address/);
    await unchanged(app);
  });

  it('a raw start whose input fails the schema, or runs under another workflow id: refused, nothing changed', async () => {
    const app = await seedApp('schema');
    const bad = specFor(app, { gatez: {} }, { chef: [{ id: 'vms', serverUrl: chefEnv.serverUrl, environment: app, cookbooks: { [cookbook]: '>=2.0' }, credentials: { keyFile: chefEnv.keyFile, clientName: chefEnv.clientName } }] });
    const h1 = await tw.client.workflow.start('releaseV2', { workflowId: `release-${app}`, taskQueue: tw.taskQueue, args: [{ spec: bad, plan: [] } as never] });
    await assertRefused(app, await failedStatus(h1), /the release spec is not valid \(2 problems\): .*">=2\.0" is not a Chef version constraint.*spec\.gatez: unknown field/);
    await unchanged(app);
    const other = `release-${app}-x`;
    const h2 = await tw.client.workflow.start('releaseV2', { workflowId: other, taskQueue: tw.taskQueue, args: [{ spec: specFor(app, {}) } as never] });
    const s2 = await failedStatus(h2);
    assert.equal(s2.phase, 'Failed');
    assert.match(s2.error!, new RegExp(`a release of app ${app} runs as workflow release-${app}, one at a time; this workflow is "${other}".*nothing was changed`));
    await unchanged(app);
  });
});

describe('what an allowed gate may see and record', () => {
  it('the JSON a listed endpoint answers is compared, never recorded', async () => {
    await bothWays(
      'marker',
      () => ({ body: { gates: { probe: { http: { url: `${allowed.url}/version.json`, json: { '$.version': '2.0.0', '$.secret': 'x' } }, timeout: '3s', interval: '1s' } }, steps: [{ gate: 'probe' }, { flux: 'web' }, { chef: 'vms' }] } }),
      /gate probe \(http\) did not pass within 3s: \$\.version is not "2\.0\.0" \(found a string of \d+ characters\)/,
      unchanged,
    );
    assert.ok(allowed.hits.length >= 2, 'the listed endpoint was asked');
  });

  it('a redirect to an address the policy does not list is refused where the connection would be made', async () => {
    // the redirect names localhost, a listed name; the address it resolves to is checked when the socket connects
    await bothWays(
      'redirect',
      () => ({ body: { gates: { probe: { http: { url: `${allowed.url}/redirect`, followRedirects: true }, timeout: '20s', interval: '1s' } }, steps: [{ gate: 'probe' }, { flux: 'web' }, { chef: 'vms' }] } }),
      new RegExp(`gate probe \\(http\\) failed: GET ${allowed.url}/redirect: refused by the worker's policy: connection to http://localhost:${elsewhere.port} refused: localhost resolves to (127\\.0\\.0\\.1|::1), a loopback address, which the hosts of app .* do not list`),
      unchanged,
    );
    assert.deepEqual(elsewhere.hits, []);
  });

  it('a listed name that resolves to a loopback address is refused (DNS cannot smuggle an address in)', async () => {
    await bothWays(
      'dns',
      () => ({ body: { gates: { probe: { http: { url: `http://localhost:${elsewhere.port}/` } } }, steps: [{ gate: 'probe' }, { flux: 'web' }, { chef: 'vms' }] } }),
      /spec\.gates\.probe\.http\.url: localhost resolves to (127\.0\.0\.1|::1), a loopback address, which the hosts of app .* do not list/,
      unchanged,
    );
    assert.deepEqual(elsewhere.hits, []);
  });
});

describe('decisions need a proven identity', () => {
  const approval = { steps: [{ pause: { deadline: '30s', onTimeout: 'abort' } }, { chef: 'vms' }, { flux: 'web' }] };

  async function waitAwaiting(handle: WorkflowHandle) {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const s = await handle.query(statusQuery).catch(() => undefined);
      if (s?.phase === 'AwaitingApproval') return;
      if (Date.now() > deadline) assert.fail(`${handle.workflowId} is ${s?.phase}, not AwaitingApproval`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  it('through the CLI: someone not in the policy, and a forged identity, are refused; nobody approving aborts with nothing changed', async () => {
    const app = await seedApp('approve-cli');
    const file = join(dir, `${app}.json`);
    writeFileSync(file, JSON.stringify(specFor(app, approval)));
    const started = cli(['start', '-f', file, '--wait', '-o', 'json']);
    const handle = tw.client.workflow.getHandle(`release-${app}`);
    await waitAwaiting(handle);
    const stranger = await cli(['approve', app, '--as', 'mallory', '--key', mallory.path]).done;
    assert.equal(stranger.code, EXIT.invalid, stranger.stderr);
    assert.match(stranger.stderr, /approve refused: mallory is not an approver of .* \(approvers: alice\)/);
    const forged = await cli(['approve', app, '--as', 'alice', '--key', mallory.path, '--reason', 'trust me']).done;
    assert.equal(forged.code, EXIT.invalid, forged.stderr);
    assert.match(forged.stderr, /approve refused: signed with key SHA256:\S+, which is not a key of alice in the worker's policy/);
    const run = await started.done;
    const final = JSON.parse(run.stdout) as ReleaseStatus;
    await assertRefused(app, final, /nobody answered within 30s: abort/);
    await unchanged(app);
    assert.deepEqual(
      final.decisions.map((d) => [d.command, d.by, d.via, d.accepted, d.reason ?? null]),
      [['approve', 'alice', 'update', false, 'trust me'], ['abort', 'deadline', 'timeout', true, null]],
      'the forged decision is recorded with what it claimed',
    );
  });

  it('through a raw client: a stranger, unsigned, forged, signed for another run, and replayed decisions are refused (the unproven ones recorded)', async () => {
    const app = await seedApp('approve-raw');
    const handle = await tw.client.workflow.start('releaseV2', { workflowId: `release-${app}`, taskQueue: tw.taskQueue, args: [{ spec: specFor(app, approval) } as never] });
    await waitAwaiting(handle);
    const run = { workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
    // someone the policy does not name, with a good signature of their own
    await refusedUpdate(handle.executeUpdate(UPDATES.approve, { args: [await signDecision(run, 'approve', { by: 'mallory' }, mallory.path)] }), /mallory is not an approver of .* \(approvers: alice\)/);
    // unsigned, as a raw update
    await refusedUpdate(handle.executeUpdate(UPDATES.approve, { args: [{ by: 'alice' }] }), /unsigned: a decision counts only when signed/);
    // a forged signal: alice's name, mallory's key
    await handle.signal(SIGNALS.approve, await signDecision(run, 'approve', { by: 'alice', reason: 'signal' }, mallory.path));
    // alice's real signature, but for another run of the release
    const elsewhereRun = await signDecision({ ...run, runId: '00000000-0000-4000-8000-000000000000' }, 'approve', { by: 'alice' }, alice.path);
    await refusedUpdate(handle.executeUpdate(UPDATES.approve, { args: [elsewhereRun] }), /does not match this decision/);
    // a good signature counts once
    const hold = await signDecision(run, 'pause', { by: 'alice', reason: 'look' }, alice.path);
    assert.match(await handle.executeUpdate(UPDATES.pause, { args: [hold] }), /held by alice/);
    assert.match(await handle.executeUpdate(UPDATES.resume, { args: [await signDecision(run, 'resume', { by: 'alice' }, alice.path)] }), /resumed by alice/);
    await refusedUpdate(handle.executeUpdate(UPDATES.pause, { args: [hold] }), /already used/);
    const final = await failedStatus(handle);
    await assertRefused(app, final, /nobody answered within 30s: abort/);
    await unchanged(app);
    const decisions = final.decisions.map((d) => [d.command, d.by, d.via, d.accepted]);
    assert.deepEqual(decisions, [
      ['approve', 'alice', 'update', false],
      ['approve', 'alice', 'signal', false],
      ['approve', 'alice', 'update', false],
      ['pause', 'alice', 'update', true],
      ['resume', 'alice', 'update', true],
      ['pause', 'alice', 'update', false],
      ['abort', 'deadline', 'timeout', true],
    ]);
    assert.match(final.decisions[1]!.note!, /refused: signed with key SHA256:\S+, which is not a key of alice/);
    const fingerprint = parsePublicKey(alice.publicKey).fingerprint;
    assert.deepEqual([final.decisions[3]!.key, final.decisions[4]!.key], [fingerprint, fingerprint], "alice's verified key is recorded");
  });

  it('a flood of unsigned decisions is recorded up to a bound and cannot lock the approvers out', async () => {
    const app = await seedApp('flood');
    const handle = await tw.client.workflow.start('releaseV2', { workflowId: `release-${app}`, taskQueue: tw.taskQueue, args: [{ spec: specFor(app, { steps: [{ pause: {} }, { chef: 'vms' }, { flux: 'web' }] }) } as never] });
    await waitAwaiting(handle);
    for (let i = 0; i < 22; i++) await refusedUpdate(handle.executeUpdate(UPDATES.approve, { args: [{ by: 'alice', reason: `spam ${i}` }] }), /unsigned/);
    const held = await handle.query(statusQuery);
    assert.equal(held.decisions.length, 20, 'refusals recorded up to the bound');
    assert.match(held.decisions[19]!.note!, /further refusals are not recorded/);
    const run = { workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
    assert.match(await handle.executeUpdate(UPDATES.approve, { args: [await signDecision(run, 'approve', { by: 'alice' }, alice.path)] }), /approved by alice/);
    const final = (await handle.result()) as ReleaseStatus;
    assert.equal(final.phase, 'Succeeded');
    assert.deepEqual(final.decisions.filter((d) => d.accepted).map((d) => [d.command, d.by]), [['approve', 'alice']]);
  });
});
