/**
 * Chef node convergence: which nodes of an environment have run chef-client since the pin and
 * ended up on a cookbook version that satisfies the release's constraint, which failed, and which
 * are stale. The rules, from what chef-client does (lib/chef/client.rb): a run records ohai_time
 * when it STARTS, on the node's own clock; it resolves cookbooks against the environment right
 * after; it saves the node (automatic.cookbooks.NAME.version) ONLY when it succeeds.
 *
 * - converged: the last successful run used versions that satisfy every constraint and started
 *   after `since` - maxClockSkew (a node whose clock is behind reports an earlier start).
 * - in flight: the last successful run is on other versions but started within maxClockSkew of
 *   `since`: it may have resolved its cookbooks before the pin landed. Waiting, never failed.
 * - failed: with run reports, the node's latest completed run failed, and that run certainly
 *   started after the pin (see failuresSincePin: its start is later than `since` + maxClockSkew,
 *   or it is new since an earlier poll that was sent after the pin by more than the run lasted);
 *   "latest" compares the failure with the last success on the node's own clock, where skew
 *   cancels out. Also, without reports too, a successful run that certainly started after the
 *   pin (after `since` + maxClockSkew) that resolved versions outside the constraint.
 *   A failure that may have started before the pin (the end of the previous release's failing
 *   runs, a run in flight at the pin) is not counted: the node's next run decides.
 * - stale: no successful run within staleAfter (+ maxClockSkew), or never a completed run:
 *   decommissioned or broken VMs whose node objects remain. Reported apart; they count in the
 *   percentage only with includeStale.
 * - lagging: everything else that uses the cookbooks: not run since the pin yet.
 * - unaffected: nodes whose last run used none of the cookbooks (not counted at all).
 *
 * Without run reports (a server without the reporting API, or a client that may not read it) a
 * failed run saves nothing, so its node shows only as lagging until the gate times out; the
 * gate's reason says so.
 *
 * One poll is one paged node search plus one reporting query; work per poll is linear in the
 * number of nodes (fixed-size pages, constant work per row, no per-node requests).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { CHEF_BAD_REQUEST, CHEF_NOT_ALLOWED, CHEF_NOT_FOUND, CHEF_UNAVAILABLE, type ChefClient } from './client.ts';
import { parseConstraint, satisfies, type Constraint } from './constraints.ts';
import { describeRun, failedRunsSince, type FailedRun, type RunReports } from './reporting.ts';
import type { CheckOutcome } from '../gates/result.ts';

/**
 * partial: POST partial search, paged (Chef Infra Server).
 * partial-unpaged: POST partial search in one page that grows until it holds every node, for
 *   servers whose partial results come back in no stable order (goiardi sorts partial rows by a
 *   key they do not have), so that paging would skip some nodes and repeat others.
 * full: GET full node objects, paged (servers without partial search).
 */
export type SearchMode = 'partial' | 'partial-unpaged' | 'full';

/** What one poll needs to know about one node. */
export interface NodeFacts {
  name: string;
  /** start of the last successful chef-client run, epoch seconds, node clock */
  ohaiTime: number | undefined;
  /** cookbook -> version the last successful run used */
  versions: Record<string, string | undefined>;
}

/** How the gate judges, from the spec (release-spec/schema.ts documents each default). */
export interface ConvergenceRules {
  /** percent of the counted nodes that must be converged */
  minPercent: number;
  /** failed nodes tolerated; one more fails the gate at once */
  maxFailed: number;
  /** a node without a successful run for this long is stale */
  staleAfterMs: number;
  /** count stale nodes in the percentage (they then hold the gate) */
  includeStale: boolean;
  /** how far a node's clock may be off the worker's */
  maxClockSkewMs: number;
}

export const DEFAULT_RULES: Omit<ConvergenceRules, 'minPercent'> = {
  maxFailed: 0,
  staleAfterMs: 60 * 60_000,
  includeStale: false,
  maxClockSkewMs: 5 * 60_000,
};

