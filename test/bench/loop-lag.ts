/**
 * Preloaded into a benchmark's worker process (`node --import ./test/bench/loop-lag.ts worker/main.ts`):
 * measures the main thread's event-loop delay and writes its histogram to BENCH_LAG_FILE every
 * second (JSON, milliseconds), so the harness reads it without touching the worker's code.
 * `reset` in the file BENCH_LAG_FILE.reset (its mtime) starts a new interval.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.BENCH_LAG_FILE;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let resetSeen = 0;
  const timer = setInterval(() => {
    const reset = existsSync(`${file}.reset`) ? statSync(`${file}.reset`).mtimeMs : 0;
    if (reset > resetSeen) {
      resetSeen = reset;
      h.reset();
      return;
    }
    const ms = (ns: number) => Math.round(ns / 1e5) / 10;
    writeFileSync(file, JSON.stringify({ p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean), count: h.count }));
  }, 1_000);
  timer.unref();
}
