import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import type { Info } from '@temporalio/activity';
import type { MockActivityEnvironment } from '@temporalio/testing';
import { GATE_FAILED, GATE_TIMED_OUT, pollGate } from '../../activities/gates/poll.ts';
import type { CheckOutcome, GateResult, GateTiming } from '../../activities/gates/result.ts';
import { activityEnv } from '../support/gates-activity.ts';

const gate = { name: 'g', kind: 'test' };

function poll(env: MockActivityEnvironment, timing: GateTiming, check: () => Promise<CheckOutcome>): Promise<GateResult> {
  return env.run(pollGate, gate, timing, check) as Promise<GateResult>;
}
/** Activity logs are captured, not printed: these tests fail gates on purpose. */
const quiet = (info?: Partial<Info>) => activityEnv(info).env;

/** A check that plays back outcomes in order (the last one repeats) and counts its calls. */
function scripted(...outcomes: (CheckOutcome | Error)[]) {
  const calls: number[] = [];
  const check = async (): Promise<CheckOutcome> => {
    const next = outcomes[Math.min(calls.length, outcomes.length - 1)]!;
    calls.push(Date.now());
    if (next instanceof Error) throw next;
    return next;
  };
  return { check, calls };
}
const pass = (n = 0): CheckOutcome => ({ status: 'pass', reason: `ok ${n}`, observed: n });
const wait = (n = 0): CheckOutcome => ({ status: 'wait', reason: `not yet ${n}`, observed: n });

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => assert.fail('gate should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
  return err;
}