export interface ConvergenceObserved {
  /** nodes counted in the percentage: converged + lagging + failed (+ stale with includeStale) */
  total: number;
  converged: number;
  /** not run since the pin (includes inFlight; with includeStale also the stale nodes) */
  lagging: number;
  /** of lagging: a run that started before the pin landed saved other versions */
  inFlight: number;
  failed: number;
  /** no successful run within staleAfter, or never a completed run */
  stale: number;
  /** first 20 by name */
  laggingNodes: string[];
  /** first 20 by name */
  failedNodes: string[];
  /** first 20 by name */
  staleNodes: string[];
  /** the failed nodes of failedNodes with what failed */
  failures: { node: string; error: string }[];
  /** nodes in the environment whose last run used none of the cookbooks; not part of total */
  unaffected: number;
  /** whether failed runs are visible (run reports), and if not, why */
  reporting: { available: boolean; note?: string };
}

const LIST_LIMIT = 20;

/**
 * Keeps the LIST_LIMIT smallest names, sorted, so the names shown are the same from poll to poll
 * whatever order the server returned (goiardi's partial search has none). At most LIST_LIMIT steps
 * per node, so a poll stays linear in the number of nodes.
 */
function keepFirst(list: string[], name: string): void {
  if (list.length === LIST_LIMIT && name >= list[LIST_LIMIT - 1]!) return;
  let i = list.length;
  while (i > 0 && list[i - 1]! > name) i--;
  list.splice(i, 0, name);
  if (list.length > LIST_LIMIT) list.pop();
}

/** What was learnt about a server's search, so later polls use the right mode at once. */
const learnt = new Map<string, { mode: SearchMode; lastCount: number }>();

/** Paging returned the same node twice: the server's order is not stable across pages. */
class UnstablePaging extends Error {}

const failureType = (err: unknown) => (err instanceof ApplicationFailure ? err.type : undefined);

export interface SearchOptions {
  /** force a mode (benchmarks); default: what was learnt about the server, else partial */
  mode?: SearchMode;
  pageSize?: number;
  signal?: AbortSignal;
}

/** Every node of the environment as NodeFacts. */
export async function searchNodeFacts(
  client: ChefClient,
  environment: string,
  cookbooks: readonly string[],
  options: SearchOptions = {},
): Promise<{ nodes: NodeFacts[]; mode: SearchMode; requests: number }> {
  const known = learnt.get(client.serverUrl);
  let mode: SearchMode = options.mode ?? known?.mode ?? 'partial';
  for (;;) {
    try {
      const found = await searchPages(client, environment, cookbooks, mode, options, known?.lastCount ?? 0);
      if (!options.mode) learnt.set(client.serverUrl, { mode, lastCount: found.nodes.length });
      return { ...found, mode };
    } catch (err) {
      if (options.mode) throw err;
      if (err instanceof UnstablePaging && mode === 'partial') {
        mode = 'partial-unpaged';
        continue;
      }
      // Partial search is a Chef Server extension; a server without it refuses the POST.
      const t = failureType(err);
      if (mode !== 'full' && (t === CHEF_NOT_FOUND || t === CHEF_NOT_ALLOWED || t === CHEF_BAD_REQUEST)) {
        mode = 'full';
        continue;
      }
      throw err;
    }
  }
}

const num = (v: unknown): number | undefined => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
};
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

