import { ApplicationFailure } from '@temporalio/activity';
import { request, type Dispatcher } from 'undici';
import { activityScope, denied } from '../../policy/enforce.ts';
import { policyDenial } from '../../policy/net.ts';
import { displayUrl } from './request.ts';
import { pollGate } from './poll.ts';
import { describeRequestError, readCapped, requestSignal } from './request.ts';
import type { CheckOutcome, GateResult } from './result.ts';
import type { GateRun, PrometheusGateSpec } from './types.ts';

/** Failure type of a query Prometheus will never accept (bad PromQL, a range vector). */
export const PROMETHEUS_QUERY_ERROR = 'PrometheusQueryError';

/** Bounds one query; Prometheus's own default query timeout is 2m, far longer than a check should take. */
const QUERY_TIMEOUT_MS = 30_000;
const MAX_BODY_BYTES = 8 << 20;

/**
 * Prometheus threshold gate: an instant query, every series compared with the threshold.
 *
 * - A breach is a hard failure: the gate fails at once with the offending value. The metric says
 *   the new version is unhealthy now; waiting out the deadline would only keep users on it.
 * - `wait` only while the answer cannot be judged yet: an empty result with onEmpty "wait", or
 *   Prometheus unreachable / timing out / failing to execute the query (a 422 can depend on data).
 * - A query Prometheus rejects as malformed (HTTP 400 bad_data) or one that returns a range vector
 *   or a string is a non-retryable ApplicationFailure quoting Prometheus: no retry will fix it.
 * - NaN samples (typically 0/0: an error ratio with no traffic) carry no verdict and are dropped;
 *   if nothing else is left the result counts as empty.
 */
export async function prometheusGate(input: GateRun & { prometheus: PrometheusGateSpec }): Promise<GateResult> {
  // the worker's policy: Prometheus must be a host the app may reach, checked again at each connection
  const scope = activityScope();
  const refused = scope?.destination(input.prometheus.url);
  if (refused) throw denied(`gate ${input.gate}: Prometheus at ${displayUrl(input.prometheus.url)}: ${refused}`);
  const dispatcher = scope?.guard().dispatcher();
  try {
    return await pollGate({ name: input.gate, kind: 'prometheus' }, input, (signal) => checkPrometheus(input.prometheus, signal, dispatcher));
  } finally {
    await dispatcher?.close().catch(() => {});
  }
}

interface Sample {
  metric: Record<string, string>;
  value: number;
}

type Answer =
  | { kind: 'samples'; samples: Sample[]; dropped: number }
  | { kind: 'unavailable'; reason: string }
  | { kind: 'refused'; reason: string };

export async function checkPrometheus(spec: PrometheusGateSpec, cancel?: AbortSignal, dispatcher?: Dispatcher): Promise<CheckOutcome> {
  const answer = await instantQuery(spec.url, spec.query, cancel, dispatcher);
  if (answer.kind === 'refused') return { status: 'fail', reason: answer.reason, observed: null };
  if (answer.kind === 'unavailable') return { status: 'wait', reason: answer.reason, observed: null };

  const { samples, dropped } = answer;
  if (samples.length === 0) {
    const why = dropped > 0 ? `query returned only NaN (${dropped} series)` : 'query returned no data';
    const status = spec.onEmpty;
    return { status, reason: `${why} (onEmpty: ${status})`, observed: null };
  }

  const ok = (v: number) => compare(v, spec.comparison, spec.threshold);
  // "Worst" is the sample furthest on the wrong side: the largest for < and <=, the smallest for > and >=.
  const higherIsWorse = spec.comparison === '<' || spec.comparison === '<=';
  const worst = samples.reduce((a, b) => ((higherIsWorse ? b.value > a.value : b.value < a.value) ? b : a));
  const breaching = samples.filter((s) => !ok(s.value));
  const observed = { value: worst.value, metric: worst.metric, series: samples.length };
  const of = samples.length > 1 ? ` (worst of ${samples.length} series)` : '';

  if (breaching.length > 0) {
    const count = samples.length > 1 ? ` (${breaching.length} of ${samples.length} series breach; worst shown)` : '';
    return {
      status: 'fail',
      reason: `threshold breached: ${seriesName(worst.metric)} = ${formatValue(worst.value)}, must be ${spec.comparison} ${spec.threshold}${count}`,
      observed,
    };
  }
  return {
    status: 'pass',
    reason: `${seriesName(worst.metric)} = ${formatValue(worst.value)} ${spec.comparison} ${spec.threshold}${of}`,
    observed,
  };
}

