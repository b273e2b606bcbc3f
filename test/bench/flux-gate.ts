/**
 * Detection latency of the fluxReady gate on the real kustomize-controller: time from the status
 * write that makes the release's generation Ready (as seen by an independent watch in this
 * process, opened before the pin) to the gate activity returning, over RUNS runs each for the
 * watch path and the polling fallback, interleaved so both see the same server load. Each run pins
 * a new tag, so kustomize-controller really reconciles and health-checks a rollout on kwok; the
 * controller's own time (pin -> Ready) is printed too, for scale.
 *
 *   node test/bench/flux-gate.ts        (needs the stack: .stack/env; BENCH_RUNS, default 20)
 */
import { performance } from 'node:perf_hooks';
import * as k8s from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mockInfo } from '../support/policy.ts';
import { fluxReadyGateActivity, type FluxReadyInput } from '../../activities/flux/gate.ts';
import { applyFlux } from '../../activities/flux/pin.ts';
import { evaluateFlux, type FluxWritten } from '../../activities/flux/readiness.ts';
import type { FluxObject } from '../../activities/flux/resource.ts';
import type { FluxTarget } from '../../activities/flux/types.ts';
import type { GateResult } from '../../activities/gates/result.ts';
import { uniqueName } from '../support/env.ts';
import { admin, createNamespace, deleteNamespace, useWorkerIdentity } from '../support/kube-worker.ts';
import { adminKubeConfig, createKustomizations } from '../support/seed-kube.ts';
import { loadAverage, note, printTable, quantile } from './lib.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const INTERVAL_MS = 1_000;
const IMAGE = 'ghcr.io/acme/web';

const a = admin();
const kc = adminKubeConfig();
const ns = uniqueName('flux-bench');
await createNamespace(a, ns);
const modes = ['watch', 'poll'] as const;
note(`seeding ${modes.length} apps in ${ns}`);
await createKustomizations(ns, modes.map((m) => ({ namespace: ns, name: `bench-${m}`, images: [{ name: IMAGE, newTag: '1.0.0' }], replicas: 1, repo: `${ns}/apps` })), kc);
await useWorkerIdentity(a);

const latencies: Record<(typeof modes)[number], number[]> = { watch: [], poll: [] };
const controller: number[] = [];

/** Resolves with the moment an admin watch first sees the written generation pass. */
function observe(name: string, written: () => FluxWritten | undefined): { seen: Promise<number>; stop: () => void } {
  let resolve!: (t: number) => void;
  const seen = new Promise<number>((r) => (resolve = r));
  let req: AbortController | undefined;
  void new k8s.Watch(kc)
    .watch(`/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${ns}/kustomizations`, { fieldSelector: `metadata.name=${name}` }, (_type, obj) => {
      const w = written();
      if (w && evaluateFlux('Kustomization', obj as FluxObject, w).status === 'pass') resolve(performance.now());
    }, () => undefined)
    .then((c) => (req = c));
  return { seen, stop: () => req?.abort() };
}

const loadBefore = loadAverage();
try {
  for (let i = 0; i < RUNS; i++) {
    for (const mode of modes) {
      const name = `bench-${mode}`;
      const target: FluxTarget = { id: name, kind: 'Kustomization', namespace: ns, name, images: [{ name: IMAGE, newTag: `1.0.${i + 1}` }] };
      let written: FluxWritten | undefined;
      const observer = observe(name, () => written);
      await new Promise((r) => setTimeout(r, 200)); // the observer's watch is open
      const pinnedAt = performance.now();
      written = (await applyFlux(target, `bench-${mode}-${i}`)).written;
      const input: FluxReadyInput = { gate: 'bench', target, ...written, timeoutMs: 180_000, intervalMs: INTERVAL_MS, mode };
      const result = (await new MockActivityEnvironment(mockInfo()).run(fluxReadyGateActivity, input)) as GateResult;
      const returnedAt = performance.now();
      if (!result.ok) throw new Error(`run ${i} (${mode}) did not pass: ${result.reason}`);
      const seenAt = await Promise.race([observer.seen, new Promise<number>((r) => setTimeout(() => r(Number.NaN), 10_000))]);
      observer.stop();
      if (Number.isNaN(seenAt)) throw new Error(`run ${i} (${mode}): the observer never saw the generation pass`);
      latencies[mode].push(returnedAt - seenAt);
      controller.push(seenAt - pinnedAt);
      note(`run ${i} ${mode}: controller ${(seenAt - pinnedAt).toFixed(0)} ms, gate after it ${(returnedAt - seenAt).toFixed(0)} ms`);
    }
  }
} finally {
  await deleteNamespace(a, ns);
}

const stats = (xs: number[]) => ({ median: quantile(xs, 0.5), p90: quantile(xs, 0.9), mean: xs.reduce((x, y) => x + y, 0) / xs.length, min: Math.min(...xs), max: Math.max(...xs) });
const w = stats(latencies.watch);
const p = stats(latencies.poll);
const c = stats(controller);
console.log(`fluxReady detection latency on the real kustomize-controller (ms): Ready for the release's generation seen by an independent watch -> gate returns`);
console.log(`${RUNS} runs each, interleaved; poll interval 250 ms doubling to ${INTERVAL_MS} ms; each run a new tag rolled out on kwok\n`);
printTable(
  ['', 'watch', 'poll', 'controller: pin -> Ready'],
  (['median', 'p90', 'mean', 'min', 'max'] as const).map((k) => [k, w[k].toFixed(1), p[k].toFixed(1), c[k].toFixed(0)]),
);
console.log(`\nload average before ${loadBefore}, after ${loadAverage()}`);
