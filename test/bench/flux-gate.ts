/**
 * Detection latency of the fluxReady gate: time from a controller writing Ready=True for the
 * release's token (the status PATCH being sent) to the gate activity returning, over 50 runs
 * each for the watch path and the polling fallback, interleaved so both see the same server load.
 *
 * The status is written here, as the admin, rather than by the stack's stand-in, because the
 * figure needs the exact moment of the write. Each run waits a random 100–1100 ms before
 * writing so the poller is caught at all points of its backoff (250 ms doubling to intervalMs).
 *
 *   node test/bench/flux-gate.ts        (needs the stack: KUBECONFIG from .stack/env)
 */
import { performance } from 'node:perf_hooks';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mockInfo } from '../support/policy.ts';
import { fluxReadyGateActivity, type FluxReadyInput } from '../../activities/flux/gate.ts';
import { FLUX_KINDS } from '../../activities/flux/resource.ts';
import type { FluxTarget } from '../../activities/flux/types.ts';
import type { GateResult } from '../../activities/gates/result.ts';
import { uniqueName } from '../support/env.ts';
import { admin, createNamespace, deleteNamespace, patchStatus, useWorkerIdentity } from '../support/kube-worker.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const INTERVAL_MS = 1_000;

const a = admin();
const ns = uniqueName('flux-bench');
await createNamespace(a, ns);
await useWorkerIdentity(a);

const modes = ['watch', 'poll'] as const;
const latencies: Record<(typeof modes)[number], number[]> = { watch: [], poll: [] };

try {
  const targets = {} as Record<(typeof modes)[number], FluxTarget>;
  for (const mode of modes) {
    const name = `bench-${mode}`;
    await a.custom.createNamespacedCustomObject({
      ...FLUX_KINDS.Kustomization,
      namespace: ns,
      body: {
        apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
        kind: 'Kustomization',
        metadata: { name, namespace: ns },
        spec: { interval: '10m', path: './', prune: true, sourceRef: { kind: 'GitRepository', name: 'app' } },
      },
    });
    targets[mode] = { id: name, kind: 'Kustomization', namespace: ns, name, images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] };
  }

  for (let i = 0; i < RUNS; i++) {
    for (const mode of modes) {
      const target = targets[mode];
      const token = `bench-${i}`;
      const input: FluxReadyInput = { gate: 'bench', target, token, timeoutMs: 30_000, intervalMs: INTERVAL_MS, mode };
      let returnedAt = 0;
      const waiting = (new MockActivityEnvironment(mockInfo()).run(fluxReadyGateActivity, input) as Promise<GateResult>).then((r) => {
        returnedAt = performance.now();
        return r;
      });
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 1000));
      const writtenAt = performance.now();
      await patchStatus(a, { ...FLUX_KINDS.Kustomization, namespace: ns, name: target.name }, {
        observedGeneration: 1,
        lastHandledReconcileAt: token,
        conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: `run ${i}`, lastTransitionTime: new Date().toISOString() }],
      });
      const result = await waiting;
      if (!result.ok) throw new Error(`run ${i} (${mode}) did not pass: ${result.reason}`);
      latencies[mode].push(returnedAt - writtenAt);
    }
  }
} finally {
  await deleteNamespace(a, ns);
}

function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}
const stats = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return { median: quantile(s, 0.5), p90: quantile(s, 0.9), min: s[0]!, max: s[s.length - 1]!, mean: s.reduce((x, y) => x + y, 0) / s.length };
};
const w = stats(latencies.watch);
const p = stats(latencies.poll);
const row = (label: string, x: number, y: number) => `${label.padEnd(8)} ${x.toFixed(1).padStart(10)} ${y.toFixed(1).padStart(12)}`;
console.log(`fluxReady detection latency, status write -> gate returns (ms), ${RUNS} runs each, poll interval 250 ms doubling to ${INTERVAL_MS} ms`);
console.log(`${''.padEnd(8)} ${'watch'.padStart(10)} ${'poll'.padStart(12)}`);
for (const k of ['median', 'p90', 'mean', 'min', 'max'] as const) console.log(row(k, w[k], p[k]));
