/**
 * N releases of distinct apps at once, through Temporal and directly, side by side in one run.
 *
 * - The worker is its own process, started as production starts it (`node worker/main.ts`,
 *   configured by environment variables; HR_* knobs set for this script pass through to it), so
 *   its CPU and memory come from /proc and never include this harness or the stack's servers.
 * - **direct**: the same activity functions, in the workflow's order, called by this script (an
 *   activity Context from MockActivityEnvironment), N releases at once, never more activity calls
 *   at a time than the worker's activity slots (HR_MAX_CONCURRENT_ACTIVITIES, default 100): the
 *   same servers under the same concurrency, without Temporal.
 * - **workflow**: the same N worlds released again (NEW -> NEXT) through the worker.
 * - **shared environment** (issue #15): S more apps whose Chef pins all live in ONE environment
 *   (each app its own cookbook), through the worker. With leases (branch `shared`) they queue for
 *   the environment; without them they race its read-modify-write, and the pins left at the end
 *   tell whether any was lost.
 *
 * Each release: admission, preflight (Chef, Flux, canary side by side), Chef pin, Flux pin,
 * fluxReady gate (the real kustomize-controller applies the tag and health-checks the rollout on
 * kwok), canary 10%, canary 100%. kustomize-controller runs with its default concurrency (4).
 *
 * Ends with: concurrent-releases: n=N ok=K p50-ratio=R p99/p50=Q worker-rss-peak=M MiB wft-timeouts=T
 *
 *   node test/bench/concurrent-releases.ts [n, default 100]     (needs the stack: .stack/env)
 *   BENCH_SHARED=S (default min(n, 20); 0 skips it)   BENCH_CPU_PROF=1 (worker --cpu-prof into .stack/bench/)
 */
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Info } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mockInfo } from '../support/policy.ts'; // also writes the open test policy and sets HR_POLICY_FILE for the worker process
import { requireEnv, uniqueName } from '../support/env.ts';
import { admitRelease } from '../../activities/admission/index.ts';
import { chefPin, chefPreflight, chefSnapshot } from '../../activities/chef/index.ts';
import { fluxPin, fluxPreflight, fluxReadyGate, fluxSnapshot } from '../../activities/flux/index.ts';
import { canaryPreflight, canarySnapshot, setCanaryWeight } from '../../activities/kube/index.ts';
import { closeChefPools, seg } from '../../activities/chef/client.ts';
import { startRelease } from '../../client/releases.ts';
import { gateTiming, type ReleaseInput } from '../../release-spec/plan.ts';
import type { ReleaseStatus } from '../../workflows/messages.ts';
import { activityTimings, Bench, eventCounts, historyTimings, loadAverage, mapLimit, mib, ms, NEW, NEXT, note, OLD, printTable, quantile, quietLogger } from './lib.ts';
import { sampleProcess, scrapeMetrics, stackCpu, startWorkerProcess } from './procs.ts';

const N = Number(process.argv[2] ?? process.env.BENCH_RELEASES ?? 100);
const S = Number(process.env.BENCH_SHARED ?? Math.min(N, 20));
const ACTIVITY_SLOTS = Number(process.env.HR_MAX_CONCURRENT_ACTIVITIES ?? 100);

