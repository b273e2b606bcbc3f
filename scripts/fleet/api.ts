/**
 * The fleet simulator's control API (JSON over HTTP on 127.0.0.1, the FLEET_URL of .stack/env)
 * and a small client for it, used by `npm run stack -- nodes …`, the tests, the benchmarks and
 * the demo. Durations are milliseconds here; the CLI takes "10s", "4h".
 */
import { Agent, fetch } from 'undici';

export interface AddNodes {
  environment: string;
  /** `recipe[cb]`, `recipe[cb::recipe]` or `cb`, as knife bootstrap's --run-list */
  runList: string[];
  /** explicit names; otherwise `count` names `<prefix>-<n>` */
  names?: string[];
  count?: number;
  prefix?: string;
  /** chef-client --interval (between the end of one run and the start of the next); default 30 min */
  intervalMs?: number;
  /** chef-client --splay: a random 0..splay added to every wait; default 5 min */
  splayMs?: number;
  /** the node's clock minus the real one */
  skewMs?: number;
  /** how long "converging" takes, besides `sleep` in recipes; default 0 */
  convergeMs?: number;
  /** chef-client's enable_reporting; default true */
  reporting?: boolean;
}

export interface FaultNodes {
  names: string[];
  skewMs?: number;
  intervalMs?: number;
  splayMs?: number;
  convergeMs?: number;
  /** stop running for good; node and client objects stay on the server */
  decommission?: boolean;
  /** run again after decommission */
  resume?: boolean;
  /** back to the defaults of `add`: no skew, 30 min interval, running */
  clear?: boolean;
}

export interface RemoveNodes {
  names?: string[];
  prefix?: string;
  environment?: string;
  all?: boolean;
}

export interface RunRecord {
  runId: string;
  /** start of the run on the node's clock (ohai_time), epoch ms */
  startedAt: number;
  /** end of the run on the node's clock, epoch ms; absent while running */
  endedAt?: number;
  status: 'running' | 'success' | 'failure';
  /** "RuntimeError: boom" */
  error?: string;
  /** cookbook -> version from the depsolver (absent when the depsolve failed) */
  versions?: Record<string, string>;
  /** whether the server took the run's report */
  reported?: boolean;
}

export interface NodeView {
  name: string;
  environment: string;
  runList: string[];
  intervalMs: number;
  splayMs: number;
  skewMs: number;
  convergeMs: number;
  reporting: boolean;
  decommissioned: boolean;
  /** idle | running | decommissioned */
  state: 'idle' | 'running' | 'decommissioned';
  runs: number;
  failures: number;
  lastRun?: RunRecord;
  lastSuccess?: RunRecord;
  /** real clock, epoch ms */
  nextRunAt?: number;
}

export interface FleetStats {
  nodes: number;
  running: number;
  queued: number;
  decommissioned: number;
  runs: number;
  failures: number;
  requests: number;
  /** process CPU seconds (user + system) since start, and resident memory */
  cpuSeconds: number;
  rssBytes: number;
  uptimeSeconds: number;
}

export class FleetError extends Error {}

/** Registering thousands of nodes takes minutes: no header or body timeout, only each call's own deadline. */
const patient = new Agent({ headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 1_000 });

export class FleetApi {
  readonly url: string;
  constructor(url = process.env.FLEET_URL) {
    if (!url) throw new FleetError('FLEET_URL is not set: start the stack (`npm run stack -- up`) and source .stack/env');
    this.url = url.replace(/\/+$/, '');
  }

