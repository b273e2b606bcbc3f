/**
 * The simulated fleet: every node's definition, key, clock and schedule, in one process.
 *
 * Cheap by construction: one timer for the whole fleet (a min-heap of next-run times), no work
 * at all for a node between its runs, a bounded number of runs talking to the server at once
 * (the rest wait in a queue and start late, recording their real start), one keep-alive
 * connection pool shared by all nodes, and recipe files parsed once per checksum.
 *
 * Node definitions (not keys) persist in <dir>/nodes.json and the nodes resume after a restart
 * of the simulator; keys are in <dir>/keys/NAME.pem (0600), never in the repository.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/activity';
import { ChefClient, seg } from '../../activities/chef/client.ts';
import type { AddNodes, FaultNodes, FleetStats, NodeView, RemoveNodes, RunRecord } from './api.ts';
import { chefClientRun, expandRunList, type RunnableNode } from './run.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

export const DEFAULT_INTERVAL_MS = 30 * 60_000; // chef-client's default --interval (1800 s)
export const DEFAULT_SPLAY_MS = 5 * 60_000; // chef-client's default --splay (300 s)
/** first run after registration: soon, as knife bootstrap runs chef-client at once, spread a little */
const FIRST_RUN_SPREAD_MS = 2_000;
const NAME = /^[A-Za-z0-9_.-]{1,200}$/;

interface Definition {
  name: string;
  environment: string;
  runList: string[];
  intervalMs: number;
  splayMs: number;
  skewMs: number;
  convergeMs: number;
  reporting: boolean;
  decommissioned: boolean;
  /** node clock at "boot", for ohai's uptime */
  bootMs: number;
}

interface SimNode extends Definition, RunnableNode {
  key: KeyObject;
  runs: number;
  failures: number;
  lastRun?: RunRecord;
  lastSuccess?: RunRecord;
  /** real clock, epoch ms; undefined while running or decommissioned */
  nextRunAt?: number;
  /** bumps on every reschedule: heap entries with an older value are dropped */
  seq: number;
  running: boolean;
  removed: boolean;
  previousRun?: RunRecord;
  abort?: AbortController;
}

