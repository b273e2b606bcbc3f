/**
 * Waits tied to events, for tests on a loaded machine: each wait ends when the awaited thing is
 * seen (a release's phase through its status query, a probe's answer), and its deadline is only a
 * backstop — minutes, not seconds — whose failure message says what was last seen.
 */
import assert from 'node:assert/strict';
import { type WorkflowHandle, WorkflowFailedError } from '@temporalio/client';
import { FINAL_PHASES, type Phase, type ReleaseStatus, statusQuery } from '../../workflows/messages.ts';

/** The backstop for any wait in a test: far beyond what a loaded 2-core machine needs. */
export const GENEROUS_MS = 5 * 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const oneLine = (v: unknown) => (v instanceof Error ? v.message : typeof v === 'string' ? v : JSON.stringify(v))?.replace(/\s+/g, ' ').slice(0, 400);

/**
 * Probes until `ok` holds for the probe's answer. A probe that throws counts as "not yet" (a server
 * still starting); the failure at the deadline quotes the last answer or error.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  options: { timeoutMs?: number; intervalMs?: number; show?: (value: T) => string } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? GENEROUS_MS;
  const deadline = Date.now() + timeoutMs;
  let last = 'nothing yet (no answer)';
  for (;;) {
    try {
      const value = await probe();
      if (ok(value)) return value;
      last = options.show ? options.show(value) : oneLine(value);
    } catch (err) {
      last = `error: ${oneLine(err)}`;
    }
    if (Date.now() > deadline) assert.fail(`gave up after ${Math.round(timeoutMs / 1000)}s waiting for ${what}; last seen: ${last}`);
    await sleep(options.intervalMs ?? 250);
  }
}

const describeStatus = (s: ReleaseStatus) => {
  const step = s.currentStep !== undefined ? s.steps[s.currentStep] : undefined;
  return `phase ${s.phase}${step ? `, step ${step.index + 1} ${step.state}: ${step.summary}` : ''}${s.error ? `, error: ${s.error}` : ''}`;
};

/**
 * Waits until a release is in `phase` (one of `phase`), read through its status query. A release
 * that ended in another phase fails the wait at once, quoting how it ended.
 */
export async function waitForPhase(handle: WorkflowHandle, phase: Phase | readonly Phase[], options: { timeoutMs?: number } = {}): Promise<ReleaseStatus> {
  const wanted: readonly Phase[] = typeof phase === 'string' ? [phase] : phase;
  const timeoutMs = options.timeoutMs ?? GENEROUS_MS;
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer to the status query yet';
  for (;;) {
    try {
      const s = await handle.query(statusQuery);
      if (wanted.includes(s.phase)) return s;
      last = describeStatus(s);
      if (FINAL_PHASES.includes(s.phase)) assert.fail(`release ${handle.workflowId} ended ${s.phase}, expected ${wanted.join(' or ')}: ${last}`);
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      last = `status query failed: ${oneLine(err)}`;
      const ended = await handle.describe().then((d) => (d.status.name === 'RUNNING' ? undefined : d.status.name), () => undefined);
      if (ended) assert.fail(`release ${handle.workflowId} is ${ended}, expected phase ${wanted.join(' or ')}: ${await endedHow(handle)}`);
    }
    if (Date.now() > deadline) assert.fail(`release ${handle.workflowId} not ${wanted.join(' or ')} after ${Math.round(timeoutMs / 1000)}s; last seen: ${last}`);
    await sleep(250);
  }
}

async function endedHow(handle: WorkflowHandle): Promise<string> {
  try {
    return describeStatus((await handle.result()) as ReleaseStatus);
  } catch (err) {
    const status = err instanceof WorkflowFailedError ? ((err.cause as { details?: unknown[] } | undefined)?.details?.[0] as ReleaseStatus | undefined) : undefined;
    return status?.phase ? describeStatus(status) : oneLine(err);
  }
}