  private async call<T>(method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<T> {
    let res: Awaited<ReturnType<typeof fetch>>;
    try {
      res = await fetch(`${this.url}${path}`, {
        dispatcher: patient,
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new FleetError(`the fleet simulator at ${this.url} does not answer (${(err as Error).message}): is the stack up (npm run stack -- up)?`);
    }
    const text = await res.text();
    const data = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) throw new FleetError((data as { error?: string } | undefined)?.error ?? `HTTP ${res.status}`);
    return data as T;
  }

  /** Registers clients and nodes (as validatorless knife bootstrap does) and schedules their runs. */
  add(req: AddNodes): Promise<{ added: string[] }> {
    // about 0.1 s per node on a busy 2-core machine (an RSA key each), plus room
    return this.call('POST', '/nodes', req, 120_000 + 1000 * (req.names?.length ?? req.count ?? 1));
  }
  fault(req: FaultNodes): Promise<{ changed: string[] }> {
    return this.call('POST', '/nodes/fault', req);
  }
  /** Stops the nodes and deletes their node and client objects and keys. */
  remove(req: RemoveNodes): Promise<{ removed: string[] }> {
    return this.call('POST', '/nodes/remove', req, 3_600_000);
  }
  list(filter: { prefix?: string; environment?: string; names?: string[] } = {}): Promise<NodeView[]> {
    const q = new URLSearchParams();
    if (filter.prefix) q.set('prefix', filter.prefix);
    if (filter.environment) q.set('environment', filter.environment);
    if (filter.names) q.set('names', filter.names.join(','));
    return this.call('GET', `/nodes${q.size ? `?${q}` : ''}`);
  }
  stats(): Promise<FleetStats> {
    return this.call('GET', '/stats');
  }

  /**
   * Polls the list until `done` holds for it; the error says what was last seen. `what` names the
   * awaited state for that message.
   */
  async waitFor(
    filter: { prefix?: string; environment?: string; names?: string[] },
    what: string,
    done: (nodes: NodeView[]) => boolean,
    timeoutMs = 300_000,
  ): Promise<NodeView[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nodes = await this.list(filter);
      if (done(nodes)) return nodes;
      if (Date.now() > deadline) {
        throw new FleetError(`fleet: ${what} not reached after ${Math.round(timeoutMs / 1000)}s; last seen:\n${formatNodes(nodes)}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Waits until every node of the filter has a successful run that started at or after `afterMs` (real clock) on `cookbook` `version`. */
  waitForVersion(filter: { prefix?: string; environment?: string; names?: string[] }, cookbook: string, version: string, opts: { afterMs?: number; timeoutMs?: number; count?: number } = {}): Promise<NodeView[]> {
    return this.waitFor(
      filter,
      `every node converged on ${cookbook} ${version}`,
      (nodes) =>
        nodes.length >= (opts.count ?? 1) &&
        nodes.every((n) => n.lastSuccess?.versions?.[cookbook] === version && n.lastSuccess.startedAt - n.skewMs >= (opts.afterMs ?? 0)),
      opts.timeoutMs,
    );
  }
}

const ago = (ms: number) => {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
};

export function formatDurationShort(ms: number): string {
  if (ms % 3_600_000 === 0 && ms >= 3_600_000) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** One line per node: name, environment, state, last run (when, status, versions), faults, error. */
export function formatNodes(nodes: readonly NodeView[], now = Date.now()): string {
  const header = ['NAME', 'ENVIRONMENT', 'STATUS', 'LAST RUN', 'VERSIONS', 'RUNS', 'INTERVAL', 'FAULTS', 'ERROR'];
  const rows = nodes.map((n) => {
    const last = n.lastRun;
    const status = n.state === 'decommissioned' ? 'decommissioned' : n.state === 'running' ? 'running' : (last?.status ?? 'pending');
    // the versions the last run resolved; a run that failed before resolving shows the last success's
    const resolved = last?.versions ?? n.lastSuccess?.versions;
    const versions = Object.entries(resolved ?? {}).map(([cb, v]) => `${cb} ${v}`).join(', ') + (resolved && resolved !== last?.versions ? ' (last success)' : '');
    const faults = [n.skewMs ? `clock ${n.skewMs > 0 ? '+' : '-'}${formatDurationShort(Math.abs(n.skewMs))}` : '', n.reporting ? '' : 'no reporting', n.convergeMs ? `converge ${formatDurationShort(n.convergeMs)}` : ''].filter(Boolean).join(', ');
    return [
      n.name,
      n.environment,
      status,
      last ? ago(now - (last.startedAt - n.skewMs)) : '-',
      versions || '-',
      `${n.runs}${n.failures ? ` (${n.failures} failed)` : ''}`,
      `${formatDurationShort(n.intervalMs)}+${formatDurationShort(n.splayMs)}`,
      faults || '-',
      last?.status === 'failure' ? (last.error ?? '') : '',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