class Semaphore {
  private free: number;
  private waiting: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  get queued() {
    return this.waiting.length;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** Min-heap of (time, node, seq). */
class Schedule {
  private heap: { at: number; name: string; seq: number }[] = [];
  push(e: { at: number; name: string; seq: number }) {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  peek() {
    return this.heap[0];
  }
  pop() {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.at < h[m]!.at) m = l;
        if (r < h.length && h[r]!.at < h[m]!.at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
  get size() {
    return this.heap.length;
  }
}

const rand = (ms: number) => Math.floor(Math.random() * Math.max(0, ms));

export interface FleetOptions {
  chefUrl: string;
  adminName: string;
  adminKeyFile: string;
  /** state directory: nodes.json and keys/ */
  dir: string;
  /** runs talking to the server at once */
  concurrency?: number;
  /** a line for the log when a node's runs start or stop failing */
  log?: (line: string) => void;
}

export class Fleet {
  private readonly nodes = new Map<string, SimNode>();
  private readonly schedule = new Schedule();
  private readonly slots: Semaphore;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private readonly admin: ChefClient;
  private saveTimer: NodeJS.Timeout | undefined;
  private counters = { runs: 0, failures: 0, requests: 0 };
  private readonly started = Date.now();
  private stopping = false;
  private readonly o: FleetOptions;

  constructor(o: FleetOptions) {
    this.o = o;
    this.slots = new Semaphore(o.concurrency ?? 8);
    this.admin = new ChefClient({
      serverUrl: o.chefUrl,
      identity: { clientName: o.adminName, key: createPrivateKey(readFileSync(o.adminKeyFile)), source: `key file ${o.adminKeyFile}` },
    });
    mkdirSync(join(o.dir, 'keys'), { recursive: true, mode: 0o700 });
  }

  private get stateFile() {
    return join(this.o.dir, 'nodes.json');
  }
  private keyFile(name: string) {
    return join(this.o.dir, 'keys', `${name}.pem`);
  }

  /** Resumes the nodes of a previous run of the simulator. */
  resume(): number {
    if (!existsSync(this.stateFile)) return 0;
    const defs = (JSON.parse(readFileSync(this.stateFile, 'utf8')) as { nodes: Definition[] }).nodes;
    for (const d of defs) {
      const kf = this.keyFile(d.name);
      if (!existsSync(kf)) continue; // a node without its key cannot sign: it is gone
      const node = this.makeNode(d, createPrivateKey(readFileSync(kf)));
      this.nodes.set(d.name, node);
      if (!d.decommissioned) this.scheduleAt(node, Date.now() + rand(Math.min(node.splayMs, 60_000)));
    }
    return this.nodes.size;
  }

  private makeNode(d: Definition, key: KeyObject): SimNode {
    const node = {
      ...d,
      key,
      cache: new Map(),
      runs: 0,
      failures: 0,
      seq: 0,
      running: false,
      removed: false,
      now: () => Date.now() + node.skewMs,
    } as unknown as SimNode;
    node.chef = new ChefClient({
      serverUrl: this.o.chefUrl,
      identity: { clientName: d.name, key, source: `fleet key ${this.keyFile(d.name)}` },
      clock: () => new Date(node.now()),
    });
    return node;
  }

  private persist(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.save(), 200);
  }

  private save(): void {
    this.saveTimer = undefined;
    {
      const defs: Definition[] = [...this.nodes.values()].map((n) => ({
        name: n.name,
        environment: n.environment,
        runList: n.runList,
        intervalMs: n.intervalMs,
        splayMs: n.splayMs,
        skewMs: n.skewMs,
        convergeMs: n.convergeMs,
        reporting: n.reporting,
        decommissioned: n.decommissioned,
        bootMs: n.bootMs,
      }));
      writeFileSync(`${this.stateFile}.tmp`, JSON.stringify({ nodes: defs }) + '\n');
      renameSync(`${this.stateFile}.tmp`, this.stateFile);
    }
  }

  // ------------------------------------------------------------------------------ scheduling

  private scheduleAt(node: SimNode, at: number): void {
    node.seq++;
    node.nextRunAt = at;
    this.schedule.push({ at, name: node.name, seq: node.seq });
    this.arm();
  }

  private unschedule(node: SimNode): void {
    node.seq++;
    node.nextRunAt = undefined;
  }

  /** One timer for the whole fleet, set for the earliest run due. */
  private arm(): void {
    const next = this.schedule.peek();
    if (!next || this.stopping) return;
    if (this.timer && next.at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = next.at;
    this.timer = setTimeout(() => this.fire(), Math.min(Math.max(0, next.at - Date.now()), 2 ** 31 - 1));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    for (let e = this.schedule.peek(); e && e.at <= now; e = this.schedule.peek()) {
      this.schedule.pop();
      const node = this.nodes.get(e.name);
      if (!node || node.seq !== e.seq || node.running || node.decommissioned || node.removed) continue;
      node.nextRunAt = undefined;
      void this.runNode(node);
    }
    this.arm();
  }

  private async runNode(node: SimNode): Promise<void> {
    node.running = true;
    const abort = new AbortController();
    node.abort = abort;
    await this.slots.acquire();
    let holding = true;
    try {
      const run = await chefClientRun(
        node,
        {
          signal: abort.signal,
          removed: () => node.removed,
          pause: async (ms) => {
            this.slots.release();
            holding = false;
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, ms);
              abort.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
            });
            await this.slots.acquire();
            holding = true;
          },
          countRequest: () => void this.counters.requests++,
        },
        (r) => (node.lastRun = r),
      );
      node.runs++;
      this.counters.runs++;
      const before = node.previousRun?.status ?? 'success';
      if (run.status !== before && !node.removed) this.o.log?.(`${node.name}: run ${run.status}${run.error ? `: ${run.error}` : ''}`);
      node.previousRun = run;
      if (run.status === 'success') node.lastSuccess = run;
      else {
        node.failures++;
        this.counters.failures++;
      }
    } finally {
      if (holding) this.slots.release();
      node.running = false;
      node.abort = undefined;
    }
    // chef-client --daemonize: sleep interval + rand(splay) after each run
    if (!node.removed && !node.decommissioned && !this.stopping) this.scheduleAt(node, Date.now() + node.intervalMs + rand(node.splayMs));
  }

  // ------------------------------------------------------------------------------ the API

  async add(req: AddNodes): Promise<{ added: string[] }> {
    if (!req.environment || !/^[A-Za-z0-9_-]+$/.test(req.environment)) throw new Error(`environment ${JSON.stringify(req.environment)} is not a Chef environment name`);
    if (!Array.isArray(req.runList) || req.runList.length === 0) throw new Error('give a run list, e.g. --run-list "recipe[api_gateway]"');
    expandRunList(req.runList); // roles are refused here rather than at every run
    let names = req.names;
    if (!names) {
      const count = req.count ?? 1;
      if (!Number.isInteger(count) || count < 1 || count > 100_000) throw new Error('count must be a whole number from 1 to 100000');
      const prefix = req.prefix ?? req.environment;
      const width = Math.max(3, String(count).length);
      names = Array.from({ length: count }, (_, i) => `${prefix}-${String(i + 1).padStart(width, '0')}`);
    }
    const bad = names.filter((n) => !NAME.test(n));
    if (bad.length) throw new Error(`not valid node names: ${bad.slice(0, 5).join(', ')}`);
    const base = {
      environment: req.environment,
      runList: req.runList,
      intervalMs: req.intervalMs ?? DEFAULT_INTERVAL_MS,
      splayMs: req.splayMs ?? DEFAULT_SPLAY_MS,
      skewMs: req.skewMs ?? 0,
      convergeMs: req.convergeMs ?? 0,
      reporting: req.reporting ?? true,
    };
    if (!(base.intervalMs >= 100) || !(base.splayMs >= 0) || !(base.convergeMs >= 0)) throw new Error('interval must be at least 100ms; splay and converge time not negative');

    // registration in parallel, bounded: key generation runs on libuv's thread pool
    const queue = [...names];
    const worker = async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) await this.register(name, base);
    };
    await Promise.all(Array.from({ length: Math.min(8, names.length) }, worker));
    this.persist();
    return { added: names };
  }

  /** knife bootstrap (validatorless): a client with the node's own key, then the node object, created by that client. */
  private async register(name: string, base: Omit<Definition, 'name' | 'decommissioned' | 'bootMs'>): Promise<void> {
    const existing = this.nodes.get(name);
    let key: KeyObject;
    const kf = this.keyFile(name);
    if (existing) key = existing.key;
    else if (existsSync(kf)) key = createPrivateKey(readFileSync(kf));
    else {
      const pair = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
      key = pair.privateKey;
      writeFileSync(kf, key.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    }
    const publicKey = createPublicPem(key);
    try {
      await this.admin.post('clients', { object: `client ${name}`, body: { name, admin: false, public_key: publicKey } });
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === 'ChefConflict')) throw err;
      await this.admin.put(`clients/${seg(name)}`, { object: `client ${name}`, body: { name, admin: false, public_key: publicKey } });
    }
    const node = existing ?? this.makeNode({ name, ...base, decommissioned: false, bootMs: Date.now() + base.skewMs - rand(30 * 86_400_000) }, key);
    Object.assign(node, base, { decommissioned: false });
    this.nodes.set(name, node);
    // knife creates the node with the new client's key, from the workstation: its clock, not the VM's
    const knife = new ChefClient({ serverUrl: this.o.chefUrl, identity: node.chef.identity });
    const body = { name, chef_environment: base.environment, run_list: base.runList, json_class: 'Chef::Node', chef_type: 'node', normal: {}, default: {}, override: {}, automatic: {} };
    try {
      await knife.post('nodes', { object: `node ${name}`, body });
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === 'ChefConflict')) throw err;
      // already there (an earlier add): point it at this environment and run list, keep the rest
      const current = await knife.get<Record<string, unknown>>(`nodes/${seg(name)}`, { object: `node ${name}` });
      await knife.put(`nodes/${seg(name)}`, { object: `node ${name}`, body: { ...current, chef_environment: base.environment, run_list: base.runList } });
    }
    if (!node.running) this.scheduleAt(node, Date.now() + rand(Math.min(node.splayMs, FIRST_RUN_SPREAD_MS)));
  }

  private pick(names: readonly string[]): SimNode[] {
    const missing = names.filter((n) => !this.nodes.has(n));
    if (missing.length) throw new Error(`no such node in the fleet: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ` and ${missing.length - 10} more` : ''}`);
    return names.map((n) => this.nodes.get(n)!);
  }

  fault(req: FaultNodes): { changed: string[] } {
    if (!Array.isArray(req.names) || req.names.length === 0) throw new Error('name at least one node');
    const nodes = this.pick(req.names);
    for (const node of nodes) {
      if (req.clear) Object.assign(node, { skewMs: 0, intervalMs: DEFAULT_INTERVAL_MS, splayMs: DEFAULT_SPLAY_MS, convergeMs: 0, decommissioned: false });
      if (req.skewMs !== undefined) node.skewMs = req.skewMs;
      if (req.intervalMs !== undefined) node.intervalMs = Math.max(100, req.intervalMs);
      if (req.splayMs !== undefined) node.splayMs = Math.max(0, req.splayMs);
      if (req.convergeMs !== undefined) node.convergeMs = Math.max(0, req.convergeMs);
      if (req.decommission) node.decommissioned = true;
      if (req.resume) node.decommissioned = false;
      if (node.decommissioned) this.unschedule(node);
      else if (!node.running) {
        // the next run follows the new interval, counted from the end of the last run
        const lastEnd = node.lastRun ? node.lastRun.endedAt! - node.skewMs : Date.now();
        this.scheduleAt(node, Math.max(Date.now(), lastEnd + node.intervalMs) + rand(node.splayMs));
      }
    }
    this.persist();
    return { changed: nodes.map((n) => n.name) };
  }

  async remove(req: RemoveNodes): Promise<{ removed: string[] }> {
    let nodes: SimNode[];
    if (req.names?.length) nodes = this.pick(req.names);
    else if (req.prefix || req.environment || req.all) {
      nodes = [...this.nodes.values()].filter((n) => (!req.prefix || n.name.startsWith(req.prefix)) && (!req.environment || n.environment === req.environment));
    } else throw new Error('name nodes, or give --prefix, --environment or --all');
    for (const n of nodes) {
      n.removed = true;
      this.unschedule(n);
      n.abort?.abort();
      this.nodes.delete(n.name);
    }
    const queue = [...nodes];
    const worker = async () => {
      for (let n = queue.shift(); n; n = queue.shift()) {
        for (const what of ['nodes', 'clients']) {
          await this.admin.delete(`${what}/${seg(n.name)}`, { object: `${what.slice(0, -1)} ${n.name}` }).catch((err: unknown) => {
            if (!(err instanceof ApplicationFailure && err.type === 'ChefNotFound')) throw err;
          });
        }
        rmSync(this.keyFile(n.name), { force: true });
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, nodes.length) }, worker));
    this.persist();
    return { removed: nodes.map((n) => n.name) };
  }

  list(filter: { prefix?: string; environment?: string; names?: string[] }): NodeView[] {
    const names = filter.names ? new Set(filter.names) : undefined;
    const out: NodeView[] = [];
    for (const n of this.nodes.values()) {
      if (filter.prefix && !n.name.startsWith(filter.prefix)) continue;
      if (filter.environment && n.environment !== filter.environment) continue;
      if (names && !names.has(n.name)) continue;
      out.push({
        name: n.name,
        environment: n.environment,
        runList: n.runList,
        intervalMs: n.intervalMs,
        splayMs: n.splayMs,
        skewMs: n.skewMs,
        convergeMs: n.convergeMs,
        reporting: n.reporting,
        decommissioned: n.decommissioned,
        state: n.decommissioned && !n.running ? 'decommissioned' : n.running ? 'running' : 'idle',
        runs: n.runs,
        failures: n.failures,
        ...(n.lastRun ? { lastRun: n.lastRun } : {}),
        ...(n.lastSuccess ? { lastSuccess: n.lastSuccess } : {}),
        ...(n.nextRunAt !== undefined ? { nextRunAt: n.nextRunAt } : {}),
      });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  stats(): FleetStats {
    const cpu = process.cpuUsage();
    let running = 0;
    let decommissioned = 0;
    for (const n of this.nodes.values()) {
      if (n.running) running++;
      if (n.decommissioned) decommissioned++;
    }
    return {
      nodes: this.nodes.size,
      running,
      queued: this.slots.queued,
      decommissioned,
      ...this.counters,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssBytes: process.memoryUsage.rss(),
      uptimeSeconds: (Date.now() - this.started) / 1000,
    };
  }

  /** Stops scheduling and aborts runs in flight (`stack down`); definitions stay for the next start. */
  stop(): void {
    this.stopping = true;
    clearTimeout(this.timer);
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.save();
    }
    for (const n of this.nodes.values()) n.abort?.abort();
  }
}

/** The public half of a client's key, as POST /clients takes it. */
function createPublicPem(key: KeyObject): string {
  return createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
}
