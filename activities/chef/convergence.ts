/**
 * Chef node convergence: which nodes of an environment have run chef-client since the pin and
 * ended up on a cookbook version that satisfies the release's constraint.
 *
 * One poll is one paged search over the environment's nodes; work per poll is linear in the
 * number of nodes (fixed-size pages, constant work per row, no per-node requests).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { CHEF_BAD_REQUEST, CHEF_NOT_ALLOWED, CHEF_NOT_FOUND, CHEF_UNAVAILABLE, type ChefClient } from './client.ts';
import { parseConstraint, satisfies, type Constraint } from './constraints.ts';
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
  /** start of the last successful chef-client run, epoch seconds */
  ohaiTime: number | undefined;
  /** cookbook -> version the last run used */
  versions: Record<string, string | undefined>;
}

export interface ConvergenceObserved {
  /** nodes that use at least one of the cookbooks, or have never run */
  total: number;
  converged: number;
  /** not run since the pin */
  lagging: number;
  /** ran since the pin but on a version outside the constraint (or without the cookbook) */
  failed: number;
  /** first 20 by name */
  laggingNodes: string[];
  /** first 20 by name */
  failedNodes: string[];
  /** nodes in the environment whose last run used none of the cookbooks; not part of total */
  unaffected: number;
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

/**
 * Sorts nodes into converged / lagging / failed. A chef-client run records ohai_time when it
 * starts and saves the node only when it succeeds, so ohai_time after the pin means a successful
 * run that resolved cookbooks under the new constraint.
 */
export function classifyNodes(nodes: Iterable<NodeFacts>, cookbooks: Record<string, string>, sinceMs: number): ConvergenceObserved {
  const parsed: [string, Constraint][] = Object.entries(cookbooks).map(([cb, c]) => {
    const p = parseConstraint(c);
    if (!p) {
      throw ApplicationFailure.create({ type: CHEF_BAD_REQUEST, nonRetryable: true, message: `${JSON.stringify(c)} for cookbook ${cb} is not a Chef version constraint` });
    }
    return [cb, p];
  });
  const sinceSec = sinceMs / 1000;
  const cookbookNames = Object.keys(cookbooks);
  const out: ConvergenceObserved = { total: 0, converged: 0, lagging: 0, failed: 0, laggingNodes: [], failedNodes: [], unaffected: 0 };
  for (const n of nodes) {
    // A node that has run but uses none of these cookbooks (a database node in a web release's
    // environment) will never converge on them: it is counted apart instead of holding the gate.
    if (n.ohaiTime !== undefined && cookbookNames.every((cb) => n.versions[cb] === undefined)) {
      out.unaffected++;
      continue;
    }
    out.total++;
    if (n.ohaiTime === undefined || !(n.ohaiTime > sinceSec)) {
      out.lagging++;
      keepFirst(out.laggingNodes, n.name);
    } else if (parsed.every(([cb, c]) => n.versions[cb] !== undefined && satisfies(n.versions[cb]!, c))) {
      out.converged++;
    } else {
      out.failed++;
      keepFirst(out.failedNodes, n.name);
    }
  }
  return out;
}

/** The gate's verdict for one observation. */
export function convergenceOutcome(environment: string, observed: ConvergenceObserved, minPercent: number): CheckOutcome {
  const { total, converged, lagging, failed } = observed;
  // needed = ceil(total * minPercent / 100), kept in integers so 3 of 3 at 100% is exact
  const needed = Math.ceil((total * minPercent) / 100 - 1e-9);
  const pct = total === 0 ? 0 : Math.floor((converged * 1000) / total) / 10;
  const summary =
    `${converged}/${total} nodes converged (${pct}%, need ${minPercent}%), ${lagging} lagging, ${failed} failed` +
    (observed.unaffected ? ` (${observed.unaffected} nodes without these cookbooks not counted)` : '');
  const names = (label: string, list: string[], count: number) =>
    list.length ? `; ${label}: ${list.join(', ')}${count > list.length ? ` and ${count - list.length} more` : ''}` : '';
  if (total === 0) {
    return {
      status: 'wait',
      observed,
      reason: observed.unaffected
        ? `none of the ${observed.unaffected} nodes in environment ${environment} runs these cookbooks`
        : `no nodes found in environment ${environment} (none registered yet, or the search index is behind)`,
    };
  }
  if (converged >= needed) return { status: 'pass', observed, reason: summary };
  if (converged + lagging < needed) {
    // the nodes that already ran on a wrong version will not fix themselves: the target is out of reach
    return { status: 'fail', observed, reason: `${summary}: too many nodes ran since the pin without a matching cookbook version${names('failed', observed.failedNodes, failed)}` };
  }
  return { status: 'wait', observed, reason: `${summary}${names('lagging', observed.laggingNodes, lagging)}${names('failed', observed.failedNodes, failed)}` };
}

/** One poll: search, classify, decide. */
export async function checkConvergence(
  client: ChefClient,
  environment: string,
  cookbooks: Record<string, string>,
  sinceMs: number,
  minPercent: number,
  signal?: AbortSignal,
): Promise<CheckOutcome> {
  const { nodes } = await searchNodeFacts(client, environment, Object.keys(cookbooks), signal ? { signal } : {});
  return convergenceOutcome(environment, classifyNodes(nodes, cookbooks, sinceMs), minPercent);
}
