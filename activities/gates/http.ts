import { readFile } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/activity';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { activityScope, denied } from '../../policy/enforce.ts';
import type { DestinationGuard } from '../../policy/net.ts';
import { policyDenial } from '../../policy/net.ts';
import { evalJsonPath, parseJsonPath } from './json-path.ts';
import { pollGate } from './poll.ts';
import { describeRequestError, displayUrl, readCapped, requestSignal } from './request.ts';
import type { CheckOutcome, GateResult } from './result.ts';
import type { GateRun, HttpGateSpec } from './types.ts';
import { describeValueFrom, redact, resolveValueFrom, ValueFromError } from './value-from.ts';

/** Enough for any version.json or health document; more is reported rather than parsed. */
const MAX_BODY_BYTES = 1 << 20;
const MAX_REDIRECTS = 5;

/**
 * HTTP probe gate. Per check: the expected status, then each JSON field. The worker's policy
 * decides first: the URL's host must be one the app may reach, header values and caFile must be
 * references it may read, and every connection (redirects included) is checked where it is made.
 * Only whether each JSON field matched is recorded, never the value the endpoint answered.
 *
 * Everything that can still change (wrong status, wrong field, timeouts, connection and TLS errors) is a `wait` with a plain
 * reason, so the gate fails at its deadline with the last thing it saw. A header reference that
 * cannot be resolved for good (variable unset, Secret or key missing) is a hard failure: waiting
 * will not set it.
 */
export async function httpGate(input: GateRun & { http: HttpGateSpec }): Promise<GateResult> {
  const { http } = input;
  for (const path of Object.keys(http.json ?? {})) {
    try {
      parseJsonPath(path);
    } catch (err) {
      throw ApplicationFailure.nonRetryable(`http gate: ${(err as Error).message}`, 'GateConfigError');
    }
  }
  const scope = activityScope();
  const refused = scope?.destination(http.url);
  if (refused) throw denied(`gate ${input.gate}: GET ${displayUrl(http.url)}: ${refused}`);
  if (scope && http.insecureSkipVerify && Object.keys(http.headers ?? {}).length > 0) {
    throw denied(`gate ${input.gate}: a gate that sends headers must verify TLS (insecureSkipVerify would send them to whoever answers)`);
  }
  const caRefused = http.caFile ? scope?.reference({ file: http.caFile }) : undefined;
  if (caRefused) throw denied(`gate ${input.gate}: caFile: ${caRefused}`);
  const dispatcher = await makeDispatcher(http, scope?.guard());
  try {
    return await pollGate({ name: input.gate, kind: 'http' }, input, (signal) => probe(http, dispatcher, signal));
  } finally {
    await dispatcher.close().catch(() => {});
  }
}

