/**
 * 100 releases of distinct apps started at once on one in-process worker (the service's own
 * registration, default limits: 100 concurrent activities, 40 concurrent workflow tasks). Each
 * app has its own Chef environment, Kustomization and canary Ingress, so no two releases touch
 * the same target. Shape of each release: preflight, pin Chef, patch Flux, fluxReady gate (the
 * real kustomize-controller applies the tag and health-checks the rollout on kwok), canary 10%,
 * canary 100%. The apps share one Git repository; kustomize-controller runs with its default
 * concurrency (4 reconciles at a time), which is part of what the burst measures.
 *
 * Prints the completion-time distribution, measured from the moment all starts were sent, next to
 * one release run alone first on the same worker, and the peak memory of this process (worker,
 * and client; sampled every 100 ms) over its baseline before the burst.
 *
 *   node test/bench/concurrent-releases.ts [releases, default 100]     (needs the stack: .stack/env)
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { startRelease } from '../../client/releases.ts';
import type { ReleaseStatus } from '../../workflows/messages.ts';
import { startTestWorker } from '../support/temporal.ts';
import { activityTimings, Bench, tearDownAll, eventCounts, historyTimings, loadAverage, mapLimit, mib, ms, note, printTable, quantile, sampleMemory } from './lib.ts';

const N = Number(process.argv[2] ?? process.env.BENCH_RELEASES ?? 100);

const bench = new Bench('concurrent');
await bench.setUp();
const tw = await startTestWorker();

const gates = { ready: { fluxReady: { target: 'web' }, timeout: '5m', interval: '1s' } };
const steps = [{ chef: 'vms' }, { flux: 'web' }, { gate: 'ready' }, { setWeight: 10 }, { setWeight: 100 }];

type Handle = Awaited<ReturnType<typeof startRelease>>;
const handles: Handle[] = [];

async function runOne(name: string, t0: number): Promise<number> {
  const handle = await startRelease(tw.client, bench.release(name, { gates, steps }), { taskQueue: tw.taskQueue });
  handles.push(handle);
  const status = (await handle.result()) as ReleaseStatus;
  if (status.phase !== 'Succeeded') throw new Error(`release of ${name} ended ${status.phase}: ${status.error}`);
  return performance.now() - t0;
}

/** Where the burst's time went, per activity type, from the releases' histories. */
async function printBreakdown(): Promise<void> {
  const histories = await mapLimit(handles, 10, async (h) => (await h.fetchHistory()).events ?? []);
  const acts = histories.flatMap(activityTimings);
  const wf = histories.map(historyTimings);
  const rows = [...new Set(acts.map((a) => a.type))].map((type) => {
    const xs = acts.filter((a) => a.type === type);
    const q = (k: 'queuedMs' | 'runMs', p: number) => ms(quantile(xs.map((x) => x[k]), p));
    return [type, xs.length, q('queuedMs', 0.5), q('queuedMs', 0.9), q('runMs', 0.5), q('runMs', 0.9), xs.filter((x) => x.attempt > 1).length];
  });
  console.log('\nper activity type over the burst (ms): queued = scheduled -> picked up by the worker, run = started -> closed');
  printTable(['activity', 'count', 'queued p50', 'queued p90', 'run p50', 'run p90', 'retried'], rows);
  const counts = histories.map(eventCounts);
  const sum = (k: string) => counts.reduce((n, c) => n + (c[k] ?? 0), 0);
  console.log(`workflow tasks timed out: ${sum('WorkflowTaskTimedOut')}, failed: ${sum('WorkflowTaskFailed')}; activity tasks timed out: ${sum('ActivityTaskTimedOut')}`);
  const q = (k: 'inWorkflowTasksMs' | 'dispatchMs' | 'workflowTasks', p: number) => ms(quantile(wf.map((x) => x[k]), p));
  console.log(`per release: ${q('workflowTasks', 0.5)} workflow tasks; time inside them p50 ${q('inWorkflowTasksMs', 0.5)} ms, p90 ${q('inWorkflowTasksMs', 0.9)} ms;`);
  console.log(`time tasks waited to be picked up (workflow + activity, summed) p50 ${q('dispatchMs', 0.5)} ms, p90 ${q('dispatchMs', 0.9)} ms`);
}

try {
  const s0 = performance.now();
  const apps = await bench.seedMany('cr', N + 1);
  note(`seeded ${apps.length} worlds (Chef environment, Kustomization from one Git repository, Ingress) in ${ms(performance.now() - s0)} ms`);

  // one release alone: warms the worker up (bundle, connections) and is the uncontended baseline
  const alone = await runOne(apps.pop()!, performance.now());
  handles.pop();
  note(`one release alone: ${ms(alone)} ms`);

  global.gc?.();
  const baseline = process.memoryUsage();
  const memory = sampleMemory(100);
  const loadBefore = loadAverage();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const results = await Promise.allSettled(apps.map((name) => runOne(name, t0)));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const peak = memory.stop();
  const loadAfter = loadAverage();

  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  const done = results.filter((r): r is PromiseFulfilledResult<number> => r.status === 'fulfilled').map((r) => r.value);
  for (const f of failed.slice(0, 5)) console.error(`failed: ${(f.reason as Error).message}`);

  console.log(`\nconcurrent-releases: ${N} releases of distinct apps started at once on one worker`);
  console.log('each: preflight, chef pin, flux apply + fluxReady gate, canary 10%, canary 100% (7 activities + 3 preflights)\n');
  console.log('completion time, from all starts sent (ms)');
  printTable(
    ['releases', 'ok', 'failed', 'min', 'p50', 'p90', 'p99', 'max', 'alone'],
    [[N, done.length, failed.length, ms(Math.min(...done)), ms(quantile(done, 0.5)), ms(quantile(done, 0.9)), ms(quantile(done, 0.99)), ms(Math.max(...done)), ms(alone)]],
  );
  console.log(`\nthroughput ${(done.length / (wall / 1000)).toFixed(1)} releases/s (${done.length} in ${ms(wall)} ms)`);
  console.log('\nworker process memory (MiB; worker + client in one process, sampled every 100 ms)');
  printTable(
    ['', 'baseline', 'peak', 'growth', 'samples'],
    [
      ['rss', mib(baseline.rss), mib(peak.rss), mib(peak.rss - baseline.rss), peak.samples],
      ['heapUsed', mib(baseline.heapUsed), mib(peak.heapUsed), mib(peak.heapUsed - baseline.heapUsed), peak.samples],
    ],
  );
  console.log(`worker process CPU over the burst: ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s (${((cpu.user + cpu.system) / 1e3 / wall * 100).toFixed(0)}% of one core)`);
  await printBreakdown();
  console.log(`\nload average before ${loadBefore}, after ${loadAfter} (${os.cpus().length} CPUs)`);
  if (failed.length > 0) process.exitCode = 1;
} finally {
  await tearDownAll({ worker: tw, bench });
}
