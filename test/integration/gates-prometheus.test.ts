import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { before, describe, it } from 'node:test';
import { prometheusGate, type GateResult, type PrometheusGateSpec } from '../../activities/gates/index.ts';
import { GATE_FAILED, GATE_TIMED_OUT } from '../../activities/gates/poll.ts';
import { PROMETHEUS_QUERY_ERROR } from '../../activities/gates/prometheus.ts';
import { requireEnv, uniqueName } from '../support/env.ts';
import { activityEnv, rejection } from '../support/gates-activity.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Against the stack's real Prometheus, which scrapes the stack's demo exporter every second
 * (scripts/stack/prometheus.ts, scripts/demo-exporter.ts). The exporter has one global error rate,
 * so only the tests that must move it do, and they put it back; everything else queries series
 * nobody changes, or builds them inside PromQL.
 */
const PROMETHEUS_URL = requireEnv('PROMETHEUS_URL');
const DEMO_EXPORTER_URL = requireEnv('DEMO_EXPORTER_URL');

// The error ratio over the last 5 s of simulated traffic: what a canary analysis would query.
const ERROR_RATIO =
  'sum(rate(demo_http_requests_total{code="500"}[5s])) / sum(rate(demo_http_requests_total[5s]))';
const OK_TRAFFIC = 'sum(rate(demo_http_requests_total{code="200"}[5s]))';

interface ExporterSettings {
  errorRate: number;
  requestsPerSecond: number;
  version: string;
}

async function control(change?: Partial<ExporterSettings>): Promise<ExporterSettings> {
  const res = await fetch(`${DEMO_EXPORTER_URL}/control`, change ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(change) } : {});
  assert.equal(res.status, 200, `exporter control: ${await res.clone().text()}`);
  return (await res.json()) as ExporterSettings;
}

/** `progress` counts the gate's checks as its heartbeats report them, for waits tied to them. */
function run(prometheus: Partial<PrometheusGateSpec> & { query: string }, timing: { timeoutMs?: number; intervalMs?: number; successes?: number } = {}, progress?: { checks: number }): Promise<GateResult> {
  const input: Parameters<typeof prometheusGate>[0] = {
    gate: 'metrics',
    timeoutMs: timing.timeoutMs ?? 10_000,
    intervalMs: timing.intervalMs ?? 200,
    successes: timing.successes ?? 1,
    prometheus: { url: PROMETHEUS_URL, comparison: '<', threshold: 0.05, onEmpty: 'wait', ...prometheus },
  };
  const { env } = activityEnv();
  if (progress) env.on('heartbeat', (d: { checks?: number }) => (progress.checks = Math.max(progress.checks, d?.checks ?? 0)));
  return env.run(prometheusGate, input) as Promise<GateResult>;
}

/** A deadline far beyond any run: a gate that ends did so because of what it found. */
const FAR = 30 * 60_000;

const details = (err: Record<string, unknown>) => (err.details as GateResult[])[0]!;
/** A selector that matches nothing, unique per use so no other test can make it match. */
const nothing = () => `demo_http_requests_total{code="${uniqueName('none')}"}`;

