/**
 * The local stack of real servers the tests and the demo run against.
 *
 *   npm run stack -- up     [--only temporal,chef,sources,kube,kube-b,prometheus]
 *   npm run stack -- down   [--only ...]
 *   npm run stack -- status
 *   npm run stack -- nodes add|fault|remove|list …   (the Chef fleet simulator, scripts/fleet/)
 *
 * `up` reuses whatever still runs and answers, starts the rest on free loopback ports, waits
 * until each really answers and writes .stack/env. `down` stops only what `up` recorded in
 * .stack/state.json. See docs/stack.md.
 */
import { join } from 'node:path';
import { chef } from './stack/chef.ts';
import { fleet } from './stack/fleet.ts';
import { nodesCommand } from './fleet/cli.ts';
import { cluster, mergedKubeconfig } from './stack/kube.ts';
import { exporter, prometheus } from './stack/prometheus.ts';
import type { Service } from './stack/service.ts';
import { sources } from './stack/sources.ts';
import { temporal } from './stack/temporal.ts';
import { stackDir } from './lib/paths.ts';
import { runs, stopGroup } from './lib/proc.ts';
import { loadLastPorts, loadState, rememberPorts, saveState, writeEnvFile, type StackState } from './lib/state.ts';

const clusters = [cluster(''), cluster('-b')];
const [a, b] = clusters as [ReturnType<typeof cluster>, ReturnType<typeof cluster>];
const byName = (c: typeof a, base: string) => c.services.find((s) => s.name === `${base}${c.suffix}`)!;
const controllers = ['kube-controller-manager', 'kube-scheduler', 'kwok', 'source-controller', 'kustomize-controller', 'helm-controller'];

/**
 * Start order in waves: everything in a wave starts at once and the wave waits until all of it
 * answers; a wave only needs what earlier waves started (etcd before its API server, the API
 * server and its CRDs before the controllers, the exporter before Prometheus, goiardi before the
 * Chef fleet simulator).
 */
const waves: Service[][] = [
  [temporal, chef, sources, byName(a, 'etcd'), byName(b, 'etcd'), exporter],
  // the fleet simulator signs against goiardi: after chef
  [byName(a, 'kube-apiserver'), byName(b, 'kube-apiserver'), prometheus, fleet],
  [...controllers.map((c) => byName(a, c)), ...controllers.map((c) => byName(b, c))],
];
const services: Service[] = waves.flat();
const groups = ['temporal', 'chef', 'sources', 'kube', 'kube-b', 'prometheus'] as const;
const startTimeoutMs = Number(process.env.STACK_START_TIMEOUT_MS ?? 120_000);

function parseOnly(argv: string[]): Set<string> {
  const i = argv.indexOf('--only');
  const raw = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--only='))?.slice(7);
  if (!raw) return new Set(groups);
  const chosen = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = chosen.filter((g) => !(groups as readonly string[]).includes(g));
  if (unknown.length) throw new Error(`unknown --only group(s): ${unknown.join(', ')} (known: ${groups.join(', ')})`);
  return new Set(chosen);
}

const seconds = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)}s`;

/** Reuses `svc` if it runs and answers, else (re)starts it and waits until it answers. */
async function bringUp(svc: Service, state: StackState): Promise<void> {
  const t0 = Date.now();
  const rec = state[svc.name];
  if (rec && runs(rec.pid, rec.binary) && !svc.stale?.(rec, state)) {
    try {
      await svc.ready(rec, 15_000);
      await svc.afterReady?.(rec);
      rememberPorts(svc.name, rec.ports);
      console.log(`${svc.name}: already running (pid ${rec.pid}), answering`);
      return;
    } catch (err) {
      console.log(`${svc.name}: pid ${rec.pid} runs but does not answer (${(err as Error).message}); restarting`);
    }
  }
  if (rec) {
    // only signal a pid that still runs our binary: a recorded pid may have been recycled
    if (runs(rec.pid, rec.binary)) await stopGroup(rec.pid);
    delete state[svc.name];
    saveState(state);
  }
  const started = await svc.start(rec?.ports ?? loadLastPorts()[svc.name], state);
  // recorded before waiting, so a failed start can still be stopped by `down`
  state[svc.name] = started;
  saveState(state);
  rememberPorts(svc.name, started.ports);
  try {
    await svc.ready(started, startTimeoutMs);
    await svc.afterReady?.(started);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n  logs: ${join(stackDir, svc.group)}/*.log; \`npm run stack -- down\` stops what did start`);
  }
  console.log(`${svc.name}: started (pid ${started.pid}, ports ${fmtPorts(started.ports)}) in ${seconds(t0)}`);
}