const outDir = join(import.meta.dirname, '..', '..', '.stack', 'bench');
mkdirSync(outDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');

const gates = { ready: { fluxReady: { target: 'web' }, timeout: '10m', interval: '1s' } };
const steps = [{ chef: 'vms' }, { flux: 'web' }, { gate: 'ready' }, { setWeight: 10 }, { setWeight: 100 }];

const bench = new Bench('concurrent');
await bench.setUp();
await bench.uploadCookbook(bench.cookbook, [NEXT]);

const taskQueue = uniqueName('hr-bench');
const metricsAddress = `127.0.0.1:${20000 + Math.floor(Math.random() * 20000)}`;
const lagFile = join(outDir, `lag-${stamp}.json`);
const worker = await startWorkerProcess({
  taskQueue,
  logFile: join(outDir, `worker-${stamp}.log`),
  env: { HR_METRICS_ADDRESS: metricsAddress, BENCH_LAG_FILE: lagFile },
  nodeArgs: ['--import', join(import.meta.dirname, 'loop-lag.ts'), ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', outDir] : [])],
});
note(`worker process ${worker.pid} on task queue ${taskQueue} (log ${worker.logFile})`);
const connection = await Connection.connect({ address: requireEnv('TEMPORAL_ADDRESS') });
const client = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
const workerProc = sampleProcess(worker.pid, 200);

// ------------------------------------------------------------------------------------ the two paths

type Handle = Awaited<ReturnType<typeof startRelease>>;

async function viaWorkflow(input: ReleaseInput, t0: number, handles: Handle[]): Promise<number> {
  const handle = await startRelease(client, input, { taskQueue });
  handles.push(handle);
  const status = (await handle.result()) as ReleaseStatus;
  if (status.phase !== 'Succeeded') throw new Error(`release of ${input.spec.spec.app} ended ${status.phase}: ${status.error}`);
  return performance.now() - t0;
}

/** At most `limit` activity calls at a time, like the worker's activity slots. */
function limiter(limit: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <R>(fn: () => Promise<R>): Promise<R> => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}
const slot = limiter(ACTIVITY_SLOTS);

let tokens = 0;
/** The workflow's activity calls in its order, for one release, made by this script. */
async function direct(input: ReleaseInput, t0: number): Promise<number> {
  const app = input.spec.spec.app;
  const info: Partial<Info> = mockInfo({ workflowExecution: { workflowId: `release-${app}`, runId: `direct-${++tokens}` } });
  const act = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => slot(() => new MockActivityEnvironment(info, { logger: quietLogger }).run(fn, ...args));
  const admitted = await act(admitRelease, input);
  const { chef: [chef], flux: [flux], canary } = admitted.spec.spec;
  const ingress = canary!.ingress;
  const timing = gateTiming(admitted.spec.spec.gates.ready!);
  await Promise.all([act(chefPreflight, chef!), act(fluxPreflight, flux!), act(canaryPreflight, ingress)]);
  await act(chefSnapshot, chef!);
  await act(chefPin, chef!);
  await act(fluxSnapshot, flux!);
  const { written } = await act(fluxPin, { target: flux!, token: `direct-${process.pid}-${tokens}` });
  const gate = await act(fluxReadyGate, { gate: 'ready', target: flux!, ...written, timeoutMs: timing.timeoutMs, intervalMs: timing.intervalMs });
  if (!gate.ok) throw new Error(`direct release of ${app}: gate failed: ${gate.reason}`);
  await act(canarySnapshot, ingress);
  await act(setCanaryWeight, { ingress, weight: 10 });
  await act(setCanaryWeight, { ingress, weight: 100 });
  return performance.now() - t0;
}

// ------------------------------------------------------------------------------------ measuring a burst

interface Burst {
  label: string;
  n: number;
  done: number[];
  failed: string[];
  wallMs: number;
  load: string;
  worker: { cpuS: number; peakRss: number };
  /** this harness process's CPU: the direct path's activity work, or the client's work for the workflow path */
  harnessCpuS: number;
  services: { name: string; cpuS: number }[];
  lag?: { p50: number; p99: number; max: number };
  slotsMin?: Record<string, number>;
  handles: Handle[];
}

async function burst(label: string, n: number, run: (t0: number, handles: Handle[]) => Promise<number>[]): Promise<Burst> {
  note(`${label}: ${n} releases at once`);
  global.gc?.();
  writeFileSync(`${lagFile}.reset`, String(Date.now()));
  await new Promise((r) => setTimeout(r, 1_500)); // the lag monitor sees the reset
  workerProc.mark();
  const cpu = stackCpu();
  const harness0 = process.cpuUsage();
  const handles: Handle[] = [];
  const slotsMin: Record<string, number> = {};
  const scraper = setInterval(() => {
    scrapeMetrics(metricsAddress)
      .then((m) => {
        for (const [k, v] of m) {
          if (!k.startsWith('temporal_worker_task_slots_available')) continue;
          const type = /worker_type="([^"]+)"/.exec(k)?.[1] ?? k;
          slotsMin[type] = Math.min(slotsMin[type] ?? Infinity, v);
        }
      })
      .catch(() => undefined);
  }, 1_000);
  const t0 = performance.now();
  const results = await Promise.allSettled(run(t0, handles));
  const wallMs = performance.now() - t0;
  clearInterval(scraper);
  const w = workerProc.read();
  const hc = process.cpuUsage(harness0);
  const lag = existsSync(lagFile) ? (JSON.parse(readFileSync(lagFile, 'utf8')) as Burst['lag']) : undefined;
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
  for (const f of failed.slice(0, 5)) console.error(`${label} failed: ${f}`);
  const done = results.filter((r): r is PromiseFulfilledResult<number> => r.status === 'fulfilled').map((r) => r.value);
  note(`${label}: ${done.length}/${n} ok in ${ms(wallMs)} ms, p50 ${done.length ? ms(quantile(done, 0.5)) : '-'} ms`);
  return { label, n, done, failed, wallMs, load: loadAverage(), worker: { cpuS: w.cpuS, peakRss: w.peakRss }, harnessCpuS: (hc.user + hc.system) / 1e6, services: cpu(), ...(lag ? { lag } : {}), slotsMin, handles };
}

