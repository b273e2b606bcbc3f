/**
 * The Chef convergence gate's poll over a simulated fleet, against the stack's goiardi and fleet
 * simulator (CHEF_SERVER_URL, CHEF_CLIENT_NAME, CHEF_CLIENT_KEY, FLEET_URL):
 *
 *   1. registers N nodes through the simulator (`nodes add`: a key, a client and a node each, then
 *      a first chef-client run: depsolve, cookbook files, node save, run reports) and waits until
 *      every node has run and the search index shows them all;
 *   2. times one gate poll (node search + run reports + classification) per search mode, median
 *      of `repeats`, next to the figure before the simulator existed (0.72 s for 5,000 nodes with
 *      seeded node objects, one search, no run reports);
 *   3. measures the simulator's and goiardi's CPU and memory while the N nodes idle at
 *      chef-client's default interval (30 min, splay 5 min) for `idleSeconds`, then the CPU per
 *      run (up to 500 of the nodes every 30-40 s) and what that makes for N nodes at 30 min;
 *   4. prints the classification of 200,000 nodes on its own (the worker's share of a poll).
 *
 *   node test/bench/chef-convergence.ts [sizes, default 5000] [repeats, default 3] [idleSeconds, default 60]
 *   BENCH_KEEP_FLEET=1 keeps the nodes (and reuses them next time: registration takes minutes)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeChefPools } from '../../activities/chef/client.ts';
import { checkConvergence, classifyNodes, newPollMemory, searchNodeFacts, type NodeFacts, type SearchMode } from '../../activities/chef/convergence.ts';
import { FleetApi } from '../../scripts/fleet/api.ts';
import { stackDir } from '../../scripts/lib/paths.ts';
import { adminClient, createEnvironment, deleteEnvironment, uploadCookbook, waitForIndexed } from '../support/chef-fixtures.ts';
import { loadAverage, median, note, printTable } from './lib.ts';

const sizes = (process.argv[2] ?? '5000').split(',').map(Number);
const repeats = Number(process.argv[3] ?? 3);
const idleSeconds = Number(process.argv[4] ?? 60);
const keep = !!process.env.BENCH_KEEP_FLEET;
const PREVIOUS: Record<number, string> = { 5000: '0.72 s' };

const client = adminClient();
const fleet = new FleetApi();
const cookbook = 'bench_gateway';
const cookbooks = { [cookbook]: '~> 1.0' };

/** utime + stime of a process, seconds, and its RSS, from /proc. */
function procUsage(pid: number): { cpu: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = 100; // USER_HZ on Linux
  const rssPages = Number(f[21]);
  return { cpu: (Number(f[11]) + Number(f[12])) / ticks, rssMiB: (rssPages * 4096) / 2 ** 20 };
}

/** The pid of a stack service: its process group leader, recorded by `stack up` (goiardi and node run as the leader). */
function servicePid(name: string): number {
  const state = JSON.parse(readFileSync(join(stackDir, 'state.json'), 'utf8')) as Record<string, { pid: number }>;
  const pid = state[name]?.pid;
  if (!pid) throw new Error(`the stack has no ${name} service running: npm run stack -- up`);
  return pid;
}

const polls: (string | number)[][] = [];
const costs: (string | number)[][] = [];
const steady: (string | number)[][] = [];
const created: { env: string; prefix: string }[] = [];

