/**
 * Chef releases through the real workflow, judged by the convergence gate on the chef-client runs
 * of the stack's fleet simulator (real goiardi, real depsolver, real run reports): a good version,
 * a failing cookbook version, a broken dependency, a stale node and a skewed clock. Failures come
 * from the cookbooks and the nodes themselves, never from writing node objects.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { closeChefPools } from '../../activities/chef/client.ts';
import type { ConvergenceObserved } from '../../activities/chef/convergence.ts';
import { startRelease } from '../../client/releases.ts';
import { validateSpec } from '../../release-spec/load.ts';
import type { ReleaseStatus } from '../../workflows/messages.ts';
import { adminClient, chefServerEnv, createEnvironment, deleteEnvironment, fleetApi, uploadCookbook } from '../support/chef-fixtures.ts';
import { uniqueName } from '../support/env.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';

const chef = adminClient();
const chefEnv = chefServerEnv();
const fleet = fleetApi();
const cookbook = uniqueName('cf_gw').replace(/-/g, '_');
const prefix = uniqueName('cf');
const envs: string[] = [];
let tw: TestWorker;

before(async () => {
  await uploadCookbook(chef, cookbook, '1.0.0');
  await uploadCookbook(chef, cookbook, '1.1.0');
  await uploadCookbook(chef, cookbook, '1.2.0', { recipe: 'template "/etc/haproxy/haproxy.cfg"\nraise "haproxy.cfg: backend api has no server"\n' });
  await uploadCookbook(chef, cookbook, '1.3.0', { dependencies: { [`${cookbook}_tls`]: '~> 2.0' } });
  tw = await startTestWorker();
});
after(async () => {
  await fleet.remove({ prefix: `${prefix}-` });
  for (const e of envs) await deleteEnvironment(chef, e);
  await tw?.stop();
  await closeChefPools();
});

/** An environment on 1.0.0 with `count` VMs running chef-client every 1-2.5 s, all converged on 1.0.0. */
async function fleetOn(count: number, more: Partial<Parameters<typeof fleet.add>[0]> = {}) {
  const env = uniqueName(`${prefix}-env`);
  envs.push(env);
  await createEnvironment(chef, env, { [cookbook]: '= 1.0.0' });
  const { added } = await fleet.add({ environment: env, prefix: `${prefix}-${env}`, count, runList: [`recipe[${cookbook}]`], intervalMs: 1000, splayMs: 1500, ...more });
  await fleet.waitForVersion({ names: added }, cookbook, '1.0.0', { count });
  return { env, nodes: added };
}

function release(env: string, version: string, gate: Record<string, unknown> = {}) {
  return validateSpec({
    apiVersion: 'hybrid-release.dev/v1alpha1',
    kind: 'HybridRelease',
    metadata: { name: `${env}-${version.replace(/\./g, '-')}` },
    spec: {
      app: env,
      chef: [{ id: 'vms', serverUrl: chefEnv.serverUrl, environment: env, cookbooks: { [cookbook]: `= ${version}` }, credentials: { keyFile: chefEnv.keyFile, clientName: chefEnv.clientName } }],
      // a long timeout: a failure must be caught by the nodes' failed runs, not by running out of time
      gates: { converged: { chefConvergence: { target: 'vms', minPercent: 100, maxClockSkew: '90s', ...gate }, timeout: '10m', interval: '1s' } },
      steps: [{ chef: 'vms' }, { gate: 'converged' }],
    },
  });
}

const pinned = async (env: string) => (await chef.get<{ cookbook_versions: Record<string, string> }>(`environments/${env}`, { object: env })).cookbook_versions[cookbook];

