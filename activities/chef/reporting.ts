/**
 * Failed chef-client runs, from the Chef reporting API (Chef Infra Server's reporting add-on;
 * goiardi serves it too). chef-client posts a run's start and end there (resource_reporter.rb);
 * a failed run carries data.exception {class, message, description}. Without it, a failed run
 * leaves no trace on the server at all: chef-client saves the node only after a success.
 *
 *   GET reports/org/runs?status=failure&from=UNIX&until=UNIX&rows=N
 *   header X-Ops-Reporting-Protocol-Version: 0.1.0
 *
 * `from`/`until` select on the run's start_time, which is the node's own clock: callers widen
 * the window by the clock skew they tolerate. `until` defaults to the server's "now", which would
 * drop runs of nodes whose clocks are ahead, so it is always given. goiardi returns up to rows+1
 * runs in no particular order, so `rows` grows until the answer is not cut.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { CHEF_FORBIDDEN, CHEF_NOT_ALLOWED, CHEF_NOT_FOUND, CHEF_BAD_REQUEST, type ChefClient } from './client.ts';

export const REPORTING_HEADERS = { 'X-Ops-Reporting-Protocol-Version': '0.1.0' };

export interface FailedRun {
  node: string;
  runId: string;
  /** start of the run, epoch seconds (whole), on the node's clock */
  startedAt: number;
  /** end of the run, epoch seconds (whole), on the node's clock; startedAt when not given */
  endedAt: number;
  /** "RuntimeError: boom", at most ERROR_MAX characters */
  error: string;
}

export type RunReports = { available: true; failures: FailedRun[] } | { available: false; why: string };

const ERROR_MAX = 300;
const MAX_ROWS = 65_536;

interface ReportRow {
  run_id?: unknown;
  node_name?: unknown;
  status?: unknown;
  start_time?: unknown;
  end_time?: unknown;
  data?: { exception?: { class?: unknown; message?: unknown; description?: { title?: unknown; sections?: unknown } } };
}

/** "2026-12-02T13:53:15Z" (goiardi's answer) or "2026-12-02 13:53:15 +0000" (what clients post) -> epoch seconds */
export function parseReportTime(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d)$/.exec(v.trim());
  const ms = Date.parse(m ? `${m[1]}T${m[2]}${m[3]}:${m[4]}` : v);
  return Number.isFinite(ms) ? ms / 1000 : undefined;
}

/**
 * The text of a failed run for a gate's reason: exception class and message, and for a bare
 * HTTP error ("412 \"Precondition Failed\"") what the description adds. It comes from the
 * node, so it is flattened to one line and cut short.
 */
export function describeException(exception: NonNullable<ReportRow['data']>['exception']): string {
  if (!exception) return 'failed (the run report has no exception)';
  const cls = typeof exception.class === 'string' ? (/^#<((?:\w+::)*\w+)/.exec(exception.class)?.[1] ?? exception.class) : '';
  const message = typeof exception.message === 'string' ? exception.message : '';
  let text = cls && message ? `${cls}: ${message}` : cls || message || 'failed';
  if (/^\d{3} "/.test(message) && Array.isArray(exception.description?.sections)) {
    const more = (exception.description.sections as unknown[])
      .flatMap((s) => (s && typeof s === 'object' ? Object.values(s as Record<string, unknown>) : []))
      .filter((x): x is string => typeof x === 'string')
      .join('; ');
    if (more) text += `: ${more}`;
  }
  // eslint-disable-next-line no-control-regex
  text = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return text.length > ERROR_MAX ? `${text.slice(0, ERROR_MAX - 1)}…` : text;
}

/** Servers and clients known to have no readable reports, so later polls skip the request. */
const unavailable = new Map<string, { why: string; at: number }>();
const RECHECK_MS = 5 * 60_000;

/** Every failed run that started (node clock) between fromMs and untilMs. */
export async function failedRunsSince(client: ChefClient, fromMs: number, untilMs: number, signal?: AbortSignal): Promise<RunReports> {
  const key = `${client.serverUrl} ${client.identity.clientName}`;
  const known = unavailable.get(key);
  if (known && Date.now() - known.at < RECHECK_MS) return { available: false, why: known.why };
  const from = Math.floor(fromMs / 1000);
  const until = Math.ceil(untilMs / 1000) + 1;
  for (let rows = 1000; ; rows *= 2) {
    let page: { run_history?: ReportRow[] };
    try {
      page = await client.get<{ run_history?: ReportRow[] }>('reports/org/runs', {
        object: 'failed chef-client runs (reporting API)',
        query: { status: 'failure', from, until, rows },
        headers: REPORTING_HEADERS,
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      const t = err instanceof ApplicationFailure ? err.type : undefined;
      const why =
        t === CHEF_NOT_FOUND || t === CHEF_NOT_ALLOWED || t === CHEF_BAD_REQUEST
          ? `${client.serverUrl} has no reporting API (Chef Infra Server needs the reporting add-on)`
          : t === CHEF_FORBIDDEN
            ? `client "${client.identity.clientName}" may not read run reports on ${client.serverUrl} (goiardi lets only admin clients read them)`
            : undefined;
      if (!why) throw err; // unreachable, 5xx, 401: the poll errs and is retried
      unavailable.set(key, { why, at: Date.now() });
      return { available: false, why };
    }
    const runs = page?.run_history ?? [];
    if (runs.length >= rows && rows < MAX_ROWS) continue; // cut: ask for more
    const failures: FailedRun[] = [];
    for (const r of runs) {
      if (r.status !== 'failure' || typeof r.node_name !== 'string') continue;
      const startedAt = parseReportTime(r.start_time);
      if (startedAt === undefined) continue;
      const endedAt = Math.max(startedAt, parseReportTime(r.end_time) ?? startedAt);
      // Chef Infra Server's list leaves out data; describeRun fetches it for the few that are shown
      failures.push({ node: r.node_name, runId: String(r.run_id ?? ''), startedAt, endedAt, error: r.data ? describeException(r.data.exception) : '' });
    }
    unavailable.delete(key);
    return { available: true, failures };
  }
}

/** One run's exception, from its detail (for servers whose run list carries no data). */
export async function describeRun(client: ChefClient, runId: string, signal?: AbortSignal): Promise<string> {
  const detail = await client.get<{ run_detail?: ReportRow; data?: ReportRow['data'] }>(`reports/org/runs/${encodeURIComponent(runId)}`, {
    object: `chef-client run ${runId} (reporting API)`,
    headers: REPORTING_HEADERS,
    ...(signal ? { signal } : {}),
  });
  return describeException((detail?.run_detail?.data ?? detail?.data)?.exception);
}