try {
  await uploadCookbook(client, cookbook, '1.0.0', { recipe: 'package "haproxy"\nservice "haproxy"\n' });
  for (const n of sizes) {
    const env = `hr-bench-fleet-${n}`;
    const prefix = `bench${n}`;
    if (!keep) created.push({ env, prefix });
    const existing = await fleet.list({ prefix: `${prefix}-` });
    let registerS: number | string = 'reused';
    if (existing.length !== n) {
      if (existing.length) await fleet.remove({ prefix: `${prefix}-` });
      await deleteEnvironment(client, env);
      await createEnvironment(client, env, { [cookbook]: '= 1.0.0' });
      const t0 = performance.now();
      note(`registering ${n} nodes through the fleet simulator…`);
      await fleet.add({ environment: env, count: n, prefix, runList: [`recipe[${cookbook}]`] });
      note(`registered in ${((performance.now() - t0) / 1000).toFixed(0)} s; waiting for every first run`);
      await fleet.waitFor({ prefix: `${prefix}-` }, `a successful first run on all ${n} nodes`, (ns) => ns.length === n && ns.every((x) => x.lastSuccess), 3_600_000);
      registerS = ((performance.now() - t0) / 1000).toFixed(0);
    }
    await fleet.waitFor({ prefix: `${prefix}-` }, `a successful run on all ${n} nodes`, (ns) => ns.length === n && ns.every((x) => x.lastSuccess), 3_600_000);
    await waitForIndexed(client, env, n, 600_000);
    const since = Date.now() - 3 * 3_600_000;

    for (const mode of ['auto', 'partial-unpaged', 'full'] as const) {
      const times: number[] = [];
      const classify: number[] = [];
      let requests = 0;
      let used = '';
      let status = '';
      // warm-up: connections, and what the server supports is learnt (the other modes reuse both)
      if (mode === 'auto') await checkConvergence(client, env, cookbooks, since, { minPercent: 100 });
      // full search pages through whole node objects: minutes for thousands of nodes on goiardi, so once
      for (let r = 0; r < (mode === 'full' ? 1 : repeats); r++) {
        const t0 = performance.now();
        if (mode === 'auto') {
          // the gate's whole poll: node search and run reports side by side, then the verdict
          const outcome = await checkConvergence(client, env, cookbooks, since, { minPercent: 100 }, undefined, newPollMemory());
          times.push(performance.now() - t0);
          status = outcome.status;
        } else {
          const found = await searchNodeFacts(client, env, [cookbook], { mode: mode as SearchMode });
          const t1 = performance.now();
          const o = classifyNodes(found.nodes, cookbooks, since);
          classify.push(performance.now() - t1);
          times.push(performance.now() - t0);
          requests = found.requests;
          used = mode;
          status = o.converged === n ? 'all converged' : `${o.converged}/${n} converged`;
        }
      }
      if (mode === 'auto') {
        const found = await searchNodeFacts(client, env, [cookbook]); // the mode the poll used, learnt in the warm-up
        used = found.mode;
        requests = found.requests + 1;
      }
      polls.push([n, mode === 'auto' ? `gate poll (search ${used} + run reports)` : `search ${used} only${mode === 'full' ? ' (1 run)' : ''}`, requests, (median(times) / 1000).toFixed(2), mode === 'auto' ? (PREVIOUS[n] ?? '-') : '', status]);
    }

    // idle cost: N nodes at chef-client's default 30 min interval (+ up to 5 min splay)
    if (idleSeconds > 0) {
      const fleetPid = servicePid('fleet');
      const chefPid = servicePid('chef');
      const before = { fleet: procUsage(fleetPid), chef: procUsage(chefPid), runs: (await fleet.stats()).runs };
      note(`measuring ${idleSeconds} s of ${n} idle nodes…`);
      await new Promise((r) => setTimeout(r, idleSeconds * 1000));
      const after = { fleet: procUsage(fleetPid), chef: procUsage(chefPid), runs: (await fleet.stats()).runs };
      const runs = after.runs - before.runs;
      costs.push([
        n,
        registerS,
        `${((100 * (after.fleet.cpu - before.fleet.cpu)) / idleSeconds).toFixed(1)}%`,
        after.fleet.rssMiB.toFixed(0),
        `${((100 * (after.chef.cpu - before.chef.cpu)) / idleSeconds).toFixed(1)}%`,
        after.chef.rssMiB.toFixed(0),
        (runs / idleSeconds).toFixed(2),
      ]);

      // steady state: CPU per chef-client run, from a sample run at a short interval, scaled to
      // N nodes at 30 min (the runs of an idle fleet are spread over its interval)
      const sample = (await fleet.list({ prefix: `${prefix}-` })).slice(0, Math.min(n, 500)).map((x) => x.name);
      await fleet.fault({ names: sample, intervalMs: 30_000, splayMs: 10_000 });
      try {
        await new Promise((r) => setTimeout(r, 15_000)); // past the first burst
        const b0 = { fleet: procUsage(fleetPid), chef: procUsage(chefPid), runs: (await fleet.stats()).runs };
        note(`measuring ${idleSeconds} s of ${sample.length} nodes running every 30-40 s…`);
        await new Promise((r) => setTimeout(r, idleSeconds * 1000));
        const b1 = { fleet: procUsage(fleetPid), chef: procUsage(chefPid), runs: (await fleet.stats()).runs };
        const sampled = b1.runs - b0.runs;
        const perRun = { fleet: (1000 * (b1.fleet.cpu - b0.fleet.cpu)) / sampled, chef: (1000 * (b1.chef.cpu - b0.chef.cpu)) / sampled };
        const perSecond = n / 1950; // 30 min + half the 5 min splay
        steady.push([n, sampled, perRun.fleet.toFixed(1), perRun.chef.toFixed(1), perSecond.toFixed(2), `${((perRun.fleet * perSecond) / 10).toFixed(1)}%`, `${((perRun.chef * perSecond) / 10).toFixed(1)}%`]);
      } finally {
        await fleet.fault({ names: sample, intervalMs: 30 * 60_000, splayMs: 5 * 60_000 });
      }
    }
  }

  // the worker's share of a poll, alone: classification of 200,000 nodes (was a unit test's bound)
  const PIN = Date.now() / 1000 - 60;
  const big: NodeFacts[] = Array.from({ length: 200_000 }, (_, i) => ({ name: `n${i}`, ohaiTime: i % 3 ? PIN + 30 : PIN - 3600, versions: { [cookbook]: '1.3.0' } }));
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    classifyNodes(big, cookbooks, PIN * 1000);
    times.push(performance.now() - t0);
  }

  console.log(`\nChef convergence gate: one poll (median of ${repeats}) against ${client.serverUrl}; load average ${loadAverage()}\n`);
  printTable(['nodes', 'what', 'requests', 's / poll', 'before the simulator', 'result'], polls);
  if (costs.length) {
    console.log(`\nFleet at idle (chef-client's default interval 30m + splay 5m), over ${idleSeconds} s; CPU in % of one core\n`);
    printTable(['nodes', 'registration s', 'fleet CPU', 'fleet RSS MiB', 'goiardi CPU', 'goiardi RSS MiB', 'runs / s'], costs);
    console.log(`\nSteady state: CPU ms per chef-client run (a sample of the nodes every 30-40 s, over ${idleSeconds} s), and for all nodes at 30m + splay 5m\n`);
    printTable(['nodes', 'sampled runs', 'fleet ms / run', 'goiardi ms / run', 'runs / s at 30m', 'fleet CPU', 'goiardi CPU'], steady);
  }
  console.log(`\nclassification alone: 200,000 nodes in ${median(times).toFixed(0)} ms (median of 5)`);
} finally {
  for (const { env, prefix } of created) {
    await fleet.remove({ prefix: `${prefix}-` }).catch((e: Error) => note(`fleet remove: ${e.message}`));
    await deleteEnvironment(client, env);
  }
  await closeChefPools();
}
