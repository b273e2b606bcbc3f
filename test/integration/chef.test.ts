/**
 * The Chef activities against a real Chef server (the stack's goiardi, authentication on): signed
 * requests, pin and restore, preflight, errors, convergence, and the three kinds of credentials.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/activity';
import type { Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mockInfo } from '../support/policy.ts';
import { ChefClient, closeChefPools } from '../../activities/chef/client.ts';
import { searchNodeFacts, classifyNodes, type SearchMode } from '../../activities/chef/convergence.ts';
import * as chef from '../../activities/chef/index.ts';
import type { ChefTarget, CookbookPins } from '../../activities/chef/index.ts';
import type { GateResult } from '../../activities/gates/result.ts';
import { requireEnv } from '../support/env.ts';
import {
  adminClient,
  chefServerEnv,
  createEnvironment,
  deleteEnvironment,
  fleetApi,
  targetFor,
  uniqueName,
  uploadCookbook,
  waitForIndexed,
  type ChefServerEnv,
} from '../support/chef-fixtures.ts';

/** Everything the activities logged, checked at the end for key material. */
const logged: string[] = [];
const logger: Logger = {
  log: (level, message, meta) => void logged.push(`${level} ${message} ${inspect(meta, { depth: 6 })}`),
  trace: (m, meta) => logger.log('TRACE', m, meta),
  debug: (m, meta) => logger.log('DEBUG', m, meta),
  info: (m, meta) => logger.log('INFO', m, meta),
  warn: (m, meta) => logger.log('WARN', m, meta),
  error: (m, meta) => logger.log('ERROR', m, meta),
};
const activityEnv = () => new MockActivityEnvironment(mockInfo(), { logger });

