/**
 * One Chef convergence poll over 500, 2,000 and 5,000 registered nodes, against the stack's
 * goiardi (CHEF_SERVER_URL, CHEF_CLIENT_NAME, CHEF_CLIENT_KEY): time per poll and per node, for
 * each search mode side by side.
 *
 *   node test/bench/chef-convergence.ts [sizes, default 500,2000,5000] [repeats, default 3]
 */
import { closeChefPools } from '../../activities/chef/client.ts';
import { classifyNodes, convergenceOutcome, searchNodeFacts, type SearchMode } from '../../activities/chef/convergence.ts';
import { adminClient, createEnvironment, deleteEnvironment, deleteNodes, registerNodes, uniqueName, waitForIndexed, type NodeSeed } from '../support/chef-fixtures.ts';

const sizes = (process.argv[2] ?? '500,2000,5000').split(',').map(Number);
const repeats = Number(process.argv[3] ?? 3);
const cookbooks = { web: '~> 1.2', api: '>= 2.0' };
const PIN_MS = Date.now() - 60_000;

const client = adminClient();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Row {
  nodes: number;
  mode: string;
  requests: number | string;
  pollMs: number | null;
  perNodeUs: number | null;
  classifyUs: number | null;
  note: string;
}
const rows: Row[] = [];
const created: { env: string; names: string[] }[] = [];

async function poll(env: string, n: number, mode: SearchMode | 'auto') {
  const t0 = performance.now();
  const found = await searchNodeFacts(client, env, Object.keys(cookbooks), mode === 'auto' ? {} : { mode });
  const t1 = performance.now();
  const observed = classifyNodes(found.nodes, cookbooks, PIN_MS);
  const outcome = convergenceOutcome(env, observed, 80);
  const t2 = performance.now();
  if (observed.total !== n) throw new Error(`${mode}: saw ${observed.total} of ${n} nodes`);
  return { ms: t2 - t0, classifyMs: t2 - t1, requests: found.requests, mode: found.mode, status: outcome.status };
}

try {
  for (const n of sizes) {
    const env = uniqueName('hr-bench');
    await createEnvironment(client, env);
    const seeds: NodeSeed[] = Array.from({ length: n }, (_, i) => ({
      name: `${env}-${String(i).padStart(5, '0')}`,
      environment: env,
      // 85% ran after the pin on the new versions, the rest before it
      ohaiTime: i % 20 < 17 ? PIN_MS / 1000 + 30 + i / 1000 : PIN_MS / 1000 - 600,
      cookbooks: i % 20 < 17 ? { web: '1.3.0', api: '2.1.0' } : { web: '1.1.0', api: '1.9.0' },
    }));
    created.push({ env, names: seeds.map((s) => s.name) });
    const t0 = performance.now();
    await registerNodes(client, seeds, 32);
    await waitForIndexed(client, env, n, 120_000);
    const setupS = (performance.now() - t0) / 1000;
    console.error(`registered ${n} nodes in ${setupS.toFixed(1)} s`);

    for (const mode of ['auto', 'partial', 'partial-unpaged', 'full'] as const) {
      const times: number[] = [];
      const classify: number[] = [];
      let requests = 0;
      let used = '';
      let note = '';
      try {
        // warm-up: connections, and what the server supports is learnt (the other modes reuse both)
        if (mode === 'auto') await poll(env, n, mode);
        for (let r = 0; r < repeats; r++) {
          const p = await poll(env, n, mode);
          times.push(p.ms);
          classify.push(p.classifyMs);
          requests = p.requests;
          used = p.mode;
          note = p.status;
        }
        const ms = median(times);
        rows.push({ nodes: n, mode: mode === 'auto' ? `auto -> ${used}` : mode, requests, pollMs: ms, perNodeUs: (ms * 1000) / n, classifyUs: (median(classify) * 1000) / n, note: `gate: ${note}` });
      } catch (err) {
        rows.push({ nodes: n, mode, requests: '-', pollMs: null, perNodeUs: null, classifyUs: null, note: `not usable: ${(err as Error).constructor.name === 'UnstablePaging' ? 'server returns pages in no stable order' : (err as Error).message.slice(0, 80)}` });
      }
    }
  }

  const header = ['nodes', 'search mode', 'requests', 'ms / poll', 'µs / node', 'classify µs / node', 'note'];
  const table = rows.map((r) => [
    String(r.nodes),
    r.mode,
    String(r.requests),
    r.pollMs === null ? '-' : r.pollMs.toFixed(1),
    r.perNodeUs === null ? '-' : r.perNodeUs.toFixed(1),
    r.classifyUs === null ? '-' : r.classifyUs.toFixed(2),
    r.note,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  console.log(`\nChef convergence: one poll (median of ${repeats}) against ${client.serverUrl}, ${Object.keys(cookbooks).length} cookbooks per node`);
  console.log('ms / poll = search + classification; classify = this worker\'s own share (the rest is the server)\n');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const t of table) console.log(line(t));
} finally {
  for (const { env, names } of created) {
    await deleteNodes(client, names, 32);
    await deleteEnvironment(client, env);
  }
  await closeChefPools();
}
