/**
 * What the durable workflow costs over a plain script: a happy-path release without pauses
 * (preflight, pin Chef, patch Flux, fluxReady gate on the real kustomize-controller applying the tag,
 * canary weight 100) run through the release workflow on an in-process worker, versus the same
 * activity functions called directly, in the same order, by this script. Same servers, same
 * process, alternating run by run; each run gets a fresh world seeded before its clock starts.
 *
 * The direct path mirrors the workflow's calls exactly: admission, the three preflights side by side, then
 * chefSnapshot, chefPin, fluxSnapshot, fluxPin, fluxReadyGate, canarySnapshot, setCanaryWeight.
 * It has no saga bookkeeping, no retries and no history: the difference is what Temporal adds
 * (workflow tasks, activity task dispatch, event persistence on the dev server).
 *
 *   node test/bench/release-overhead.ts [runs, default 10]      (needs the stack: .stack/env)
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mockInfo } from '../support/policy.ts';
import { admitRelease } from '../../activities/admission/index.ts';
import { chefPin, chefPreflight, chefSnapshot } from '../../activities/chef/index.ts';
import { fluxPin, fluxPreflight, fluxReadyGate, fluxSnapshot } from '../../activities/flux/index.ts';
import { canaryPreflight, canarySnapshot, setCanaryWeight } from '../../activities/kube/index.ts';
import { startRelease } from '../../client/releases.ts';
import { gateTiming, type ReleaseInput } from '../../release-spec/plan.ts';
import type { ReleaseStatus } from '../../workflows/messages.ts';
import { startTestWorker } from '../support/temporal.ts';
import { Bench, tearDownAll, historyTimings, loadAverage, ms, note, printTable, quantile, quietLogger } from './lib.ts';

const RUNS = Number(process.argv[2] ?? process.env.BENCH_RUNS ?? 10);

const bench = new Bench('overhead');
await bench.setUp();
const tw = await startTestWorker();

const gates = { ready: { fluxReady: { target: 'web' }, timeout: '60s', interval: '1s' } };
const steps = [{ chef: 'vms' }, { flux: 'web' }, { gate: 'ready' }, { setWeight: 100 }];

/** Runs an activity function the way the worker would: inside an activity Context (of the app's workflow id, as admission checks it). */
let info = mockInfo();
const act = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => new MockActivityEnvironment(info, { logger: quietLogger }).run(fn, ...args);

/** per workflow run, from its history: events, workflow tasks, time in them, time tasks waited */
const breakdown: ReturnType<typeof historyTimings>[] = [];
const handles: Awaited<ReturnType<typeof startRelease>>[] = [];

async function viaWorkflow(input: ReleaseInput): Promise<void> {
  const handle = await startRelease(tw.client, input, { taskQueue: tw.taskQueue });
  const status = (await handle.result()) as ReleaseStatus;
  if (status.phase !== 'Succeeded') throw new Error(`workflow release ended ${status.phase}: ${status.error}`);
  handles.push(handle);
}

let tokens = 0;
async function direct(request: ReleaseInput): Promise<void> {
  info = mockInfo({ workflowExecution: { workflowId: `release-${request.spec.spec.app}`, runId: `direct-${tokens + 1}` } });
  const input = await act(admitRelease, request);
  const { chef: [chef], flux: [flux], canary } = input.spec.spec;
  const ingress = canary!.ingress;
  const timing = gateTiming(input.spec.spec.gates.ready!);
  await Promise.all([act(chefPreflight, chef!), act(fluxPreflight, flux!), act(canaryPreflight, ingress)]);
  await act(chefSnapshot, chef!);
  await act(chefPin, chef!);
  await act(fluxSnapshot, flux!);
  const token = `direct-${process.pid}-${++tokens}`;
  const { written } = await act(fluxPin, { target: flux!, token });
  const gate = await act(fluxReadyGate, { gate: 'ready', target: flux!, ...written, timeoutMs: timing.timeoutMs, intervalMs: timing.intervalMs });
  if (!gate.ok) throw new Error(`direct release: gate failed: ${gate.reason}`);
  await act(canarySnapshot, ingress);
  await act(setCanaryWeight, { ingress, weight: 100 });
}

const paths = { workflow: viaWorkflow, direct } as const;
const times: Record<keyof typeof paths, number[]> = { workflow: [], direct: [] };

const loadBefore = loadAverage();
try {
  note(`seeding ${2 * (RUNS + 1)} worlds in namespace ${bench.ns}`);
  const worlds: string[] = [];
  worlds.push(...(await bench.seedMany('ovh', 2 * (RUNS + 1))));

  // run 0 of each path warms up (bundle, connections, key cache) and is not counted
  for (let run = 0; run <= RUNS; run++) {
    const order = run % 2 === 0 ? (['workflow', 'direct'] as const) : (['direct', 'workflow'] as const);
    for (const path of order) {
      const input = bench.release(worlds.pop()!, { gates, steps });
      const t0 = performance.now();
      await paths[path](input);
      const elapsed = performance.now() - t0;
      if (run > 0) times[path].push(elapsed);
      else if (path === 'workflow') handles.pop();
      note(`run ${run}${run === 0 ? ' (warm-up)' : ''} ${path}: ${ms(elapsed)} ms`);
    }
  }

  for (const h of handles) breakdown.push(historyTimings((await h.fetchHistory()).events ?? []));
  const loadAfter = loadAverage();
  const w = times.workflow;
  const d = times.direct;
  console.log(`\nrelease-overhead: happy path without pauses (preflight, chef pin, flux apply + fluxReady gate, canary 100%), ${RUNS} runs each, alternating`);
  console.log('wall time per release (ms), start to result; 11 activity calls on both paths (admission included)\n');
  printTable(
    ['path', 'median', 'p90', 'min', 'max'],
    [
      ['workflow', ms(quantile(w, 0.5)), ms(quantile(w, 0.9)), ms(Math.min(...w)), ms(Math.max(...w))],
      ['direct', ms(quantile(d, 0.5)), ms(quantile(d, 0.9)), ms(Math.min(...d)), ms(Math.max(...d))],
      ['difference', ms(quantile(w, 0.5) - quantile(d, 0.5)), ms(quantile(w, 0.9) - quantile(d, 0.9)), '', ''],
    ],
  );
  const b = (k: 'events' | 'workflowTasks' | 'inWorkflowTasksMs' | 'dispatchMs') => ms(quantile(breakdown.map((x) => x[k]), 0.5));
  console.log(`\nworkflow path, from its histories (median per release): ${b('events')} events, ${b('workflowTasks')} workflow tasks,`);
  console.log(`${b('inWorkflowTasksMs')} ms inside workflow tasks, ${b('dispatchMs')} ms waiting for workflow/activity tasks to be picked up`);
  console.log(`load average before ${loadBefore}, after ${loadAfter} (${os.cpus().length} CPUs)`);
  console.log(`\nratio ${(quantile(w, 0.5) / quantile(d, 0.5)).toFixed(2)}`);
} finally {
  await tearDownAll({ worker: tw, bench });
}