/** Runs an activity in a mock activity context (heartbeats, cancellation, logger) outside a worker. */
function run<A, R>(fn: (input: A) => Promise<R>, input: A): Promise<R> {
  return activityEnv().run(fn, input) as Promise<R>;
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => assert.fail('expected the activity to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
  return err;
}

let server: ChefServerEnv;
let admin: ChefClient;
/** every key in play, to check that none leaks into a message */
const keyTexts: string[] = [];
const envs: string[] = [];
const web = uniqueName('hrweb');
const api = uniqueName('hrapi');
const other = uniqueName('hrother');

function assertNoKeyIn(text: string) {
  assert.doesNotMatch(text, /-----BEGIN|PRIVATE KEY/);
  for (const pem of keyTexts) {
    const body = pem.split('\n').filter((l) => l && !l.startsWith('-----'));
    for (const line of [body[1], body[5], body.at(-2)]) if (line) assert.ok(!text.includes(line), 'a line of a private key appears in the output');
  }
}

async function newEnvironment(prefix: string, cookbookVersions: Record<string, string> = {}): Promise<string> {
  const name = uniqueName(prefix);
  envs.push(name);
  await createEnvironment(admin, name, cookbookVersions);
  return name;
}

before(async () => {
  server = chefServerEnv();
  admin = adminClient(server);
  keyTexts.push(readFileSync(server.keyFile, 'utf8'));
  for (const v of ['1.0.0', '1.2.3', '1.3.0', '2.0.0']) await uploadCookbook(admin, web, v);
  for (const v of ['0.9.0', '2.1.0']) await uploadCookbook(admin, api, v);
});

after(async () => {
  for (const line of logged) assertNoKeyIn(line);
  for (const e of envs) await deleteEnvironment(admin, e);
  await closeChefPools();
});

describe('signed requests', () => {
  for (const protocol of ['1.0', '1.1', '1.3'] as const) {
    it(`GET with protocol ${protocol}`, async () => {
      const c = new ChefClient({ serverUrl: server.serverUrl, identity: admin.identity, protocol });
      const list = await c.get<Record<string, string>>('environments', { object: 'environment list' });
      assert.ok('_default' in list);
    });
  }

  it('POST, PUT and GET round trip an environment exactly', async () => {
    const name = await newEnvironment('hr-rt', { [web]: '= 1.0.0' });
    const env = await admin.get<Record<string, unknown>>(`environments/${name}`, { object: name });
    await admin.put(`environments/${name}`, { object: name, body: { ...env, description: 'changed' } });
    const back = await admin.get<Record<string, unknown>>(`environments/${name}`, { object: name });
    assert.deepEqual(back, { ...env, description: 'changed' });
  });

  it('a search with a query string (the query is not part of the signed path)', async () => {
    const name = await newEnvironment('hr-q');
    // the index lags writes: ask until the new environment shows (or a deadline says what was seen)
    let rows: string[] = [];
    for (const deadline = Date.now() + 180_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      const res = await admin.get<{ rows: { name: string }[] }>('search/environment', { object: 'environment search', query: { q: `name:${name}`, rows: 10, start: 0 } });
      rows = res.rows.map((r) => r.name);
      if (rows.length) break;
    }
    assert.deepEqual(rows, [name]);
  });
});

describe('pin and restore', () => {
  it('absent -> present -> absent, keeping everything else in the environment, and idempotent', async () => {
    const name = await newEnvironment('hr-pin', { [other]: '= 9.9.9' });
    const bystander = await newEnvironment('hr-bystander', { [web]: '= 1.0.0' });
    const bystanderBefore = await admin.get(`environments/${bystander}`, { object: bystander });
    const before = await admin.get<Record<string, unknown>>(`environments/${name}`, { object: name });
    const target = targetFor(server, name, { [web]: '~> 1.2', [api]: '>= 2.0' });

    const snapshot = await run(chef.chefSnapshot, target);
    assert.deepEqual(snapshot, { [web]: null, [api]: null });

    const askedAt = Date.now();
    const { previous, landedAt } = await run(chef.chefPin, target);
    assert.deepEqual(previous, { [web]: null, [api]: null });
    // when the pin had landed: after the call began, before it returned (the convergence gate's "since")
    assert.ok(landedAt !== undefined && landedAt >= askedAt && landedAt <= Date.now(), `landedAt ${landedAt}`);
    assert.ok(logged.some((l) => l.includes('pinned Chef cookbooks') && l.includes(name)), 'the pin is logged');
    const pinned = await admin.get<Record<string, unknown>>(`environments/${name}`, { object: name });
    assert.deepEqual(pinned, { ...before, cookbook_versions: { [other]: '= 9.9.9', [web]: '~> 1.2', [api]: '>= 2.0' } });

    // a second run (a retried activity) changes nothing and reports the values now in place
    assert.deepEqual((await run(chef.chefPin, target)).previous, { [web]: '~> 1.2', [api]: '>= 2.0' });
    assert.deepEqual(await admin.get(`environments/${name}`, { object: name }), pinned);

    await run(chef.chefRestore, { target, previous });
    assert.deepEqual(await admin.get(`environments/${name}`, { object: name }), before);
    await run(chef.chefRestore, { target, previous });
    assert.deepEqual(await admin.get(`environments/${name}`, { object: name }), before);

    assert.deepEqual(await admin.get(`environments/${bystander}`, { object: bystander }), bystanderBefore);
  });

  it('present -> changed -> present restores the exact previous constraint', async () => {
    const name = await newEnvironment('hr-pin2', { [web]: '= 1.0.0', [other]: '< 3.0' });
    const target = targetFor(server, name, { [web]: '>= 1.2.3' });
    const previous: CookbookPins = (await run(chef.chefPin, target)).previous;
    assert.deepEqual(previous, { [web]: '= 1.0.0' });
    assert.deepEqual((await admin.get<{ cookbook_versions: object }>(`environments/${name}`, { object: name })).cookbook_versions, { [web]: '>= 1.2.3', [other]: '< 3.0' });
    await run(chef.chefRestore, { target, previous });
    assert.deepEqual((await admin.get<{ cookbook_versions: object }>(`environments/${name}`, { object: name })).cookbook_versions, { [web]: '= 1.0.0', [other]: '< 3.0' });
  });

  it('restore runs safely when the pin never happened', async () => {
    const name = await newEnvironment('hr-pin3', { [web]: '= 1.0.0' });
    const target = targetFor(server, name, { [web]: '~> 2.0' });
    await run(chef.chefRestore, { target, previous: { [web]: '= 1.0.0' } });
    assert.deepEqual((await admin.get<{ cookbook_versions: object }>(`environments/${name}`, { object: name })).cookbook_versions, { [web]: '= 1.0.0' });
  });

  it('refuses _default before sending anything, and the server refuses it too (405)', async () => {
    const err = await failure(run(chef.chefPin, targetFor(server, '_default', { [web]: '= 1.0.0' })));
    assert.equal(err.type, 'ChefBadRequest');
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /_default environment cannot be modified/);
    const direct = await failure(admin.put('environments/_default', { object: 'environment _default', body: { name: '_default', cookbook_versions: {} } }));
    assert.equal(direct.type, 'ChefNotAllowed');
    assert.equal(direct.nonRetryable, true);
  });

  it('rejects an invalid constraint before writing', async () => {
    const name = await newEnvironment('hr-pin4');
    const err = await failure(run(chef.chefPin, targetFor(server, name, { [web]: '>=1.0' })));
    assert.equal(err.type, 'ChefBadRequest');
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /">=1\.0" for cookbook/);
  });
});