async function searchPages(
  client: ChefClient,
  environment: string,
  cookbooks: readonly string[],
  mode: SearchMode,
  options: SearchOptions,
  lastCount: number,
): Promise<{ nodes: NodeFacts[]; requests: number }> {
  // full node objects can be tens of KB each on real fleets: smaller pages keep each response bounded
  let pageSize = options.pageSize ?? (mode === 'full' ? 200 : 1000);
  // one page sized to last poll's count plus room, doubling if it comes back full: the rows
  // fetched over all attempts stay within a small multiple of the node count
  if (mode === 'partial-unpaged') pageSize = Math.max(pageSize, Math.ceil(lastCount * 1.25) + 1);
  // Lucene syntax: escape the environment name so characters such as "-" are not operators
  const q = `chef_environment:${environment.replace(/[+\-&|!(){}[\]^"~*?:\\/ ]/g, '\\$&')}`;
  const cbKey = (i: number) => `cookbook_${i}`;
  const partialBody: Record<string, string[]> = { name: ['name'], ohai_time: ['ohai_time'] };
  cookbooks.forEach((cb, i) => (partialBody[cbKey(i)] = ['cookbooks', cb, 'version']));

  let requests = 0;
  for (;;) {
    const byName = new Map<string, NodeFacts>();
    let rowsSeen = 0;
    let lastPageFull = false;
    for (let start = 0; ; start += pageSize) {
      const request = {
        query: { q, rows: pageSize, start },
        object: `node search in environment ${environment}`,
        ...(options.signal ? { signal: options.signal } : {}),
      };
      const page =
        mode === 'full'
          ? await client.get<{ rows?: unknown[] }>('search/node', request)
          : await client.post<{ rows?: unknown[] }>('search/node', { ...request, body: partialBody });
      requests++;
      const rows = page?.rows ?? [];
      rowsSeen += rows.length;
      for (const row of rows) {
        const facts = mode !== 'full' && row && typeof row === 'object' && 'data' in row ? fromPartial(row.data, cookbooks, cbKey) : fromNode(row, cookbooks);
        if (facts) byName.set(facts.name, facts);
      }
      lastPageFull = rows.length >= pageSize;
      // `total` is the full match count on Chef Infra Server but the page's row count on goiardi,
      // so the end is the first short page.
      if (!lastPageFull || mode === 'partial-unpaged') break;
      // a page that repeats earlier nodes: the order is not stable, and paging would miss others
      if (byName.size < rowsSeen) break;
    }
    if (mode === 'partial-unpaged' && lastPageFull) {
      pageSize *= 2;
      continue;
    }
    // Every row is a distinct node unless the server's order moved between pages (a node seen
    // twice means another one was never seen).
    if (byName.size < rowsSeen) {
      if (mode === 'partial') throw new UnstablePaging();
      throw ApplicationFailure.create({
        type: CHEF_UNAVAILABLE,
        nonRetryable: false,
        message: `Chef server ${client.serverUrl}: node search in environment ${environment} returned nodes more than once across pages (nodes being added or removed meanwhile?); will search again`,
      });
    }
    return { nodes: [...byName.values()], requests };
  }
}

function fromPartial(data: unknown, cookbooks: readonly string[], cbKey: (i: number) => string): NodeFacts | null {
  if (!data || typeof data !== 'object') return null;
  const d = data as Record<string, unknown>;
  const name = str(d.name);
  if (!name) return null;
  const versions: Record<string, string | undefined> = {};
  cookbooks.forEach((cb, i) => (versions[cb] = str(d[cbKey(i)])));
  return { name, ohaiTime: num(d.ohai_time), versions };
}

function fromNode(row: unknown, cookbooks: readonly string[]): NodeFacts | null {
  if (!row || typeof row !== 'object') return null;
  const node = row as { name?: unknown; automatic?: { ohai_time?: unknown; cookbooks?: Record<string, { version?: unknown } | undefined> } };
  const name = str(node.name);
  if (!name) return null;
  const versions: Record<string, string | undefined> = {};
  for (const cb of cookbooks) versions[cb] = str(node.automatic?.cookbooks?.[cb]?.version);
  return { name, ohaiTime: num(node.automatic?.ohai_time), versions };
}