async function makeDispatcher(http: HttpGateSpec, guard: DestinationGuard | undefined): Promise<Dispatcher> {
  let ca: string | undefined;
  if (http.caFile) {
    try {
      ca = await readFile(http.caFile, 'utf8');
    } catch (err) {
      throw ApplicationFailure.nonRetryable(
        `http gate: cannot read caFile ${http.caFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        'GateConfigError',
      );
    }
  }
  const tls = { ...(ca !== undefined ? { ca } : {}), ...(http.insecureSkipVerify ? { rejectUnauthorized: false } : {}) };
  // with a guard, every connection — the first and each redirect hop — passes the policy's host and address checks
  const agent = guard ? guard.dispatcher(tls) : new Agent({ connect: tls });
  if (!http.followRedirects) return agent;
  // undici drops Authorization and Cookie on a cross-origin redirect; the spec's own headers
  // (an API key under any name) must not follow a redirect to another origin either.
  return agent.compose(
    interceptors.redirect({
      maxRedirections: MAX_REDIRECTS,
      stripHeadersOnCrossOriginRedirect: Object.keys(http.headers ?? {}),
    }),
  );
}

/** One check of the probe: never throws for anything the endpoint or network does. */
export async function probe(http: HttpGateSpec, dispatcher: Dispatcher, cancel?: AbortSignal): Promise<CheckOutcome> {
  const headers: Record<string, string> = {};
  const secrets: string[] = [];
  for (const [name, ref] of Object.entries(http.headers ?? {})) {
    try {
      const value = await resolveValueFrom(ref);
      headers[name] = value;
      secrets.push(value);
    } catch (err) {
      const why = err instanceof ValueFromError ? err.message : `cannot resolve ${describeValueFrom(ref)}`;
      const transient = err instanceof ValueFromError && err.transient;
      return { status: transient ? 'wait' : 'fail', reason: `header ${name}: ${why}` };
    }
  }

  const timeout = http.requestTimeoutMs;
  let res: Dispatcher.ResponseData;
  try {
    res = await request(http.url, { method: 'GET', headers, dispatcher, signal: requestSignal(timeout, cancel) });
  } catch (err) {
    if (cancel?.aborted) throw err;
    const denial = policyDenial(err);
    if (denial) return { status: 'fail', reason: redact(`GET ${displayUrl(http.url)}: refused by the worker's policy: ${denial.message}`, secrets) };
    const reason = redact(`GET ${displayUrl(http.url)}: ${describeRequestError(err, timeout)}`, secrets);
    return { status: 'wait', reason, observed: { error: reason } };
  }

  const status = res.statusCode;
  const observed: { status: number; location?: string; json?: Record<string, unknown> } = { status };
  if (status !== http.expectStatus) {
    await res.body.dump().catch(() => {});
    let reason = `expected status ${http.expectStatus}, got ${status}`;
    const location = res.headers.location;
    if (status >= 300 && status < 400 && typeof location === 'string') {
      // where it points, without its path: the path is the endpoint's data, not ours to record
      observed.location = originOf(location, http.url);
      reason += http.followRedirects
        ? ` (redirect to ${observed.location}: more than ${MAX_REDIRECTS} redirects)`
        : ` (redirect to ${observed.location}, not followed: set followRedirects to follow it)`;
    }
    return { status: 'wait', reason, observed };
  }

  const expected = Object.entries(http.json ?? {});
  if (expected.length === 0) {
    await res.body.dump().catch(() => {});
    return { status: 'pass', reason: `status ${status}`, observed };
  }

  let doc: unknown;
  try {
    const { text, truncated } = await readCapped(res.body, MAX_BODY_BYTES);
    if (truncated) return { status: 'wait', reason: `response body larger than ${MAX_BODY_BYTES} bytes, not checked`, observed };
    doc = JSON.parse(text);
  } catch (err) {
    if (cancel?.aborted) throw err;
    const why = err instanceof SyntaxError ? 'response is not JSON' : describeRequestError(err, timeout);
    return { status: 'wait', reason: `status ${status} but ${why}`, observed };
  }

  // Only whether each field matched is recorded: the endpoint's values are foreign data, and a
  // gate must not be a way to read a response back into status and history.
  observed.json = {};
  const mismatches: string[] = [];
  for (const [path, want] of expected) {
    const got = evalJsonPath(doc, path);
    observed.json[path] = !got.found ? 'missing' : got.value === want ? 'matched' : 'different';
    if (!got.found) mismatches.push(`${path} is missing, expected ${JSON.stringify(want)}`);
    else if (got.value !== want) mismatches.push(`${path} is not ${JSON.stringify(want)} (found ${shape(got.value)})`);
  }
  if (mismatches.length > 0) return { status: 'wait', reason: mismatches.join('; '), observed };
  return {
    status: 'pass',
    reason: `status ${status}, ${expected.map(([p, v]) => `${p} == ${JSON.stringify(v)}`).join(', ')}`,
    observed,
  };
}

/** What kind of value was found, without the value itself. */
function shape(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `a string of ${v.length} character${v.length === 1 ? '' : 's'}`;
  if (typeof v === 'number') return 'another number';
  if (typeof v === 'boolean') return `${v}`;
  if (Array.isArray(v)) return `a list of ${v.length} item${v.length === 1 ? '' : 's'}`;
  return 'an object';
}

/** scheme://host[:port] of a redirect target, or "(invalid URL)". */
function originOf(location: string, base: string): string {
  try {
    return `${new URL(location, base).origin}/…`;
  } catch {
    return '(invalid URL)';
  }
}
