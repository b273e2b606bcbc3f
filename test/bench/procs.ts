/**
 * Worker processes for the benchmarks, started as production starts them (`node worker/main.ts`,
 * configured by environment variables), and what /proc says about them and the stack's servers:
 * CPU seconds (utime + stime) and resident memory, sampled so the harness's own CPU and memory
 * never count as the worker's.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLK_TCK = 100; // USER_HZ on Linux
const root = fileURLToPath(new URL('../..', import.meta.url));

export interface ProcSample {
  /** utime + stime, seconds */
  cpuS: number;
  /** VmRSS, bytes */
  rss: number;
  /** VmHWM (peak RSS since start), bytes */
  hwm: number;
}

/** One process's CPU and memory from /proc; undefined once it has exited. */
export function procSample(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name (which may contain spaces) start at ") "
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuS = (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { cpuS, rss: kib('VmRSS'), hwm: kib('VmHWM') };
  } catch {
    return undefined;
  }
}

/** CPU seconds of every live process in a process group (a stack service and its children). */
export function groupCpuS(pgid: number): number {
  let total = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid) total += (Number(f[11]) + Number(f[12])) / CLK_TCK; // pgrp is field 5
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** The stack's services (this worktree's .stack/state.json) with their process groups. */
export function stackServices(): { name: string; pgid: number }[] {
  const file = join(root, '.stack', 'state.json');
  if (!existsSync(file)) return [];
  const state = JSON.parse(readFileSync(file, 'utf8')) as Record<string, { pid: number }>;
  return Object.entries(state).map(([name, r]) => ({ name, pgid: r.pid }));
}

/** CPU seconds per stack service between two calls of the returned function. */
export function stackCpu(): () => { name: string; cpuS: number }[] {
  const services = stackServices();
  const before = new Map(services.map((s) => [s.name, groupCpuS(s.pgid)]));
  return () => services.map((s) => ({ name: s.name, cpuS: groupCpuS(s.pgid) - before.get(s.name)! })).sort((a, b) => b.cpuS - a.cpuS);
}

/** Samples a process every `everyMs`: peak RSS and CPU between mark() and stop(). */
export function sampleProcess(pid: number, everyMs = 200) {
  let peakRss = 0;
  let last = procSample(pid);
  const take = () => {
    const s = procSample(pid);
    if (s) {
      last = s;
      peakRss = Math.max(peakRss, s.rss);
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  timer.unref();
  let cpuAtMark = last?.cpuS ?? 0;
  return {
    /** start a measured interval: resets the peak to the current RSS */
    mark() {
      take();
      peakRss = last?.rss ?? 0;
      cpuAtMark = last?.cpuS ?? 0;
    },
    /** peak RSS and CPU seconds since mark() */
    read() {
      take();
      return { peakRss, rss: last?.rss ?? 0, cpuS: (last?.cpuS ?? 0) - cpuAtMark };
    },
    stop() {
      clearInterval(timer);
    },
  };
}

let bundleFile: string | undefined;

/**
 * The workflow bundle built ahead of time, as the image does (worker/bundle.ts, HR_WORKFLOW_BUNDLE),
 * once per benchmark run; BENCH_BUNDLE_AT_START=1 lets the workers bundle at start instead.
 */
export function prebuiltBundle(dir: string): Record<string, string> {
  if (process.env.BENCH_BUNDLE_AT_START === '1') return {};
  if (process.env.HR_WORKFLOW_BUNDLE) return { HR_WORKFLOW_BUNDLE: process.env.HR_WORKFLOW_BUNDLE };
  if (!bundleFile) {
    bundleFile = join(dir, `workflow-bundle-${process.pid}.js`);
    execFileSync(process.execPath, [join(root, 'worker', 'bundle.ts'), bundleFile], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return { HR_WORKFLOW_BUNDLE: bundleFile };
}

export interface WorkerProcess {
  pid: number;
  taskQueue: string;
  /** the process's log (stderr + stdout) */
  logFile: string;
  /** SIGTERM, then waits for it to exit (it drains in-flight work within HR_SHUTDOWN_GRACE) */
  stop(): Promise<void>;
}

/**
 * Starts a worker process and resolves once it logs `worker started` (it bundles the workflows
 * first). `script` defaults to the service's own worker/main.ts; `env` adds to this process's
 * environment (TEMPORAL_ADDRESS, KUBECONFIG, HR_POLICY_FILE come from there).
 */
export async function startWorkerProcess(o: { taskQueue: string; script?: string; env?: Record<string, string>; nodeArgs?: string[]; logFile: string }): Promise<WorkerProcess> {
  const script = o.script ?? join(root, 'worker', 'main.ts');
  const child: ChildProcess = spawn(process.execPath, [...(o.nodeArgs ?? []), script], {
    cwd: root,
    env: { ...process.env, HR_TASK_QUEUE: o.taskQueue, ...prebuiltBundle(dirname(o.logFile)), ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The worker is a server under test like the stack's: it runs at their priority (nice 0, the
  // stack's default) even when the harness is niced, or it alone would lose the CPU to them.
  const nice = Number(process.env.BENCH_WORKER_NICE ?? 0);
  try {
    os.setPriority(child.pid!, nice);
  } catch (err) {
    process.stderr.write(`could not set the worker's priority to ${nice} (${(err as Error).message}); it runs at the harness's\n`);
  }
  const log = createWriteStream(o.logFile);
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const deadline = setTimeout(() => reject(new Error(`worker ${script} did not log "worker started" within 3 min; last output: ${seen.slice(-500)} (log ${o.logFile})`)), 180_000);
    const onData = (b: Buffer) => {
      seen = (seen + b.toString('utf8')).slice(-4000);
      if (seen.includes('worker started')) {
        clearTimeout(deadline);
        child.stderr!.off('data', onData);
        resolve();
      }
    };
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(deadline);
      reject(new Error(`worker ${script} exited with ${code} before it started: ${seen.slice(-1000)}`));
    });
  });
  return {
    pid: child.pid!,
    taskQueue: o.taskQueue,
    logFile: o.logFile,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      log.end();
    },
  };
}

/** What the SDK's Prometheus endpoint says (slots, pollers, latencies), as name{labels} -> value. */
export async function scrapeMetrics(address: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(5_000) });
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