/** Node facts sorted by the rules above; `failures`: per node its latest failed run since the pin (failuresSincePin), when there are run reports. */
export function classifyNodes(
  nodes: Iterable<NodeFacts>,
  cookbooks: Record<string, string>,
  sinceMs: number,
  opts: { nowMs?: number; rules?: Partial<ConvergenceRules>; failures?: ReadonlyMap<string, FailedRun> } = {},
): ConvergenceObserved {
  const parsed: [string, Constraint][] = Object.entries(cookbooks).map(([cb, c]) => {
    const p = parseConstraint(c);
    if (!p) {
      throw ApplicationFailure.create({ type: CHEF_BAD_REQUEST, nonRetryable: true, message: `${JSON.stringify(c)} for cookbook ${cb} is not a Chef version constraint` });
    }
    return [cb, p];
  });
  const rules = { ...DEFAULT_RULES, ...opts.rules };
  const skewSec = rules.maxClockSkewMs / 1000;
  const sinceSec = sinceMs / 1000;
  const staleBeforeSec = ((opts.nowMs ?? Date.now()) - rules.staleAfterMs - rules.maxClockSkewMs) / 1000;
  const cookbookNames = Object.keys(cookbooks);
  const out: ConvergenceObserved = {
    total: 0,
    converged: 0,
    lagging: 0,
    inFlight: 0,
    failed: 0,
    stale: 0,
    laggingNodes: [],
    failedNodes: [],
    staleNodes: [],
    failures: [],
    unaffected: 0,
    reporting: { available: opts.failures !== undefined },
  };
  const errors = new Map<string, string>();
  const fail = (name: string, error: string) => {
    out.failed++;
    keepFirst(out.failedNodes, name);
    if (out.failedNodes.includes(name)) errors.set(name, error);
  };
  for (const n of nodes) {
    const o = n.ohaiTime;
    // A node that has run but uses none of these cookbooks (a database node in a web release's
    // environment) will never converge on them: it is counted apart instead of holding the gate.
    if (o !== undefined && cookbookNames.every((cb) => n.versions[cb] === undefined)) {
      out.unaffected++;
      continue;
    }
    const run = opts.failures?.get(n.name);
    // the failure is newer than the last success (start_time has whole seconds; runs of one node are an interval apart)
    if (run && (o === undefined || run.startedAt >= Math.floor(o))) {
      fail(n.name, run.error);
      continue;
    }
    const ok = o !== undefined && parsed.every(([cb, c]) => n.versions[cb] !== undefined && satisfies(n.versions[cb]!, c));
    if (ok && o > sinceSec - skewSec) {
      out.converged++;
      continue;
    }
    if (o !== undefined && !ok && o > sinceSec + skewSec) {
      const found = cookbookNames.map((cb) => `${cb} ${n.versions[cb] ?? '(none)'}`).join(', ');
      fail(n.name, `a run since the pin used ${found}, outside ${parsed.map(([cb]) => `${cb} ${JSON.stringify(cookbooks[cb])}`).join(', ')}`);
      continue;
    }
    if (o === undefined || o < staleBeforeSec) {
      out.stale++;
      keepFirst(out.staleNodes, n.name);
      if (!rules.includeStale) continue;
    } else if (o > sinceSec - skewSec) {
      out.inFlight++;
    }
    out.lagging++;
    keepFirst(out.laggingNodes, n.name);
  }
  out.failures = out.failedNodes.map((node) => ({ node, error: errors.get(node) ?? '' }));
  out.total = out.converged + out.lagging + out.failed;
  return out;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function fmtDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms >= 3_600_000) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/** Names for a reason: the first few, and how many more. */
function names(label: string, list: string[], count: number, show = 5): string {
  if (!list.length) return '';
  const shown = list.slice(0, show);
  return `; ${label}: ${shown.join(', ')}${count > shown.length ? ` and ${count - shown.length} more` : ''}`;
}

/** The gate's verdict for one observation. */
export function convergenceOutcome(environment: string, observed: ConvergenceObserved, rules: Partial<ConvergenceRules> & { minPercent: number }): CheckOutcome {
  const r = { ...DEFAULT_RULES, ...rules };
  const { total, converged, lagging, failed, stale, inFlight } = observed;
  // needed = ceil(total * minPercent / 100), kept in integers so 3 of 3 at 100% is exact
  const needed = Math.ceil((total * r.minPercent) / 100 - 1e-9);
  const pct = total === 0 ? 0 : Math.floor((converged * 1000) / total) / 10;
  const summary =
    `${converged}/${total} nodes converged (${pct}%, need ${r.minPercent}%), ${lagging} lagging` +
    (inFlight ? ` (${inFlight} saved other versions in a run that started around the pin)` : '') +
    `, ${failed} failed` +
    (stale ? `, ${plural(stale, 'stale node')} (no successful run in ${fmtDuration(r.staleAfterMs)}; ${r.includeStale ? 'counted' : 'not counted'})` : '') +
    (observed.unaffected ? `, ${plural(observed.unaffected, 'node')} without these cookbooks (not counted)` : '');
  const failedText = observed.failures.length
    ? `; failed: ${observed.failures.slice(0, 5).map((f) => `${f.node}${f.error ? ` (${f.error})` : ''}`).join('; ')}${failed > 5 ? `; and ${failed - 5} more` : ''}`
    : names('failed', observed.failedNodes, failed);
  const detail = `${failedText}${names('lagging', observed.laggingNodes, lagging)}${names('stale', observed.staleNodes, stale)}`;
  const blind = observed.reporting.available
    ? ''
    : ` [no run reports${observed.reporting.note ? `: ${observed.reporting.note}` : ''}; a failed chef-client run saves nothing, so failed nodes show only as lagging]`;

  if (failed > r.maxFailed) {
    return {
      status: 'fail',
      observed,
      reason: `${plural(failed, 'node')} failed chef-client since the pin (${r.maxFailed} tolerated): ${summary}${detail}${blind}`,
    };
  }
  if (total === 0) {
    return {
      status: 'wait',
      observed,
      reason: stale
        ? `all ${plural(stale, 'node')} of environment ${environment} that use these cookbooks are stale (no successful chef-client run in ${fmtDuration(r.staleAfterMs)})${names('stale', observed.staleNodes, stale)}`
        : observed.unaffected
          ? `none of the ${observed.unaffected} nodes in environment ${environment} runs these cookbooks`
          : `no nodes found in environment ${environment} (none registered yet, or the search index is behind)`,
    };
  }
  if (converged >= needed) return { status: 'pass', observed, reason: `${summary}${detail}${blind}` };
  if (converged + lagging < needed) {
    // the failed nodes will not converge by themselves: the target is out of reach
    return { status: 'fail', observed, reason: `${summary}: too many nodes failed since the pin to reach ${r.minPercent}%${detail}${blind}` };
  }
  return { status: 'wait', observed, reason: `${summary}${detail}${blind}` };
}