function compare(v: number, op: PrometheusGateSpec['comparison'], t: number): boolean {
  switch (op) {
    case '<':
      return v < t;
    case '<=':
      return v <= t;
    case '>':
      return v > t;
    case '>=':
      return v >= t;
  }
}

/** Prometheus writes sample values as strings, with its own spelling of the infinities. */
function parseSampleValue(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

const formatValue = (v: number) => (Number.isFinite(v) ? String(Number(v.toPrecision(6))) : v > 0 ? '+Inf' : '-Inf');

function seriesName(metric: Record<string, string>): string {
  const { __name__: name = '', ...labels } = metric;
  const inner = Object.entries(labels)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ');
  if (!inner) return name || 'value';
  return `${name}{${inner}}`;
}

interface ApiEnvelope {
  status?: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

/**
 * GET <url>/api/v1/query. Errors per the API's contract: 400 for malformed parameters (bad_data,
 * a PromQL parse error), 422 when the expression cannot be executed, 503 on timeout or abort;
 * other codes come from whatever sits in front of Prometheus.
 */
async function instantQuery(base: string, query: string, cancel?: AbortSignal, dispatcher?: Dispatcher): Promise<Answer> {
  const url = new URL('api/v1/query', base.endsWith('/') ? base : `${base}/`);
  url.searchParams.set('query', query);
  let statusCode: number;
  let text: string;
  try {
    const res = await request(url, { method: 'GET', headers: { accept: 'application/json' }, signal: requestSignal(QUERY_TIMEOUT_MS, cancel), ...(dispatcher ? { dispatcher } : {}) });
    statusCode = res.statusCode;
    ({ text } = await readCapped(res.body, MAX_BODY_BYTES));
  } catch (err) {
    if (cancel?.aborted) throw err;
    const denial = policyDenial(err);
    if (denial) return { kind: 'refused', reason: `refused by the worker's policy: ${denial.message}` };
    return { kind: 'unavailable', reason: `Prometheus unreachable: ${describeRequestError(err, QUERY_TIMEOUT_MS)}` };
  }

  let body: ApiEnvelope | undefined;
  try {
    body = JSON.parse(text) as ApiEnvelope;
  } catch {
    body = undefined;
  }

  if (body?.status === 'error' || statusCode >= 400) {
    const prom = body?.error ? `${body.errorType ?? 'error'}: ${body.error}` : `HTTP ${statusCode}`;
    if (statusCode === 400 && body?.errorType === 'bad_data') {
      throw ApplicationFailure.create({
        type: PROMETHEUS_QUERY_ERROR,
        message: `Prometheus rejected the query ${JSON.stringify(query)}: ${body.error ?? 'bad_data'}`,
        nonRetryable: true,
      });
    }
    return { kind: 'unavailable', reason: `query error (HTTP ${statusCode}, not a threshold breach): ${prom}` };
  }
  if (!body?.data) return { kind: 'unavailable', reason: `Prometheus answered HTTP ${statusCode} without a JSON result` };

  const { resultType, result } = body.data;
  if (resultType === 'scalar') {
    const [, v] = result as [number, string];
    const value = parseSampleValue(v);
    return Number.isNaN(value) ? { kind: 'samples', samples: [], dropped: 1 } : { kind: 'samples', samples: [{ metric: {}, value }], dropped: 0 };
  }
  if (resultType === 'vector') {
    const samples: Sample[] = [];
    let dropped = 0;
    for (const r of result as { metric: Record<string, string>; value: [number, string] }[]) {
      const value = parseSampleValue(r.value[1]);
      if (Number.isNaN(value)) dropped++;
      else samples.push({ metric: r.metric, value });
    }
    return { kind: 'samples', samples, dropped };
  }
  throw ApplicationFailure.create({
    type: PROMETHEUS_QUERY_ERROR,
    message: `query ${JSON.stringify(query)} returns a ${resultType ?? 'unknown'} result; a gate needs an instant vector or a scalar`,
    nonRetryable: true,
  });
}
