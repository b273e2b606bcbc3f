/**
 * The event history of a release does not grow with the canary's duration or with the number
 * of gate checks: pauses are durable timers (two events each, however long) and gates poll inside
 * one heartbeating activity (heartbeats are not history events).
 *
 * The same release shape runs with longer and longer canaries, side by side on one worker:
 *   chef, flux, canary 10%, pause D, gate errors, canary 50%, pause D, gate errors, canary 100%
 * where `errors` is a Prometheus gate (`vector(0) < 0.05` against PROMETHEUS_URL) polled every
 * interval until `successes` consecutive checks pass, so it too runs longer as D grows. The last
 * row keeps the pauses short but checks every 200 ms until 20 checks have passed.
 *
 *   node test/bench/history-size.ts [pause seconds, default 2,8,30]     (needs the stack: .stack/env)
 */
import { performance } from 'node:perf_hooks';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { startRelease } from '../../client/releases.ts';
import type { ReleaseStatus } from '../../workflows/messages.ts';
import { requireEnv } from '../support/env.ts';
import { startTestWorker } from '../support/temporal.ts';
import { estimateHistory } from '../../release-spec/budget.ts';
import { statusQuery } from '../../workflows/messages.ts';
import { Bench, tearDownAll, eventCounts, note, printTable } from './lib.ts';

const pauses = (process.argv[2] ?? '2,8,30').split(',').map(Number);

interface Shape {
  pauseS: number;
  intervalMs: number;
  successes: number;
  /** canary steps (weight, pause, gate each); default the demo's 10% / 50% / 100% */
  canarySteps?: number;
}
const shapes: Shape[] = [
  // a gate that needs as many consecutive passes as the pause has seconds: checks grow with D
  ...pauses.map((s) => ({ pauseS: s, intervalMs: 1_000, successes: s })),
  // frequent checks: every 200 ms until 20 in a row passed
  { pauseS: pauses[0]!, intervalMs: 200, successes: 20 },
  // a 30-step canary: 30 x (weight, pause 1 s, gate)
  { pauseS: 1, intervalMs: 200, successes: 1, canarySteps: Number(process.env.BENCH_CANARY_STEPS ?? 30) },
];

const bench = new Bench('history');
await bench.setUp();
const tw = await startTestWorker();

async function run(shape: Shape) {
  const name = await bench.seed('hist');
  const gates = {
    errors: {
      prometheus: { url: requireEnv('PROMETHEUS_URL'), query: 'vector(0)', comparison: '<', threshold: 0.05 },
      interval: `${shape.intervalMs}ms`,
      successes: shape.successes,
      timeout: `${Math.ceil((shape.successes * shape.intervalMs) / 1000) + 120}s`,
    },
  };
  const pause = { pause: { duration: `${shape.pauseS}s` } };
  const canary = shape.canarySteps
    ? Array.from({ length: shape.canarySteps }, (_, i) => [{ setWeight: Math.round((100 * (i + 1)) / shape.canarySteps!) }, pause, { gate: 'errors' }]).flat()
    : [{ setWeight: 10 }, pause, { gate: 'errors' }, { setWeight: 50 }, pause, { gate: 'errors' }, { setWeight: 100 }];
  const steps = [{ chef: 'vms' }, { flux: 'web' }, ...canary];
  const input = bench.release(name, { gates, steps });
  const estimate = estimateHistory(input);
  const t0 = performance.now();
  const handle = await startRelease(tw.client, input, { taskQueue: tw.taskQueue });
  const status = (await handle.result()) as ReleaseStatus;
  const statusBytes = Buffer.byteLength(JSON.stringify(await handle.query(statusQuery)));
  const wallS = (performance.now() - t0) / 1000;
  if (status.phase !== 'Succeeded') throw new Error(`release ${name} ended ${status.phase}: ${status.error}`);
  const history = await handle.fetchHistory();
  const events = history.events ?? [];
  const counts = eventCounts(events);
  const canaryS = status.steps.slice(2).reduce((s, step) => s + (Date.parse(step.endedAt!) - Date.parse(step.startedAt!)) / 1000, 0);
  note(`pause ${shape.pauseS}s, gate every ${shape.intervalMs} ms x${shape.successes}: ${events.length} events in ${wallS.toFixed(1)} s`);
  return {
    shape,
    wallS,
    canaryS,
    checks: status.gates.reduce((n, g) => n + g.checks, 0),
    events: events.length,
    jsonKiB: Buffer.byteLength(historyToJSON(history)) / 1024,
    statusKiB: statusBytes / 1024,
    steps: input.plan.length,
    estimate,
    activities: counts.ActivityTaskScheduled ?? 0,
    timers: counts.TimerStarted ?? 0,
    workflowTasks: counts.WorkflowTaskCompleted ?? 0,
  };
}

try {
  // side by side: every shape runs at the same time on the one worker
  const rows = await Promise.all(shapes.map(run));
  console.log('\nhistory-size: chef, flux, canary 10%, pause D, gate, canary 50%, pause D, gate, canary 100%');
  console.log('gate = Prometheus vector(0) < 0.05, polled every interval until `successes` checks in a row pass; all rows ran at once');
  console.log('the last row is a 30-step canary; budget = release-spec/budget.ts\'s upper bound for the worst path (all applied, then undone), which validation holds under 10,000 events / 10 MB / 256 KiB status\n');
  printTable(
    ['steps', 'pause D', 'gate interval', 'successes', 'gate checks', 'canary s', 'release s', 'events', 'history KiB', 'status KiB', 'activities', 'timers', 'workflow tasks', 'budget: events', 'KiB', 'status KiB'],
    rows.map((r) => [
      r.steps,
      `${r.shape.pauseS}s`,
      `${r.shape.intervalMs}ms`,
      r.shape.successes,
      r.checks,
      r.canaryS.toFixed(1),
      r.wallS.toFixed(1),
      r.events,
      r.jsonKiB.toFixed(1),
      r.activities,
      r.timers,
      r.workflowTasks,
      r.estimate.events,
      (r.estimate.bytes / 1024).toFixed(0),
      (r.estimate.statusBytes / 1024).toFixed(0),
    ]),
  );
  const demo = rows.filter((r) => !r.shape.canarySteps);
  const ev = demo.map((r) => r.events);
  const longest = demo.reduce((a, b) => (b.canaryS > a.canaryS ? b : a));
  const shortest = demo.reduce((a, b) => (b.canaryS < a.canaryS ? b : a));
  console.log(
    `\nevents ${Math.min(...ev)}..${Math.max(...ev)} while the canary ran ${shortest.canaryS.toFixed(0)}..${longest.canaryS.toFixed(0)} s ` +
      `and the gates checked ${Math.min(...demo.map((r) => r.checks))}..${Math.max(...demo.map((r) => r.checks))} times (the demo's shape)`,
  );
} finally {
  await tearDownAll({ worker: tw, bench });
}