/** What a gate remembers between its polls: the failed runs it has already seen, and when it asked. */
export interface PollMemory {
  seen: Set<string>;
  /** worker clock (epoch ms) when the previous reporting query was sent */
  askedAt?: number;
}

export const newPollMemory = (): PollMemory => ({ seen: new Set() });

/**
 * Which failed runs certainly started after the pin, per node the latest of them. Node clocks may
 * be off by up to maxClockSkew, so a start time alone proves it only beyond `since` + maxClockSkew.
 * A run that was not in the previous poll's answer ended after that poll was sent; if that poll
 * was sent more than the run's duration (+1 s: report times have whole seconds) after `since`,
 * the run started after the pin whatever the node's clock says. So a failing run after the pin is
 * caught by the first poll after it ends, except when it ended within a second or two of the pin
 * or before the gate's first poll (then the node's next failing run is).
 */
export function failuresSincePin(runs: readonly FailedRun[], sinceMs: number, maxClockSkewMs: number, memory?: PollMemory): Map<string, FailedRun> {
  const out = new Map<string, FailedRun>();
  for (const r of runs) {
    const byClock = r.startedAt * 1000 > sinceMs + maxClockSkewMs;
    const byPolls = memory?.askedAt !== undefined && !memory.seen.has(r.runId) && memory.askedAt - (r.endedAt - r.startedAt + 1) * 1000 >= sinceMs;
    if (!byClock && !byPolls) continue;
    const prev = out.get(r.node);
    if (!prev || prev.startedAt < r.startedAt) out.set(r.node, r);
  }
  return out;
}

/** One poll: search and run reports side by side, classify, decide. */
export async function checkConvergence(
  client: ChefClient,
  environment: string,
  cookbooks: Record<string, string>,
  sinceMs: number,
  rules: Partial<ConvergenceRules> & { minPercent: number },
  signal?: AbortSignal,
  memory: PollMemory = newPollMemory(),
): Promise<CheckOutcome> {
  const r = { ...DEFAULT_RULES, ...rules };
  const nowMs = Date.now();
  const [{ nodes }, reports] = await Promise.all([
    searchNodeFacts(client, environment, Object.keys(cookbooks), signal ? { signal } : {}),
    failedRunsSince(client, sinceMs - r.maxClockSkewMs, nowMs + r.maxClockSkewMs, signal),
  ]);
  let failures: Map<string, FailedRun> | undefined;
  if (reports.available) {
    failures = failuresSincePin(reports.failures, sinceMs, r.maxClockSkewMs, memory);
    for (const f of reports.failures) memory.seen.add(f.runId);
    memory.askedAt = nowMs;
  }
  const observed = classifyNodes(nodes, cookbooks, sinceMs, { nowMs, rules: r, ...(failures ? { failures } : {}) });
  if (!reports.available) observed.reporting = { available: false, note: reports.why };
  else {
    // a server whose run list has no exception data: fetch it for the few failures the reason shows
    for (const f of observed.failures.slice(0, 5)) {
      const runId = f.error ? undefined : failures!.get(f.node)?.runId;
      if (runId) f.error = await describeRun(client, runId, signal).catch(() => 'failed (no details readable)');
    }
  }
  return convergenceOutcome(environment, observed, r);
}

export type { FailedRun, RunReports };