describe('preflight', () => {
  it('reports current constraints and the versions that satisfy the new ones', async () => {
    const name = await newEnvironment('hr-pre', { [web]: '= 1.0.0' });
    const res = await run(chef.chefPreflight, targetFor(server, name, { [web]: '~> 1.2', [api]: '> 1' }));
    assert.deepEqual(res, { environment: name, current: { [web]: '= 1.0.0', [api]: null }, matching: { [web]: ['1.3.0', '1.2.3'], [api]: ['2.1.0'] } });
  });

  it('a constraint no cookbook version satisfies: non-retryable, listing the versions that exist', async () => {
    const name = await newEnvironment('hr-pre2');
    const err = await failure(run(chef.chefPreflight, targetFor(server, name, { [web]: '~> 1.2.4', [api]: '>= 2.0' })));
    assert.equal(err.type, 'ChefNoMatchingVersion');
    assert.equal(err.nonRetryable, true);
    assert.ok(err.message.includes(server.serverUrl));
    assert.ok(err.message.includes(`cookbook ${web}: no version satisfies "~> 1.2.4" (versions on the server: 2.0.0, 1.3.0, 1.2.3, 1.0.0)`), err.message);
    assert.doesNotMatch(err.message, new RegExp(api));
    assert.match(err.message, /Upload a matching cookbook version or change the constraint/);
  });

  it('a cookbook the server does not have: non-retryable ChefNotFound', async () => {
    const name = await newEnvironment('hr-pre3');
    const missing = uniqueName('hrmissing');
    const err = await failure(run(chef.chefPreflight, targetFor(server, name, { [missing]: '>= 1.0' })));
    assert.equal(err.type, 'ChefNotFound');
    assert.equal(err.nonRetryable, true);
    assert.ok(err.message.includes(`cookbook ${missing}`));
    assert.match(err.message, /knife cookbook upload/);
  });

  it('a missing environment (404): non-retryable ChefNotFound naming server and environment', async () => {
    const missing = uniqueName('hr-nope');
    for (const activity of [chef.chefPreflight, chef.chefPin, chef.chefSnapshot] as const) {
      const err = await failure(run(activity as (t: ChefTarget) => Promise<unknown>, targetFor(server, missing, { [web]: '>= 1.0' })));
      assert.equal(err.type, 'ChefNotFound');
      assert.equal(err.nonRetryable, true);
      assert.ok(err.message.includes(server.serverUrl), err.message);
      assert.ok(err.message.includes(`environment ${missing}`), err.message);
      assert.match(err.message, /404 \(Cannot load environment/);
      assert.match(err.message, /create the environment|fix the environment name/);
    }
  });

  it('a wrong key (401): non-retryable ChefAuth naming server, client and key file, not the key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hr-chef-'));
    const pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    keyTexts.push(pem);
    const keyFile = join(dir, 'wrong.pem');
    writeFileSync(keyFile, pem, { mode: 0o600 });
    const name = await newEnvironment('hr-auth');
    const target: ChefTarget = { ...targetFor(server, name, { [web]: '>= 1.0' }), credentials: { keyFile, clientName: server.clientName } };
    const err = await failure(run(chef.chefPreflight, target));
    assert.equal(err.type, 'ChefAuth');
    assert.equal(err.nonRetryable, true);
    assert.ok(err.message.includes(server.serverUrl));
    assert.ok(err.message.includes(`client "${server.clientName}"`));
    assert.ok(err.message.includes(`key file ${keyFile}`));
    assert.match(err.message, /failed with 401/);
    assertNoKeyIn(err.message);
    assertNoKeyIn(JSON.stringify(err.details));
  });

  it('an unreachable server: retryable ChefUnavailable naming the server', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const target: ChefTarget = { ...targetFor(server, 'prod', { [web]: '>= 1.0' }), serverUrl: `http://127.0.0.1:${port}` };
    const err = await failure(run(chef.chefPreflight, target));
    assert.equal(err.type, 'ChefUnavailable');
    assert.equal(err.nonRetryable, false);
    assert.ok(err.message.includes(`http://127.0.0.1:${port}`));
    assert.match(err.message, /ECONNREFUSED/);
    assert.match(err.message, /environment prod/);
  });
});