describe('pollGate', () => {
  it('passes after N consecutive successes; a wait in between starts the count again', async () => {
    const { check, calls } = scripted(pass(1), wait(2), pass(3), pass(4), pass(5));
    const env = quiet();
    const result = await poll(env, { timeoutMs: 5_000, intervalMs: 20, successes: 3 }, check);
    assert.deepEqual(
      { ok: result.ok, checks: result.checks, observed: result.observed, reason: result.reason, gate: result.gate, kind: result.kind },
      { ok: true, checks: 5, observed: 5, reason: 'ok 5', gate: 'g', kind: 'test' },
    );
    assert.equal(calls.length, 5);
    for (let i = 1; i < calls.length; i++) assert.ok(calls[i]! - calls[i - 1]! >= 15, 'checks are an interval apart');
  });

  it('passes on the first check when one success is enough', async () => {
    const { check } = scripted(pass(7));
    const result = await poll(quiet(), { timeoutMs: 1_000, intervalMs: 1_000, successes: 1 }, check);
    assert.equal(result.ok, true);
    assert.equal(result.checks, 1);
  });

  it('fails at once on a hard failure, with the observed value and reason', async () => {
    const { check, calls } = scripted(pass(1), { status: 'fail', reason: 'error rate 0.4', observed: 0.4 }, pass(3));
    // a deadline far beyond the test: found by the second check, not by running out of time
    const err = await failure(poll(quiet(), { timeoutMs: 60_000, intervalMs: 20, successes: 5 }, check));
    assert.equal(err.type, GATE_FAILED);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /gate g \(test\) failed: error rate 0.4/);
    const result = err.details?.[0] as GateResult;
    assert.deepEqual({ ok: result.ok, observed: result.observed, reason: result.reason, checks: result.checks }, { ok: false, observed: 0.4, reason: 'error rate 0.4', checks: 2 });
    assert.equal(calls.length, 2, 'no check after the failure');
  });

  it('fails at the deadline with the last observed value', async () => {
    const { check, calls } = scripted(wait(1), wait(2), wait(3), wait(4), wait(5), wait(6), wait(7), wait(8), wait(9), wait(10));
    const started = Date.now();
    const err = await failure(poll(quiet(), { timeoutMs: 250, intervalMs: 50, successes: 1 }, check));
    assert.equal(err.type, GATE_TIMED_OUT);
    assert.equal(err.nonRetryable, true);
    const result = err.details?.[0] as GateResult;
    assert.equal(result.ok, false);
    assert.equal(result.observed, calls.length);
    assert.equal(result.reason, `not yet ${calls.length}`);
    assert.match(err.message, new RegExp(`did not pass within 0s: not yet ${calls.length}`));
    assert.equal(result.checks, calls.length);
    // not before the deadline (a lower bound; how much later depends on the machine's load)
    assert.ok(calls.at(-1)! - started >= 240, 'the last check is at the deadline');
    // every gap is a full interval except the last, which the poll shortens to end at the deadline
    // (on a loaded machine a slow check leaves less than an interval, so the last gap is any length)
    for (let i = 1; i < calls.length - 1; i++) assert.ok(calls[i]! - calls[i - 1]! >= 40, `checks are an interval apart (${calls.map((t) => t - started).join(', ')} ms)`);
  });

  it('says so when it ran out of time in the middle of a passing streak', async () => {
    const { check } = scripted(pass(1));
    const err = await failure(poll(quiet(), { timeoutMs: 100, intervalMs: 60, successes: 10 }, check));
    assert.equal(err.type, GATE_TIMED_OUT);
    assert.match((err.details?.[0] as GateResult).reason, /^only \d of 10 consecutive checks passed: ok 1$/);
  });

  it('treats an error thrown by a check as "not yet" and keeps checking', async () => {
    const { check, calls } = scripted(new Error('socket hang up'), pass(2));
    const result = await poll(quiet(), { timeoutMs: 5_000, intervalMs: 20, successes: 1 }, check);
    assert.equal(result.ok, true);
    assert.equal(calls.length, 2);

    const { check: broken } = scripted(new Error('socket hang up'));
    const err = await failure(poll(quiet(), { timeoutMs: 60, intervalMs: 20, successes: 1 }, broken));
    assert.equal((err.details?.[0] as GateResult).reason, 'check errored, will retry: socket hang up');
  });

  it('ends the gate with a non-retryable ApplicationFailure thrown by a check, unchanged', async () => {
    const fatal = ApplicationFailure.nonRetryable('bad query', 'PrometheusQueryError');
    const { check, calls } = scripted(wait(1), fatal);
    const err = await failure(poll(quiet(), { timeoutMs: 5_000, intervalMs: 20, successes: 1 }, check));
    assert.equal(err, fatal);
    assert.equal(calls.length, 2);
  });

  it('keeps the original deadline when a retried attempt resumes from heartbeat details', async () => {
    const { check, calls } = scripted(wait(1));
    const startedAt = Date.now() - 10_000;
    const env = quiet({ heartbeatDetails: { startedAt, checks: 41, streak: 0 }, attempt: 2 });
    const err = await failure(poll(env, { timeoutMs: 5_000, intervalMs: 1_000, successes: 1 }, check));
    assert.equal(err.type, GATE_TIMED_OUT);
    assert.equal(calls.length, 1, 'one last check, no fresh deadline');
    const result = err.details?.[0] as GateResult;
    assert.equal(result.checks, 42);
    assert.ok(result.elapsedMs >= 10_000);
  });

  it('heartbeats its progress between checks, often enough for the heartbeat timeout', async () => {
    const { check } = scripted(wait(1), pass(2));
    const env = quiet({ heartbeatTimeoutMs: 150 });
    const beats: { startedAt: number; checks: number; streak: number }[] = [];
    env.on('heartbeat', (d: { startedAt: number; checks: number; streak: number }) => beats.push({ ...d }));
    const result = await poll(env, { timeoutMs: 5_000, intervalMs: 600, successes: 1 }, check);
    assert.equal(result.ok, true);
    const duringSleep = beats.filter((b) => b.checks === 1).length;
    assert.ok(duringSleep >= 2, `the pause between checks heartbeats, not only the checks (got ${duringSleep})`);
    assert.ok(beats.every((b) => b.startedAt === beats[0]!.startedAt), 'the start time travels in every heartbeat');
  });

  // an interval and deadline of an hour: only the cancellation can end this poll (a poll that
  // ignored it would hang until the test's own timeout)
  it('stops when the activity is cancelled, in the middle of its wait', { timeout: 120_000 }, async () => {
    const { check, calls } = scripted(wait(1));
    const env = quiet();
    const running = poll(env, { timeoutMs: 3_600_000, intervalMs: 3_600_000, successes: 1 }, check);
    setTimeout(() => env.cancel(), 100);
    await assert.rejects(running, (err) => err instanceof CancelledFailure);
    assert.equal(calls.length, 1, 'one check, then the cancelled wait');
  });
});
