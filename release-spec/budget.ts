/**
 * The history budget: an upper bound of what one release writes into its Temporal history, from
 * its plan alone, and the limits validation holds every plan to — far below Temporal's own
 * (50,000 events and 50 MB per history, 2 MB per payload; the server warns at 10,000 events and
 * 10 MB), so a release can always finish, roll back and answer its status query.
 *
 * The bound counts, per activity, its three events (scheduled, started, closed) and a workflow
 * task of its own (three more), though parallel activities share tasks; a timer two events and a
 * task; a person's command (update) two events and a task; a phase change one search-attribute
 * event and a webhook activity per webhook. Gate checks and retries add nothing (a gate polls
 * inside one heartbeating activity; only an activity's last attempt is recorded). The worst path
 * is counted: every step applied, then every change undone with its waits. The byte bound counts
 * the input three times (start event, admission's input and result) and each activity's target.
 * test/workflow/history-budget.test.ts checks the bound against real histories (a 30-step canary
 * rolled back: 668 events against a bound of 1,477; 467 KiB against 1,026 KiB; status 18 KiB
 * against 60 KiB).
 */
import type { PlanStep, ReleaseInput } from './plan.ts';

/** Limits a plan must stay within (see the module comment for Temporal's). */
export const HISTORY_BUDGET = {
  /** estimated events of the worst path (a fifth of Temporal's 50,000 limit; its warning threshold) */
  events: 10_000,
  /** estimated history bytes of the worst path (a fifth of Temporal's 50 MB limit; its warning threshold) */
  bytes: 10 * 1024 * 1024,
  /** the workflow input as JSON: one payload, recorded three times (an eighth of the 2 MB payload limit) */
  inputBytes: 256 * 1024,
  /** the status query's answer (steps, changes, gate results; an eighth of the 2 MB payload limit) */
  statusBytes: 256 * 1024,
} as const;

const ACTIVITY = 6; // scheduled, started, completed + a workflow task (scheduled, started, completed)
const TIMER = 5; // started, fired + a workflow task
const COMMAND = 5; // update accepted, completed + a workflow task
/** commands people send per approval pause, counted generously (approve, pause, resume, a refused one…) */
const COMMANDS_PER_APPROVAL = 10;
/** bytes per event besides the payloads counted separately (ids, times, options, summaries) */
const EVENT_BYTES = 600;
/** bytes a status entry takes per step, change and gate record (summaries, times, observed values) */
const STATUS_PER_STEP = 250;
const STATUS_PER_CHANGE = 600;
const STATUS_PER_GATE = 400;

export interface HistoryEstimate {
  /** upper bound of the events of the worst path */
  events: number;
  /** upper bound of the history's bytes */
  bytes: number;
  /** the workflow input's JSON size */
  inputBytes: number;
  /** upper bound of the status query's answer */
  statusBytes: number;
}

/** Upper bounds of one release's history and status, from its input. */
export function estimateHistory(input: Pick<ReleaseInput, 'spec' | 'plan'>): HistoryEstimate {
  const body = input.spec.spec;
  const inputBytes = utf8Bytes(JSON.stringify(input));
  const webhooks = body.notifications?.webhooks?.length ?? 0;
  const phaseChange = 1 + (webhooks > 0 ? ACTIVITY : 0);
  const targetBytes = (step: PlanStep) =>
    step.kind === 'chef'
      ? JSON.stringify(body.chef.find((t) => t.id === step.target) ?? {}).length
      : step.kind === 'flux'
        ? JSON.stringify(body.flux.find((t) => t.id === step.target) ?? {}).length
        : 200;
  const rolloutGates = Object.values(body.gates).filter((g) => g.rollout).length;

  // admission, search attributes, start and completion, the preflight of every target
  let events = 20 + ACTIVITY + phaseChange * 3 + ACTIVITY * (body.chef.length + body.flux.length + (body.canary ? 1 : 0));
  let payload = 3 * inputBytes + (body.chef.length + body.flux.length + 1) * 2 * 500;
  let gateRecords = 0;
  let changes = 0;
  let approvals = 0;
  for (const step of input.plan) {
    events += 1 + 2 * phaseChange; // the step's own status events and up to two phase changes
    switch (step.kind) {
      case 'chef':
      case 'flux':
        events += 3 * ACTIVITY; // snapshot and write (Git mode: commit and its source read)
        payload += 4 * targetBytes(step);
        events += 3 * ACTIVITY + rolloutGates * ACTIVITY; // the undo and its waits
        payload += 3 * targetBytes(step);
        changes++;
        gateRecords += 1 + rolloutGates;
        break;
      case 'setWeight':
        events += 2 * ACTIVITY + ACTIVITY; // snapshot (first one) and write; the undo
        payload += 3 * 400;
        changes++;
        break;
      case 'gate':
        events += step.gates.length * ACTIVITY * 2; // each gate one heartbeating activity (Git mode: a reconcile request too)
        payload += step.gates.length * 2 * 1_500;
        gateRecords += step.gates.length;
        break;
      case 'pause':
        if (step.durationMs !== undefined) events += TIMER;
        else {
          events += TIMER + COMMANDS_PER_APPROVAL * COMMAND;
          approvals++;
        }
        break;
    }
  }
  events += 2 * phaseChange; // rolling back, rolled back
  const statusBytes = 2_000 + inputBytes / 4 + input.plan.length * STATUS_PER_STEP + changes * STATUS_PER_CHANGE + gateRecords * STATUS_PER_GATE + approvals * COMMANDS_PER_APPROVAL * 300;
  return { events, bytes: events * EVENT_BYTES + payload, inputBytes, statusBytes: Math.round(statusBytes) };
}

const utf8Bytes = (s: string) => new TextEncoder().encode(s).length;
const kib = (b: number) => `${Math.round(b / 1024)} KiB`;

/** What is over budget, one sentence each with what to do; empty when the plan fits. */
export function budgetProblems(input: Pick<ReleaseInput, 'spec' | 'plan'>): { path: string; message: string }[] {
  const e = estimateHistory(input);
  const split = 'split it into several releases (e.g. one per group of targets) or use fewer, longer canary steps';
  const problems: { path: string; message: string }[] = [];
  if (e.inputBytes > HISTORY_BUDGET.inputBytes) {
    problems.push({ path: 'spec', message: `the release is ${kib(e.inputBytes)} as JSON, over the ${kib(HISTORY_BUDGET.inputBytes)} a release may be (Temporal records it several times, and refuses a payload over 2 MB): ${split}` });
  }
  if (e.events > HISTORY_BUDGET.events) {
    problems.push({ path: 'spec.steps', message: `the plan has ${input.plan.length} steps: in the worst case (all applied, then undone) its history would reach about ${e.events} events, over the budget of ${HISTORY_BUDGET.events} (Temporal stops a workflow at 50,000): ${split}` });
  } else if (e.bytes > HISTORY_BUDGET.bytes) {
    problems.push({ path: 'spec.steps', message: `the plan's history would reach about ${Math.round(e.bytes / 1024 / 1024)} MB in the worst case, over the budget of ${HISTORY_BUDGET.bytes / 1024 / 1024} MB (Temporal stops a workflow at 50 MB): ${split}` });
  }
  if (e.statusBytes > HISTORY_BUDGET.statusBytes) {
    problems.push({ path: 'spec.steps', message: `the release's status would reach about ${kib(e.statusBytes)}, over the ${kib(HISTORY_BUDGET.statusBytes)} a status query may answer: ${split}` });
  }
  return problems;
}