describe('convergence gate, against chef-client runs of the fleet simulator', () => {
  const fleet = fleetApi();
  // its own cookbook: 1.0.0 and 1.1.0 converge, 1.2.0's recipe raises, 1.3.0 depends on a cookbook nobody has
  const gw = uniqueName('hrgw').replace(/-/g, '_');
  const FAILING = 'nginx.conf: unknown directive \\"proxy_pas\\"';
  const prefixes: string[] = [];
  /** adds nodes for this file, removed at the end */
  const addNodes = async (environment: string, prefix: string, more: Partial<Parameters<typeof fleet.add>[0]> = {}) => {
    prefixes.push(prefix);
    return (await fleet.add({ environment, prefix, count: 1, runList: [`recipe[${gw}]`], intervalMs: 2000, splayMs: 1000, ...more })).added;
  };
  const convergedOn = (names: string[], version: string, afterMs = 0) => fleet.waitForVersion({ names }, gw, version, { afterMs, count: names.length });
  const gate = (target: ChefTarget, since: number, more: Record<string, unknown> = {}) =>
    run(chef.chefConvergenceGate, { gate: 'converged', target, since, minPercent: 100, timeoutMs: 600_000, intervalMs: 500, successes: 1, ...more });

  before(async () => {
    await uploadCookbook(admin, gw, '1.0.0');
    await uploadCookbook(admin, gw, '1.1.0');
    await uploadCookbook(admin, gw, '1.2.0', { recipe: `package "nginx"\nraise "${FAILING}"\n` });
    await uploadCookbook(admin, gw, '1.3.0', { dependencies: { [`${gw}_missing`]: '>= 1.0' } });
    await uploadCookbook(admin, other, '1.0.0');
  });
  after(async () => {
    for (const p of prefixes) await fleet.remove({ prefix: `${p}-` });
  });

  let counted: string; // the environment of the first test, reused by the search test

  it('counts converged, stale and unaffected nodes from real runs, and a stale node does not block', async () => {
    const name = (counted = await newEnvironment('hr-conv', { [gw]: '= 1.0.0' }));
    const ok = await addNodes(name, `${name}-ok`, { count: 4 });
    const [db] = await addNodes(name, `${name}-db`, { runList: [`recipe[${other}]`] });
    const [dead] = await addNodes(name, `${name}-dead`);
    await convergedOn([...ok, dead!], '1.0.0');
    await fleet.fault({ names: [dead!], decommission: true }); // a VM switched off: its node object stays
    await fleet.waitFor({ names: [db!] }, 'a first run of the db node', (ns) => ns.every((n) => n.lastSuccess));

    const target = targetFor(server, name, { [gw]: '= 1.1.0' });
    const { landedAt } = await run(chef.chefPin, target);
    const res = (await gate(target, landedAt!, { staleAfterMs: 15_000, maxClockSkewMs: 2_000 })) as GateResult;
    assert.equal(res.ok, true, res.reason);
    const o = res.observed as chef.ConvergenceObserved;
    assert.deepEqual(
      { total: o.total, converged: o.converged, failed: o.failed, stale: o.stale, staleNodes: o.staleNodes, unaffected: o.unaffected, reporting: o.reporting.available },
      { total: 4, converged: 4, failed: 0, stale: 1, staleNodes: [dead], unaffected: 1, reporting: true },
    );
    assert.match(res.reason, new RegExp(`4/4 nodes converged .*1 stale node \\(no successful run in 15s; not counted\\).*stale: ${dead}`));
    // the nodes did run 1.1.0: what the gate saw is what the simulator did
    for (const n of await fleet.list({ names: ok })) assert.equal(n.lastSuccess?.versions?.[gw], '1.1.0', n.name);
  });

  it('a failing cookbook version fails the gate at the first failed run after the pin, quoting node and error', async () => {
    const name = await newEnvironment('hr-fail', { [gw]: '= 1.0.0' });
    const nodes = await addNodes(name, `${name}-n`, { count: 2 });
    await convergedOn(nodes, '1.0.0');
    const target = targetFor(server, name, { [gw]: '= 1.2.0' });
    const { landedAt } = await run(chef.chefPin, target);
    const err = await failure(gate(target, landedAt!, { maxClockSkewMs: 2_000 }));
    assert.equal(err.type, 'GateFailed', err.message); // not GateTimedOut: the 10-minute timeout was far off
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, new RegExp(`failed chef-client since the pin \\(0 tolerated\\)`));
    assert.match(err.message, new RegExp(`${name}-n-00[12] \\(RuntimeError: nginx.conf: unknown directive "proxy_pas"\\)`));
    const o = (err.details?.[0] as GateResult).observed as chef.ConvergenceObserved;
    assert.ok(o.failed >= 1 && o.converged === 0, JSON.stringify(o));

    // then the broken dependency: the depsolver's 412, quoted
    const broken = targetFor(server, name, { [gw]: '= 1.3.0' });
    const pin2 = await run(chef.chefPin, broken);
    const err2 = await failure(gate(broken, pin2.landedAt!, { maxClockSkewMs: 2_000 }));
    assert.equal(err2.type, 'GateFailed', err2.message);
    assert.match(err2.message, /Net::HTTPClientException: 412 "Precondition Failed": Unable to satisfy constraints on package \w+_missing, which does not exist/);

    // back to a good version: the same nodes converge and the gate passes (the failures before the pin do not count)
    const good = targetFor(server, name, { [gw]: '= 1.1.0' });
    const pin3 = await run(chef.chefPin, good);
    const res = (await gate(good, pin3.landedAt!, { maxClockSkewMs: 2_000 })) as GateResult;
    assert.equal(res.ok, true, res.reason);
  });

  it('without run reports (a client that may not read them) a failure shows only as lagging, and the reason says so', async () => {
    const name = await newEnvironment('hr-blind', { [gw]: '= 1.1.0' });
    const nodes = await addNodes(name, `${name}-n`, { count: 1 });
    await convergedOn(nodes, '1.1.0');
    await run(chef.chefPin, targetFor(server, name, { [gw]: '= 1.2.0' }));
    await fleet.waitFor({ names: nodes }, 'a failed run', (ns) => ns.every((n) => n.lastRun?.status === 'failure'));
    // a reader: a non-admin client, which goiardi lets search nodes but not read run reports
    const dir = mkdtempSync(join(tmpdir(), 'hr-reader-'));
    const reader = uniqueName('hr-reader');
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'reader.pem'), pair.privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    await admin.post('clients', { object: `client ${reader}`, body: { name: reader, admin: false, public_key: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() } });
    try {
      const target: ChefTarget = { ...targetFor(server, name, { [gw]: '= 1.2.0' }), credentials: { keyFile: join(dir, 'reader.pem'), clientName: reader } };
      const err = await failure(gate(target, Date.now(), { timeoutMs: 4_000, maxClockSkewMs: 2_000 }));
      assert.equal(err.type, 'GateTimedOut');
      assert.match(err.message, new RegExp(`lagging: ${nodes[0]}`));
      assert.match(err.message, new RegExp(`no run reports: client "${reader}" may not read run reports .*; a failed chef-client run saves nothing, so failed nodes show only as lagging`));
      const o = (err.details?.[0] as GateResult).observed as chef.ConvergenceObserved;
      assert.deepEqual([o.failed, o.reporting.available], [0, false]);
    } finally {
      await admin.delete(`clients/${reader}`, { object: `client ${reader}` });
    }
  });

  it('a run in flight when the pin lands, on a node whose clock is 60 s ahead, is in flight, not failed', async () => {
    const name = await newEnvironment('hr-skew', { [gw]: '= 1.0.0' });
    const [slow] = await addNodes(name, `${name}-slow`, { skewMs: 60_000, convergeMs: 3_000, intervalMs: 500, splayMs: 0 });
    await convergedOn([slow!], '1.0.0');
    // catch a run that has resolved 1.0.0 and is still converging, and pin under it
    const [caught] = await fleet.waitFor({ names: [slow!] }, 'a run past its depsolve', (ns) => ns[0]?.lastRun?.status === 'running' && ns[0].lastRun.versions?.[gw] === '1.0.0');
    const target = targetFor(server, name, { [gw]: '= 1.1.0' });
    const { landedAt } = await run(chef.chefPin, target);
    const inFlight = caught!.lastRun!.runId;
    await fleet.fault({ names: [slow!], intervalMs: 3_600_000 }); // no next run until we look
    const [saved] = await fleet.waitFor({ names: [slow!] }, 'the in-flight run saved', (ns) => ns[0]?.lastSuccess?.runId === inFlight);
    assert.ok(saved!.lastSuccess!.startedAt > landedAt!, 'the node clock puts the start of that run after the pin');
    // the node object as that run saved it (GET is exact; search lags)
    const obj = await admin.get<{ automatic: { ohai_time: number; cookbooks: Record<string, { version: string }> } }>(`nodes/${slow}`, { object: `node ${slow}` });
    assert.equal(obj.automatic.cookbooks[gw]?.version, '1.0.0');
    const facts = [{ name: slow!, ohaiTime: obj.automatic.ohai_time, versions: { [gw]: obj.automatic.cookbooks[gw]?.version } }];
    const tolerant = classifyNodes(facts, target.cookbooks, landedAt!, { rules: { maxClockSkewMs: 120_000 } });
    assert.deepEqual([tolerant.inFlight, tolerant.lagging, tolerant.failed], [1, 1, 0], 'within the bound: in flight');
    const strict = classifyNodes(facts, target.cookbooks, landedAt!, { rules: { maxClockSkewMs: 10_000 } });
    assert.equal(strict.failed, 1, 'a bound smaller than the skew would call it failed');
    await fleet.fault({ names: [slow!], intervalMs: 500 }); // runs again at once, now on 1.1.0
    const res = (await gate(target, landedAt!, { maxClockSkewMs: 120_000 })) as GateResult;
    assert.equal(res.ok, true, res.reason);
  });

  it('partial search and full search page through every node and agree', async () => {
    const results: Record<string, unknown> = {};
    await waitForIndexed(admin, counted, 6);
    for (const [label, mode, pageSize] of [
      ['auto', undefined, undefined],
      ['auto, small pages', undefined, 2],
      ['full, small pages', 'full', 2],
      ['full', 'full', undefined],
    ] as [string, SearchMode | undefined, number | undefined][]) {
      const found = await searchNodeFacts(admin, counted, [gw], { ...(mode ? { mode } : {}), ...(pageSize ? { pageSize } : {}) });
      assert.equal(found.nodes.length, 6, label);
      assert.equal(new Set(found.nodes.map((n) => n.name)).size, 6, label);
      const o = classifyNodes(found.nodes, { [gw]: '~> 1.1' }, 0, { rules: { staleAfterMs: 86_400_000 } });
      results[label] = { total: o.total, converged: o.converged, unaffected: o.unaffected };
      if (pageSize) assert.ok(found.requests >= 3 || found.mode === 'partial-unpaged', `${label}: ${found.requests} requests`);
    }
    for (const r of Object.values(results)) assert.deepEqual(r, { total: 5, converged: 4, unaffected: 1 });
  });
});