async function up(only: Set<string>): Promise<void> {
  const t0 = Date.now();
  const state = loadState();
  for (const wave of waves) {
    const results = await Promise.allSettled(wave.filter((s) => only.has(s.group)).map((svc) => bringUp(svc, state)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length) {
      writeEnv(state);
      throw new Error(failed.map((f) => (f.reason as Error).message).join('\n'));
    }
  }
  const envFile = writeEnv(state);
  console.log(`stack up in ${seconds(t0)}; wrote ${envFile}; load it with: source ${envFile}`);
}

/** .stack/env, with KUBECONFIG pointing at the merged kubeconfig of the running clusters. */
function writeEnv(state: StackState): string {
  return writeEnvFile(state, mergedKubeconfig(clusters, state)?.env ?? {});
}

async function down(only: Set<string>): Promise<void> {
  const state = loadState();
  // reverse start order: dependants stop before what they depend on
  for (const svc of [...services].reverse().filter((s) => only.has(s.group))) {
    const rec = state[svc.name];
    if (!rec) continue;
    const outcome = runs(rec.pid, rec.binary) ? await stopGroup(rec.pid) : 'absent';
    console.log(`${svc.name}: ${outcome === 'absent' ? 'was not running' : outcome} (pid ${rec.pid})`);
    delete state[svc.name];
    saveState(state);
  }
  writeEnv(state);
}

async function status(): Promise<number> {
  const state = loadState();
  let allUp = true;
  for (const svc of services) {
    const rec = state[svc.name];
    if (!rec) {
      console.log(`${svc.name.padEnd(24)} not started`);
      continue;
    }
    const alive = runs(rec.pid, rec.binary);
    let answering = false;
    let why = '';
    if (alive) {
      try {
        await svc.ready(rec, 3000);
        answering = true;
      } catch (err) {
        why = ` (${(err as Error).message})`;
      }
    }
    allUp &&= answering;
    console.log(
      `${svc.name.padEnd(24)} pid ${String(rec.pid).padEnd(8)} ports ${fmtPorts(rec.ports).padEnd(40)} ` +
        `${alive ? (answering ? 'answering' : 'NOT answering' + why) : 'NOT running'}`,
    );
  }
  return allUp ? 0 : 1;
}

/** Groups whose every service runs and answers: scripts/test.sh leaves those running afterwards. */
async function runningGroups(): Promise<string[]> {
  const state = loadState();
  const up: string[] = [];
  for (const group of groups) {
    let ok = true;
    for (const svc of services.filter((s) => s.group === group)) {
      const rec = state[svc.name];
      try {
        if (!rec || !runs(rec.pid, rec.binary)) throw new Error('not running');
        await svc.ready(rec, 3000);
      } catch {
        ok = false;
      }
    }
    if (ok) up.push(group);
  }
  return up;
}

function fmtPorts(ports: Record<string, number>): string {
  return Object.entries(ports).map(([k, v]) => `${k}=${v}`).join(' ');
}

const [command, ...rest] = process.argv.slice(2);
try {
  const only = command === 'nodes' ? new Set<string>() : parseOnly(rest);
  if (command === 'nodes') process.exitCode = await nodesCommand(rest);
  else if (command === 'up') await up(only);
  else if (command === 'down') await down(only);
  else if (command === 'status') process.exitCode = await status();
  else if (command === 'running-groups') console.log((await runningGroups()).join(','));
  else {
    console.error(`usage: npm run stack -- up|down|status [--only ${groups.join(',')}]\n       npm run stack -- nodes add|fault|remove|list … (see docs/stack.md)`);
    process.exitCode = 2;
  }
} catch (err) {
  console.error(`stack ${command}: ${(err as Error).message}`);
  process.exitCode = 1;
}