describe('prometheusGate against a real Prometheus', () => {
  let saved: ExporterSettings;
  before(async () => {
    saved = await control();
    assert.ok(saved.requestsPerSecond >= 5, `the demo exporter simulates traffic (requestsPerSecond ${saved.requestsPerSecond})`);
  });

  it('passes after N consecutive successes', async () => {
    // Successful traffic, not the error ratio: other files (stack-smoke) move the shared error rate.
    const result = await run({ query: OK_TRAFFIC, comparison: '>', threshold: 1 }, { successes: 3, intervalMs: 200 });
    assert.equal(result.ok, true);
    assert.equal(result.kind, 'prometheus');
    assert.ok(result.checks >= 3);
    const observed = result.observed as { value: number; series: number };
    assert.ok(observed.value > 1, `requests/s ${observed.value}`);
    assert.equal(observed.series, 1);
    assert.equal(result.reason, `value = ${Number(observed.value.toPrecision(6))} > 1`);
  });

  it('a rising error rate fails the gate at once, with the observed value', async () => {
    await control({ errorRate: 0 });
    const progress = { checks: 0 };
    const gate = run({ query: ERROR_RATIO }, { successes: 1_000, intervalMs: 250, timeoutMs: FAR }, progress);
    await waitFor('three passing checks of the gate', async () => progress.checks, (n) => n >= 3);
    await control({ errorRate: 0.5 });
    const err = await rejection(gate);
    try {
      assert.equal(err.type, GATE_FAILED);
      assert.equal(err.nonRetryable, true);
      const r = details(err);
      const value = (r.observed as { value: number }).value;
      assert.ok(value > 0.05 && value <= 1, `observed error ratio ${value}`);
      assert.equal(r.reason, `threshold breached: value = ${Number(value.toPrecision(6))}, must be < 0.05`);
      assert.match(err.message, /^gate metrics \(prometheus\) failed: threshold breached: value = [\d.]+, must be < 0\.05$/);
      assert.ok(r.checks > 3, 'it passed checks while the rate was low, then found the rise');
    } finally {
      await control({ errorRate: 0 });
    }
  });

  describe('an empty result, as configured', () => {
    it('onEmpty: fail fails at once', async () => {
      const err = await rejection(run({ query: nothing(), onEmpty: 'fail' }, { timeoutMs: FAR }));
      assert.equal(err.type, GATE_FAILED);
      assert.equal(details(err).reason, 'query returned no data (onEmpty: fail)');
      assert.equal(details(err).observed, null);
      assert.equal(details(err).checks, 1, 'the first check decided it');
    });

    it('onEmpty: pass passes', async () => {
      const result = await run({ query: nothing(), onEmpty: 'pass' }, { successes: 2, intervalMs: 50 });
      assert.equal(result.ok, true);
      assert.equal(result.reason, 'query returned no data (onEmpty: pass)');
      assert.equal(result.checks, 2);
    });

    it('onEmpty: wait keeps waiting, and fails at the deadline saying why', async () => {
      const err = await rejection(run({ query: nothing(), onEmpty: 'wait' }, { timeoutMs: 800, intervalMs: 200 }));
      assert.equal(err.type, GATE_TIMED_OUT);
      assert.equal(details(err).reason, 'query returned no data (onEmpty: wait)');
      assert.ok(details(err).checks >= 2, 'checked, waited, checked again until the deadline');
    });

    it('onEmpty: wait passes once the series appears', async () => {
      const version = uniqueName('v');
      const progress = { checks: 0 };
      const gate = run({ query: `demo_version_info{version="${version}"}`, comparison: '>=', threshold: 1, onEmpty: 'wait' }, { timeoutMs: FAR, intervalMs: 200 }, progress);
      await waitFor('three checks finding no series', async () => progress.checks, (n) => n >= 3);
      await control({ version });
      try {
        const result = await gate;
        assert.equal(result.ok, true);
        assert.ok(result.checks > 2, 'it waited while the series was absent');
        assert.deepEqual(result.observed, { value: 1, metric: { __name__: 'demo_version_info', instance: (result.observed as { metric: { instance: string } }).metric.instance, job: 'demo', version }, series: 1 });
      } finally {
        await control({ version: saved.version });
      }
    });

    it('NaN (0/0: no traffic) counts as no data', async () => {
      const err = await rejection(run({ query: 'vector(0) / vector(0)', onEmpty: 'fail' }));
      assert.equal(err.type, GATE_FAILED);
      assert.equal(details(err).reason, 'query returned only NaN (1 series) (onEmpty: fail)');
    });
  });

  it('checks every series and names the worst', async () => {
    const twoPods =
      'label_replace(vector(0.01), "pod", "canary-a", "", "") or label_replace(vector(0.2), "pod", "canary-b", "", "") or label_replace(vector(0.03), "pod", "canary-c", "", "")';
    const err = await rejection(run({ query: twoPods, comparison: '<', threshold: 0.05 }));
    assert.equal(err.type, GATE_FAILED);
    assert.equal(details(err).reason, 'threshold breached: {pod="canary-b"} = 0.2, must be < 0.05 (1 of 3 series breach; worst shown)');
    assert.deepEqual(details(err).observed, { value: 0.2, metric: { pod: 'canary-b' }, series: 3 });

    const result = await run({ query: twoPods, comparison: '>', threshold: 0.005 });
    assert.equal(result.ok, true);
    assert.equal(result.reason, '{pod="canary-a"} = 0.01 > 0.005 (worst of 3 series)');
  });

  it('compares a scalar result too', async () => {
    const result = await run({ query: 'scalar(vector(3))', comparison: '>=', threshold: 3 });
    assert.equal(result.ok, true);
    assert.equal(result.reason, 'value = 3 >= 3');
  });

  it('a bad PromQL query is a non-retryable error quoting Prometheus', async () => {
    const query = 'sum(rate(demo_http_requests_total[5m])';
    const direct = await fetch(`${PROMETHEUS_URL}/api/v1/query?query=${encodeURIComponent(query)}`);
    const said = (await direct.json()) as { errorType: string; error: string };
    assert.equal(direct.status, 400);
    assert.equal(said.errorType, 'bad_data');

    const err = await rejection(run({ query }, { timeoutMs: FAR }));
    assert.equal(err.type, PROMETHEUS_QUERY_ERROR);
    assert.equal(err.nonRetryable, true);
    assert.equal(err.message, `Prometheus rejected the query ${JSON.stringify(query)}: ${said.error}`);
  });

  it('a range-vector query is a non-retryable error too', async () => {
    const err = await rejection(run({ query: 'demo_http_requests_total[1m]' }));
    assert.equal(err.type, PROMETHEUS_QUERY_ERROR);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /returns a matrix result; a gate needs an instant vector or a scalar/);
  });

  it('an unreachable Prometheus is a wait with the reason, not a breach', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const err = await rejection(run({ url: `http://127.0.0.1:${port}/`, query: 'vector(1)' }, { timeoutMs: 500, intervalMs: 100 }));
    assert.equal(err.type, GATE_TIMED_OUT);
    assert.match(details(err).reason, /^Prometheus unreachable: connection refused \(.*ECONNREFUSED/);
    assert.ok(details(err).checks >= 3);
  });

  it('takes a base URL with a trailing slash', async () => {
    const result = await run({ url: `${PROMETHEUS_URL}/`, query: 'vector(1)', comparison: '>', threshold: 0 });
    assert.equal(result.ok, true);
  });
});