describe('credentials by reference', () => {
  let name: string;
  before(async () => {
    name = await newEnvironment('hr-cred', { [web]: '= 1.2.3' });
  });

  it('a knife credentials profile with a relative client_key path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hr-knife-'));
    copyFileSync(server.keyFile, join(dir, 'deployer.pem'));
    const credentialsFile = join(dir, 'credentials');
    writeFileSync(
      credentialsFile,
      ['[default]', 'client_name = "someone-else"', 'client_key = "/nonexistent.pem"', '', "['hr.deploy']", `client_name = "${server.clientName}"`, 'client_key = "deployer.pem"', `chef_server_url = "${server.serverUrl}"`, ''].join('\n'),
    );
    const target: ChefTarget = { ...targetFor(server, name, { [web]: '~> 1.2' }), credentials: { profile: 'hr.deploy', credentialsFile } };
    assert.deepEqual(await run(chef.chefSnapshot, target), { [web]: '= 1.2.3' });
  });

  it('a knife profile with the key inline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hr-knife-'));
    const credentialsFile = join(dir, 'credentials');
    writeFileSync(credentialsFile, `[inline]\nclient_name = "${server.clientName}"\nclient_key = """\n${readFileSync(server.keyFile, 'utf8').trim()}\n"""\n`);
    const target: ChefTarget = { ...targetFor(server, name, { [web]: '~> 1.2' }), credentials: { profile: 'inline', credentialsFile } };
    assert.deepEqual(await run(chef.chefSnapshot, target), { [web]: '= 1.2.3' });
  });

  it('a missing profile or key file: non-retryable ChefCredentials saying where it looked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hr-knife-'));
    const credentialsFile = join(dir, 'credentials');
    writeFileSync(credentialsFile, '[default]\nclient_name = "x"\nclient_key = "missing.pem"\n');
    const noProfile = await failure(run(chef.chefSnapshot, { ...targetFor(server, name, {}), credentials: { profile: 'prod', credentialsFile } }));
    assert.equal(noProfile.type, 'ChefCredentials');
    assert.equal(noProfile.nonRetryable, true);
    assert.match(noProfile.message, /no profile \[prod\] in .*credentials \(profiles there: default\)/);
    const noKey = await failure(run(chef.chefSnapshot, { ...targetFor(server, name, {}), credentials: { profile: 'default', credentialsFile } }));
    assert.match(noKey.message, /cannot read key file .*missing\.pem \(ENOENT\)/);
    const notAKey = join(dir, 'not-a-key.pem');
    writeFileSync(notAKey, 'hello');
    const bad = await failure(run(chef.chefSnapshot, { ...targetFor(server, name, {}), credentials: { keyFile: notAKey, clientName: 'x' } }));
    assert.match(bad.message, /not a PEM-encoded RSA private key/);
  });

  it('a Kubernetes Secret (client_name/client_key and api_user/api_key), read with the worker ServiceAccount', async () => {
    requireEnv('KUBECONFIG');
    const { admin: kubeAdmin, useWorkerIdentity, WORKER_SA, CREDENTIALS_NAMESPACE } = await import('../support/kube-worker.ts');
    const a = kubeAdmin();
    await useWorkerIdentity(a); // applies deploy/rbac.yaml, switches KUBECONFIG to the worker's token
    const ns = CREDENTIALS_NAMESPACE;
    const pem = readFileSync(server.keyFile, 'utf8');
    const secrets = {
      knife: { client_name: server.clientName, client_key: pem },
      operator: { api_user: server.clientName, api_key: pem },
      incomplete: { client_name: server.clientName },
    };
    const names: Record<string, string> = {};
    for (const [kind, data] of Object.entries(secrets)) {
      names[kind] = uniqueName(`hr-chef-${kind}`);
      await a.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: names[kind] }, stringData: data } });
    }
    try {
      for (const kind of ['knife', 'operator']) {
        const target: ChefTarget = { ...targetFor(server, name, { [web]: '~> 1.2' }), credentials: { secret: { name: names[kind]!, namespace: ns } } };
        assert.deepEqual(await run(chef.chefSnapshot, target), { [web]: '= 1.2.3' }, kind);
      }
      const incomplete = await failure(run(chef.chefSnapshot, { ...targetFor(server, name, {}), credentials: { secret: { name: names.incomplete!, namespace: ns } } }));
      assert.equal(incomplete.type, 'ChefCredentials');
      assert.match(incomplete.message, /needs the keys client_name and client_key \(or api_user and api_key\); it has: client_name/);
      const missing = await failure(run(chef.chefSnapshot, { ...targetFor(server, name, {}), credentials: { secret: { name: 'no-such-secret', namespace: ns } } }));
      assert.equal(missing.type, 'KubeNotFound');
      assert.equal(missing.nonRetryable, true);
      // the worker may read Secrets only in namespaces bound for Chef credentials
      const denied = await failure(run(chef.chefSnapshot, { ...targetFor(server, name, {}), credentials: { secret: { name: names.knife!, namespace: 'default' } } }));
      assert.equal(denied.type, 'KubeDenied');
      // nor in its own namespace, where its Temporal credentials live: a spec cannot name those (the
      // policy refuses them before the API server would; test/integration/rbac.test.ts shows the 403)
      const own = await failure(run(chef.chefSnapshot, { ...targetFor(server, name, {}), credentials: { secret: { name: 'hybrid-release-temporal', namespace: WORKER_SA.namespace } } }));
      assert.equal(own.type, 'PolicyDenied');
      assert.match(own.message, /Secrets in the worker's own namespace hybrid-release are never a reference/);
      for (const e of [incomplete, missing, denied, own]) assertNoKeyIn(e.message);
    } finally {
      for (const n of Object.values(names)) await a.core.deleteNamespacedSecret({ name: n, namespace: ns }).catch(() => undefined);
    }
  });
});