/** Where a burst's time went, from its releases' histories. */
async function historyFigures(b: Burst) {
  const histories = await mapLimit(b.handles, 10, (h) => h.fetchHistory());
  const events = histories.map((h) => h.events ?? []);
  const acts = events.flatMap(activityTimings);
  const counts = events.map(eventCounts);
  const sum = (k: string) => counts.reduce((n, c) => n + (c[k] ?? 0), 0);
  return {
    acts,
    wf: events.map(historyTimings),
    bytes: histories.map((h) => Buffer.byteLength(historyToJSON(h))),
    wftTimeouts: sum('WorkflowTaskTimedOut'),
    wftFailed: sum('WorkflowTaskFailed'),
    actTimeouts: sum('ActivityTaskTimedOut'),
  };
}

const row = (b: Burst, alone: number) => {
  const d = b.done;
  const q = (p: number) => (d.length ? ms(quantile(d, p)) : '-');
  return [b.label, b.n, d.length, b.failed.length, d.length ? ms(Math.min(...d)) : '-', q(0.5), q(0.9), q(0.99), d.length ? ms(Math.max(...d)) : '-', ms(alone), (d.length / (b.wallMs / 1000)).toFixed(2), b.load];
};

// ------------------------------------------------------------------------------------ the run

try {
  const s0 = performance.now();
  const apps = await bench.seedMany('cr', N + 1 + (S > 0 ? S : 0), { environments: false });
  const distinct = apps.slice(0, N + 1);
  const shared = S > 0 ? apps.slice(N + 1) : [];
  await mapLimit(distinct, 16, (name) => bench.createEnvironment(name, { [bench.cookbook]: `= ${OLD}` }));
  const sharedEnv = `${bench.ns}-shared`.replace(/-/g, '_');
  const sharedCookbook = (i: number) => `${bench.cookbook}_s${i}`;
  if (S > 0) {
    await mapLimit(shared, 4, (_name, i) => bench.uploadCookbook(sharedCookbook(i), [OLD, NEW]));
    await bench.createEnvironment(sharedEnv, Object.fromEntries(shared.map((_n, i) => [sharedCookbook(i), `= ${OLD}`])));
  }
  note(`seeded ${apps.length} worlds in ${ms(performance.now() - s0)} ms (${N + 1} with their own Chef environment, ${shared.length} sharing ${sharedEnv})`);

  // one release alone on each path: warms up (bundle, connections, key cache) and is the uncontended baseline
  const aloneApp = distinct.pop()!;
  const aloneDirect = await direct(bench.release(aloneApp, { gates, steps }), performance.now());
  const aloneWorkflow = await viaWorkflow(bench.release(aloneApp, { gates, steps }, { version: NEXT }), performance.now(), []);
  note(`alone: direct ${ms(aloneDirect)} ms, workflow ${ms(aloneWorkflow)} ms`);

  const d = await burst('direct', N, (t0) => distinct.map((app) => direct(bench.release(app, { gates, steps }), t0)));
  const w = await burst('workflow', N, (t0, hs) => distinct.map((app) => viaWorkflow(bench.release(app, { gates, steps }, { version: NEXT }), t0, hs)));
  const sh = S > 0 ? await burst('workflow, shared env', S, (t0, hs) => shared.map((app, i) => viaWorkflow(bench.release(app, { gates, steps }, { environment: sharedEnv, cookbook: sharedCookbook(i) }), t0, hs))) : undefined;

  let pinsKept = '';
  if (sh) {
    const env = await bench.chef.get<{ cookbook_versions?: Record<string, string> }>(`environments/${seg(sharedEnv)}`, { object: `environment ${sharedEnv}` });
    const kept = shared.filter((_n, i) => env.cookbook_versions?.[sharedCookbook(i)] === `= ${NEW}`).length;
    pinsKept = `${kept}/${S} pins present in ${sharedEnv} at the end (${sh.done.length} releases reported success)`;
  }

  const wh = await historyFigures(w);
  const shh = sh ? await historyFigures(sh) : undefined;

  console.log(`\nconcurrent-releases: ${N} releases of distinct apps at once, direct then through the worker process; ${S} apps sharing one Chef environment`);
  console.log('each: admission, preflight, chef pin, flux apply + fluxReady gate, canary 10%, canary 100% (11 activity calls)');
  console.log(`direct calls limited to ${ACTIVITY_SLOTS} at a time (the worker's activity slots); worker tuning: ${Object.entries(process.env).filter(([k]) => /^HR_(MAX_|WORKFLOW_|ACTIVITY_|REUSE|TUNER|MAX_CACHED)/.test(k)).map(([k, v]) => `${k}=${v}`).join(' ') || 'shipped defaults'}\n`);
  console.log('completion time from all starts sent (ms)');
  printTable(['path', 'n', 'ok', 'failed', 'min', 'p50', 'p90', 'p99', 'max', 'alone', 'rel/s', 'load avg after'], [row(d, aloneDirect), row(w, aloneWorkflow), ...(sh ? [row(sh, aloneWorkflow)] : [])]);
  if (pinsKept) console.log(`shared environment: ${pinsKept}`);

  console.log('\nCPU seconds over each burst (from /proc; the worker process alone, the stack services by process group)');
  const names = [...new Set([...d.services, ...w.services].filter((s) => s.cpuS >= 0.5).map((s) => s.name))];
  const cpuOf = (b: Burst, name: string) => (b.services.find((s) => s.name === name)?.cpuS ?? 0).toFixed(1);
  printTable(
    ['process', 'direct', 'workflow', ...(sh ? ['shared env'] : [])],
    [
      ['worker process', d.worker.cpuS.toFixed(1), w.worker.cpuS.toFixed(1), ...(sh ? [sh.worker.cpuS.toFixed(1)] : [])],
      ['harness (direct: the activities)', d.harnessCpuS.toFixed(1), w.harnessCpuS.toFixed(1), ...(sh ? [sh.harnessCpuS.toFixed(1)] : [])],
      ...names.map((nm) => [nm, cpuOf(d, nm), cpuOf(w, nm), ...(sh ? [cpuOf(sh, nm)] : [])]),
      ['wall s', (d.wallMs / 1000).toFixed(1), (w.wallMs / 1000).toFixed(1), ...(sh ? [(sh.wallMs / 1000).toFixed(1)] : [])],
    ],
  );
  console.log(`worker CPU per release ${(w.worker.cpuS / Math.max(1, w.done.length)).toFixed(2)} s; worker RSS peak ${mib(w.worker.peakRss)} MiB (direct burst: ${mib(d.worker.peakRss)} idle)`);
  if (w.lag) console.log(`worker event-loop delay over the workflow burst: p50 ${w.lag.p50} ms, p99 ${w.lag.p99} ms, max ${w.lag.max} ms`);
  console.log(`worker slots available, minimum seen (SDK metrics, every 1 s): ${Object.entries(w.slotsMin ?? {}).map(([k, v]) => `${k} ${v}`).join(', ') || 'n/a'}`);

  const types = [...new Set(wh.acts.map((a) => a.type))];
  console.log('\nper activity type over the workflow burst (ms): queued = scheduled -> picked up by the worker (schedule-to-start), run = started -> closed');
  printTable(
    ['activity', 'count', 'queued p50', 'queued p90', 'queued p99', 'run p50', 'run p90', 'retried'],
    types.map((type) => {
      const xs = wh.acts.filter((a) => a.type === type);
      const q = (k: 'queuedMs' | 'runMs', p: number) => ms(quantile(xs.map((x) => x[k]), p));
      return [type, xs.length, q('queuedMs', 0.5), q('queuedMs', 0.9), q('queuedMs', 0.99), q('runMs', 0.5), q('runMs', 0.9), xs.filter((x) => x.attempt > 1).length];
    }),
  );
  const q = (k: 'inWorkflowTasksMs' | 'dispatchMs' | 'workflowTasks' | 'events', p: number) => ms(quantile(wh.wf.map((x) => x[k]), p));
  console.log(`per release: ${q('events', 0.5)} events, ${(quantile(wh.bytes, 0.5) / 1024).toFixed(1)} KiB history, ${q('workflowTasks', 0.5)} workflow tasks; time inside them p50 ${q('inWorkflowTasksMs', 0.5)} ms, p90 ${q('inWorkflowTasksMs', 0.9)} ms;`);
  console.log(`time tasks waited to be picked up (workflow + activity, summed) p50 ${q('dispatchMs', 0.5)} ms, p90 ${q('dispatchMs', 0.9)} ms`);
  console.log(`workflow tasks timed out: ${wh.wftTimeouts} (shared env: ${shh?.wftTimeouts ?? '-'}), failed: ${wh.wftFailed}; activity tasks timed out: ${wh.actTimeouts}`);
  console.log(`\nload average at the end ${loadAverage()} (${os.cpus().length} CPUs)`);

  const p50 = w.done.length ? quantile(w.done, 0.5) : NaN;
  const ratio = p50 / (d.done.length ? quantile(d.done, 0.5) : NaN);
  const p99 = w.done.length ? quantile(w.done, 0.99) : NaN;
  if (sh) console.log(`concurrent-releases (shared env): n=${S} ok=${sh.done.length} p50=${ms(quantile(sh.done.length ? sh.done : [NaN], 0.5))} ms p99/p50=${(quantile(sh.done.length ? sh.done : [NaN], 0.99) / quantile(sh.done.length ? sh.done : [NaN], 0.5)).toFixed(2)} wft-timeouts=${shh!.wftTimeouts}`);
  console.log(`concurrent-releases: n=${N} ok=${w.done.length} p50-ratio=${ratio.toFixed(2)} p99/p50=${(p99 / p50).toFixed(2)} worker-rss-peak=${mib(w.worker.peakRss).replace(/\.\d$/, '')} MiB wft-timeouts=${wh.wftTimeouts}`);
  if (w.failed.length > 0 || d.failed.length > 0) process.exitCode = 1;
} finally {
  const timer = setInterval(() => {}, 1_000);
  try {
    workerProc.stop();
    await worker.stop();
    await connection.close();
    await bench.tearDown();
    await closeChefPools();
  } finally {
    clearInterval(timer);
  }
}
