/**
 * The orchestration ceiling: what Temporal + the worker cost per release when the world costs
 * nothing but a fixed latency. Worker processes (test/bench/fake-worker.ts: worker/main.ts's
 * registration and HR_* tuning, activities from the in-memory world, BENCH_LATENCY_MS per call)
 * run the release workflow of test/bench/concurrent-releases.ts's shape (admission, preflight,
 * chef, flux, fluxReady gate, canary 10%, canary 100%). The harness keeps C releases in flight
 * (a new one starts when one ends) for a warm-up and then a measured window, and prints releases
 * per second over the window, the workers' and the dev server's CPU per release, latency, and the
 * workflow-task timeouts of a sample of histories; for 1 and for 2 worker processes on one task queue.
 *
 *   node test/bench/orchestration-ceiling.ts [workers=1,2] [seconds=60] [inFlight=50]   (needs the stack's Temporal)
 *   BENCH_LATENCY_MS (default 20)
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { Client, Connection } from '@temporalio/client';
import '../support/policy.ts'; // writes the open test policy and sets HR_POLICY_FILE for the worker processes
import { requireEnv, uniqueName } from '../support/env.ts';
import { worldRelease } from '../support/fake-world.ts';
import { startRelease } from '../../client/releases.ts';
import type { ReleaseStatus } from '../../workflows/messages.ts';
import { eventCounts, historyTimings, loadAverage, mapLimit, mib, ms, note, printTable, quantile } from './lib.ts';
import { sampleProcess, stackCpu, startWorkerProcess } from './procs.ts';

const workerCounts = (process.argv[2] ?? '1,2').split(',').map(Number);
const windowS = Number(process.argv[3] ?? 60);
const inFlight = Number(process.argv[4] ?? 50);
const warmupS = 10;
const latencyMs = Number(process.env.BENCH_LATENCY_MS ?? 20);

const outDir = join(import.meta.dirname, '..', '..', '.stack', 'bench');
mkdirSync(outDir, { recursive: true });
const connection = await Connection.connect({ address: requireEnv('TEMPORAL_ADDRESS') });
const client = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });

const gates = { ready: { fluxReady: { target: 'storefront' }, timeout: '5m', interval: '1s' } };
const steps = [{ chef: 'production' }, { flux: 'storefront' }, { gate: 'ready' }, { setWeight: 10 }, { setWeight: 100 }];
const release = (app: string) => worldRelease(app, { canary: { ingress: { namespace: 'web', name: 'storefront-canary' } }, gates, steps });

interface Row {
  workers: number;
  completed: number;
  failed: number;
  perS: number;
  p50: number;
  p99: number;
  workerCpuS: number;
  temporalCpuS: number;
  rssPeak: number;
  wftTimeouts: number;
  events: number;
  wfTasks: number;
  load: string;
}

async function measure(k: number): Promise<Row> {
  const taskQueue = uniqueName('hr-ceiling');
  const workers = await Promise.all(
    Array.from({ length: k }, (_, i) => startWorkerProcess({ taskQueue, script: join(import.meta.dirname, 'fake-worker.ts'), logFile: join(outDir, `ceiling-${taskQueue}-${i}.log`), env: { BENCH_LATENCY_MS: String(latencyMs) } })),
  );
  const samplers = workers.map((w) => sampleProcess(w.pid, 200));
  const prefix = uniqueName(`c${k}`);
  let seq = 0;
  let stopAt = Infinity;
  const t0 = performance.now();
  const windowStart = t0 + warmupS * 1000;
  const windowEnd = windowStart + windowS * 1000;
  const inWindow: number[] = [];
  const handles: Awaited<ReturnType<typeof startRelease>>[] = [];
  let failed = 0;
  let cpu: ReturnType<typeof stackCpu> | undefined;
  note(`${k} worker process(es): warm-up ${warmupS} s, then ${windowS} s measured with ${inFlight} releases in flight`);
  const marker = setTimeout(() => {
    for (const s of samplers) s.mark();
    cpu = stackCpu();
  }, warmupS * 1000);
  let measured: { workerCpuS: number; temporalCpuS: number; rssPeak: number } | undefined;
  const ender = setTimeout(() => {
    const reads = samplers.map((s) => s.read());
    const services = cpu?.() ?? [];
    measured = { workerCpuS: reads.reduce((n, r) => n + r.cpuS, 0), temporalCpuS: services.find((s) => s.name === 'temporal')?.cpuS ?? NaN, rssPeak: Math.max(...reads.map((r) => r.peakRss)) };
    stopAt = 0;
  }, (warmupS + windowS) * 1000);
  const loop = async () => {
    while (performance.now() < windowEnd && stopAt > 0) {
      const started = performance.now();
      try {
        const handle = await startRelease(client, release(`${prefix}-${++seq}`), { taskQueue });
        const status = (await handle.result()) as ReleaseStatus;
        if (status.phase !== 'Succeeded') throw new Error(status.error);
        const end = performance.now();
        if (started >= windowStart && end <= windowEnd) handles.push(handle);
        if (end >= windowStart && end <= windowEnd) inWindow.push(end - started);
      } catch (err) {
        failed++;
        if (failed <= 3) console.error(`release failed: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  clearTimeout(marker);
  clearTimeout(ender);
  const sample = handles.filter((_, i) => i % Math.max(1, Math.floor(handles.length / 50)) === 0).slice(0, 50);
  const histories = await mapLimit(sample, 10, async (h) => (await h.fetchHistory()).events ?? []);
  for (const s of samplers) s.stop();
  await Promise.all(workers.map((w) => w.stop()));
  const m = measured!;
  return {
    workers: k,
    completed: inWindow.length,
    failed,
    perS: inWindow.length / windowS,
    p50: quantile(inWindow, 0.5),
    p99: quantile(inWindow, 0.99),
    ...m,
    wftTimeouts: histories.map(eventCounts).reduce((n, c) => n + (c.WorkflowTaskTimedOut ?? 0), 0),
    events: quantile(histories.map((h) => h.length), 0.5),
    wfTasks: quantile(histories.map((h) => historyTimings(h).workflowTasks), 0.5),
    load: loadAverage(),
  };
}

const rows: Row[] = [];
try {
  for (const k of workerCounts) rows.push(await measure(k));
  console.log(`\norchestration-ceiling: the release shape of concurrent-releases against an in-memory world, ${latencyMs} ms per activity call;`);
  console.log(`${inFlight} releases kept in flight; ${windowS} s measured after ${warmupS} s of warm-up; CPU from /proc over the window\n`);
  printTable(
    ['workers', 'completed', 'failed', 'rel/s', 'p50 ms', 'p99 ms', 'worker CPU s', 'worker CPU/rel ms', 'dev server CPU/rel ms', 'worker RSS peak MiB', 'events', 'wf tasks', 'wft timeouts (sample)', 'load avg after'],
    rows.map((r) => [r.workers, r.completed, r.failed, r.perS.toFixed(2), ms(r.p50), ms(r.p99), r.workerCpuS.toFixed(1), ms((r.workerCpuS / Math.max(1, r.completed)) * 1000), ms((r.temporalCpuS / Math.max(1, r.completed)) * 1000), mib(r.rssPeak), r.events, r.wfTasks, r.wftTimeouts, r.load]),
  );
  console.log(`\n${os.cpus().length} CPUs; the dev server's CPU is the 'temporal' process group of .stack/state.json`);
  for (const r of rows) console.log(`orchestration-ceiling: workers=${r.workers} rel/s=${r.perS.toFixed(2)} worker-cpu-per-release=${ms((r.workerCpuS / Math.max(1, r.completed)) * 1000)} ms dev-server-cpu-per-release=${ms((r.temporalCpuS / Math.max(1, r.completed)) * 1000)} ms`);
} finally {
  await connection.close();
}