async function rolledBack(handle: WorkflowHandle): Promise<{ message: string; status: ReleaseStatus }> {
  const err = await handle.result().then(
    () => assert.fail('the release succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError, String(err));
  const cause = err.cause as { message: string; details?: unknown[] };
  return { message: cause.message, status: cause.details?.[0] as ReleaseStatus };
}

describe('Chef releases judged on simulated chef-client runs', () => {
  it('a good release: every node runs the new version and the gate passes on those runs', async () => {
    const { env, nodes } = await fleetOn(3);
    const status = (await (await startRelease(tw.client, release(env, '1.1.0'), { taskQueue: tw.taskQueue })).result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded', status.error);
    const gate = status.gates.find((g) => g.gate === 'converged')!;
    assert.match(gate.reason, /^3\/3 nodes converged \(100%, need 100%\), 0 lagging, 0 failed/);
    assert.equal((gate.observed as ConvergenceObserved).reporting.available, true);
    for (const n of await fleet.list({ names: nodes })) assert.equal(n.lastSuccess?.versions?.[cookbook], '1.1.0', n.name);
  });

  for (const [what, version, error] of [
    ['a failing cookbook version', '1.2.0', /RuntimeError: haproxy\.cfg: backend api has no server/],
    ['an unsatisfiable dependency', '1.3.0', /Net::HTTPClientException: 412 "Precondition Failed": Unable to satisfy constraints on package \w+_tls, which does not exist/],
  ] as const) {
    it(`${what}: the gate fails at the nodes' first failed runs (not at its timeout), the release rolls back, and the nodes converge back`, async () => {
      const { env, nodes } = await fleetOn(2);
      const { message, status } = await rolledBack(await startRelease(tw.client, release(env, version), { taskQueue: tw.taskQueue }));
      const rolledBackAt = Date.now();
      assert.equal(status.phase, 'RolledBack');
      // GateFailed, not "did not pass within 600s": the failed runs decided it
      assert.match(message, /gate converged \(chefConvergence\) failed: \d nodes? failed chef-client since the pin \(0 tolerated\)/);
      assert.match(message, new RegExp(`${prefix}-${env}-00[12] \\(`));
      assert.match(message, error);
      const gate = status.gates.find((g) => g.gate === 'converged')!;
      assert.equal(gate.ok, false);
      assert.ok((gate.observed as ConvergenceObserved).failed >= 1);
      assert.deepEqual(status.changes.map((c) => c.state), ['restored']);
      assert.equal(await pinned(env), '= 1.0.0');
      // the VMs run again on the old version, in runs that started after the rollback
      await fleet.waitForVersion({ names: nodes }, cookbook, '1.0.0', { afterMs: rolledBackAt, count: 2 });
    });
  }

  it('a stale node (a VM switched off, its node object left behind) does not block the gate', async () => {
    const { env, nodes } = await fleetOn(3);
    const dead = nodes[2]!;
    await fleet.fault({ names: [dead], decommission: true });
    // stale: its last successful run is older than staleAfter (+ maxClockSkew) before the release starts
    const staleAfterMs = 15_000;
    const skewMs = 5_000;
    await fleet.waitFor({ names: [dead] }, 'the switched-off node gone stale', (ns) => Date.now() - (ns[0]!.lastSuccess!.startedAt - ns[0]!.skewMs) > staleAfterMs + skewMs + 1_000, 120_000);
    const status = (await (await startRelease(tw.client, release(env, '1.1.0', { staleAfter: '15s', maxClockSkew: '5s' }), { taskQueue: tw.taskQueue })).result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded', status.error);
    const gate = status.gates.find((g) => g.gate === 'converged')!;
    assert.match(gate.reason, new RegExp(`^2/2 nodes converged \\(100%, need 100%\\), 0 lagging, 0 failed, 1 stale node \\(no successful run in 15s; not counted\\); stale: ${dead}$`));
    const [off] = await fleet.list({ names: [dead] });
    assert.equal(off!.lastSuccess?.versions?.[cookbook], '1.0.0', 'the switched-off node never ran the new version');
  });

  it('a node whose clock is 60 s ahead does not fail the gate', async () => {
    const { env, nodes } = await fleetOn(2);
    const ahead = (await fleet.add({ environment: env, prefix: `${prefix}-${env}-ahead`, count: 1, runList: [`recipe[${cookbook}]`], intervalMs: 1000, splayMs: 1500, skewMs: 60_000, convergeMs: 1_500 })).added;
    await fleet.waitForVersion({ names: ahead }, cookbook, '1.0.0');
    const status = (await (await startRelease(tw.client, release(env, '1.1.0'), { taskQueue: tw.taskQueue })).result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded', status.error);
    assert.match(status.gates[0]!.reason, /^3\/3 nodes converged/);
    for (const n of await fleet.list({ names: [...nodes, ...ahead] })) assert.equal(n.lastSuccess?.versions?.[cookbook], '1.1.0', n.name);
    const [skewed] = await fleet.list({ names: ahead });
    assert.equal(skewed!.skewMs, 60_000);
  });
});
