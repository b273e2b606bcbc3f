/**
 * Following a release until it ends, as `start --wait` and `watch` do, without ever reporting an
 * outcome that was not seen:
 * - the release's history is long-polled (no worker needed): its phase comes from the HrPhase
 *   search-attribute upserts, its end from the close event (completed, failed, terminated,
 *   cancelled, timed out, continued as new);
 * - the status query (which needs a worker) adds the detail — steps, changes, gates, decisions —
 *   whenever the history shows the workflow made progress; a query that gets no answer (no worker
 *   polling, a worker restarting) is noted once and tried again, never taken for an outcome;
 * - a transient error (Temporal restarting, a network blip, a deadline) is retried with backoff for
 *   as long as `--timeout` allows; only errors no retry can fix (permissions, a missing
 *   release or namespace) end the wait, with their own exit code.
 */
import { WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, NamespaceNotFoundError } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { type Phase, PHASES, type ReleaseStatus, statusQuery } from '../workflows/messages.ts';
import { SA } from '../workflows/search-attributes.ts';
import { CliError, EXIT } from './exit-codes.ts';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** How a wait ended. */
export type FollowEnd =
  /** the workflow closed with the release's own outcome (its status is the result or the failure's details) */
  | { kind: 'closed' }
  /** the release waits in RollbackFailed: a person must retry or skip the failing undo */
  | { kind: 'rollbackFailed' }
  /** --timeout ran out; the release goes on */
  | { kind: 'timedOut' }
  /** terminated, cancelled or timed out from outside (UI, `temporal workflow terminate`), or closed without a release status */
  | { kind: 'external'; how: 'terminated' | 'cancelled' | 'timed out' | 'ended without a release status'; reason?: string; identity?: string };

export interface FollowResult {
  /** the final status, else the last one seen (undefined if the release never answered and left none) */
  status: ReleaseStatus | undefined;
  end: FollowEnd;
}

export interface FollowOptions {
  timeoutMs?: number;
  /** how long one status query may take before it counts as unanswered (default 10 s) */
  queryTimeoutMs?: number;
  /** one-line notes about the wait itself (lost contact, worker not answering, back again) */
  onNotice?: (line: string) => void;
}

/** The exit code for how a wait ended (see exit-codes.ts and the README's table). */
export function exitCodeFor(result: FollowResult): number {
  switch (result.end.kind) {
    case 'timedOut':
      return EXIT.timedOut;
    case 'rollbackFailed':
      return EXIT.rollbackFailed;
    case 'external':
      return EXIT.terminated;
    case 'closed':
      return closedExitCode(result.status);
  }
}

function closedExitCode(status: ReleaseStatus | undefined): number {
  switch (status?.phase) {
    case 'Succeeded':
      return EXIT.succeeded;
    case 'Failed':
      return EXIT.failedUnchanged;
    case 'PartiallyRolledBack':
      return EXIT.partiallyRolledBack;
    case 'RolledBack':
      return status.changes.some((c) => c.state === 'restore-skipped') ? EXIT.partiallyRolledBack : EXIT.rolledBack;
    default:
      return EXIT.terminated;
  }
}

// gRPC status codes (kept here so the client does not import grpc-js itself)
const GRPC = { CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** The gRPC status code somewhere in an error's cause chain, if any. */
export function grpcCode(err: unknown): number | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'number') return e.code;
  }
  return undefined;
}

/** The innermost message of an error's cause chain, on one line. */
export function rootMessage(err: unknown): string {
  let e = err as { message?: string; details?: string; cause?: unknown } | undefined;
  let message = String((e as Error | undefined)?.message ?? err);
  for (let depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    const m = e.details || e.message;
    if (m) message = m;
  }
  return message.replace(/\s+/g, ' ').trim();
}

/**
 * Errors worth retrying: the server or the network may be back in a moment. Anything without a
 * gRPC code (a socket error, a connection being re-established) counts as transient too.
 */
export function isTransient(err: unknown): boolean {
  const code = grpcCode(err);
  if (code === undefined) return !(err instanceof CliError) && !(err instanceof WorkflowNotFoundError) && !(err instanceof NamespaceNotFoundError);
  return ([GRPC.CANCELLED, GRPC.UNKNOWN, GRPC.DEADLINE_EXCEEDED, GRPC.RESOURCE_EXHAUSTED, GRPC.ABORTED, GRPC.INTERNAL, GRPC.UNAVAILABLE] as number[]).includes(code);
}

/** A not-found error that is about the namespace, not the release. */
export function namespaceMissing(err: unknown): boolean {
  return err instanceof NamespaceNotFoundError || /namespace\b.*\bnot found|namespace .* does not exist/i.test(rootMessage(err));
}

const LONG_POLL_MS = 40_000; // the server answers an idle history long-poll after ~20 s
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;

const TIMED_OUT = Symbol('timed out');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function followRelease(handle: WorkflowHandle, onStatus: (status: ReleaseStatus) => void, options: FollowOptions = {}): Promise<FollowResult> {
  return new Follower(handle, onStatus, options).run();
}

class Follower {
  private readonly deadline: number;
  private readonly notice: (line: string) => void;
  private last: ReleaseStatus | undefined;
  private phase: Phase | undefined;
  private lostContact = false;
  private workerSilent = false;

  private readonly handle: WorkflowHandle;
  private readonly onStatus: (status: ReleaseStatus) => void;
  private readonly options: FollowOptions;

  constructor(handle: WorkflowHandle, onStatus: (status: ReleaseStatus) => void, options: FollowOptions) {
    this.handle = handle;
    this.onStatus = onStatus;
    this.options = options;
    this.deadline = options.timeoutMs ? Date.now() + options.timeoutMs : Infinity;
    this.notice = options.onNotice ?? (() => undefined);
  }

  async run(): Promise<FollowResult> {
    const { client, workflowId } = this.handle;
    const described = await this.retrying('describe the release', (callDeadline) => client.connection.withDeadline(callDeadline, () => this.handle.describe()));
    if (described === TIMED_OUT) return this.result({ kind: 'timedOut' });
    let runId = described.runId;
    let token: Uint8Array | undefined;
    for (;;) {
      const res = await this.retrying('follow the release history', (callDeadline) =>
        client.connection.withDeadline(Math.min(callDeadline, Date.now() + LONG_POLL_MS), () =>
          client.workflowService.getWorkflowExecutionHistory({ namespace: client.options.namespace, execution: { workflowId, runId }, ...(token ? { nextPageToken: token } : {}), waitNewEvent: true, skipArchival: true }),
        ),
      );
      if (res === TIMED_OUT) return this.result({ kind: 'timedOut' });
      const events = res.history?.events ?? [];
      if (res.nextPageToken?.length) token = res.nextPageToken;
      let progressed = false;
      for (const ev of events) {
        const end = closeEvent(ev);
        if (end?.kind === 'newRun') {
          runId = end.runId;
          token = undefined;
          this.notice(`the release continued in a new run (${runId})`);
          break;
        }
        if (end?.kind === 'closed') {
          const final = await this.retrying('read the release result', (callDeadline) => client.connection.withDeadline(callDeadline, () => finalStatus(client.getHandle(workflowId, runId))));
          if (final === TIMED_OUT) return this.result({ kind: 'timedOut' });
          if (final) {
            this.show(final);
            return this.result({ kind: 'closed' });
          }
          return this.result({ kind: 'external', how: 'ended without a release status' });
        }
        if (end) return this.result(end);
        const phase = phaseOf(ev);
        if (phase) this.phase = phase;
        progressed = true; // anything in the history (a timer fired, a signal, a task completed) may change the status
      }
      if (progressed || (this.workerSilent && events.length === 0)) await this.refresh();
      // the query, when answered, is at least as new as the history read before it
      if ((this.last?.phase ?? this.phase) === 'RollbackFailed' && (await this.stillRunning())) return this.result({ kind: 'rollbackFailed' });
      if (Date.now() >= this.deadline) return this.result({ kind: 'timedOut' });
    }
  }

  /** Whether the release is still running (else the rest of its history, up to the close event, is still to read). */
  private async stillRunning(): Promise<boolean> {
    const d = await this.retrying('describe the release', (callDeadline) => this.handle.client.connection.withDeadline(callDeadline, () => this.handle.describe()));
    return d === TIMED_OUT || d.status.name === 'RUNNING';
  }

  private result(end: FollowEnd): FollowResult {
    return { status: this.last, end };
  }

  private show(status: ReleaseStatus): void {
    this.last = status;
    this.onStatus(status);
  }

  /** Asks the worker for the full status; without an answer, shows the phase the history recorded. */
  private async refresh(): Promise<void> {
    const { connection } = this.handle.client;
    const started = Date.now();
    const queryDeadline = Math.min(this.deadline, started + (this.options.queryTimeoutMs ?? 10_000));
    try {
      const status = await connection.withDeadline(queryDeadline, () => this.handle.query(statusQuery));
      if (this.workerSilent) this.notice('the release answers its status query again');
      this.workerSilent = false;
      this.show(status);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return; // closed meanwhile: the close event follows
      const why = [GRPC.CANCELLED, GRPC.DEADLINE_EXCEEDED].includes(grpcCode(err) as 1 | 4) ? `within ${Math.round((queryDeadline - started) / 1000)}s` : `(${rootMessage(err)})`;
      if (!this.workerSilent) this.notice(`no answer to the status query ${why}: is a worker polling the release's task queue? Following its history meanwhile`);
      this.workerSilent = true;
      if (this.last && this.phase && this.last.phase !== this.phase) this.show({ ...this.last, phase: this.phase });
    }
  }

  /**
   * Runs `call` until it succeeds, retrying transient errors with backoff until the deadline.
   * `call` gets the time its own attempt must end by.
   */
  private async retrying<T>(what: string, call: (callDeadline: number) => Promise<T>): Promise<T | typeof TIMED_OUT> {
    let backoff = BACKOFF_MIN_MS;
    for (;;) {
      if (Date.now() >= this.deadline) return TIMED_OUT;
      try {
        const value = await call(Math.min(this.deadline, Date.now() + LONG_POLL_MS));
        if (this.lostContact) this.notice('in contact with Temporal again');
        this.lostContact = false;
        return value;
      } catch (err) {
        if (Date.now() >= this.deadline) return TIMED_OUT;
        if (err instanceof WorkflowNotFoundError || err instanceof NamespaceNotFoundError || grpcCode(err) === GRPC.NOT_FOUND) {
          const id = this.handle.workflowId;
          const ns = this.handle.client.options.namespace;
          if (namespaceMissing(err)) throw new CliError(`namespace ${ns} does not exist: create it (temporal operator namespace create --namespace ${ns}) or set TEMPORAL_NAMESPACE`, EXIT.invalid);
          throw new CliError(`no release of app ${id.replace(/^release-/, '')} (workflow id ${id}) in namespace ${ns}`, EXIT.invalid);
        }
        if (!isTransient(err)) throw new CliError(`cannot ${what}: ${rootMessage(err)}`, EXIT.unreachable);
        if (!this.lostContact) this.notice(`lost contact with Temporal (${rootMessage(err)}); retrying${Number.isFinite(this.deadline) ? ' until --timeout' : ''}`);
        this.lostContact = true;
        await sleep(Math.min(backoff, Math.max(0, this.deadline - Date.now())));
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }
}

type CloseEnd = { kind: 'closed' } | { kind: 'newRun'; runId: string } | Extract<FollowEnd, { kind: 'external' }>;

/** What a close event means for the wait, or undefined for any other event. */
export function closeEvent(ev: HistoryEvent): CloseEnd | undefined {
  const completed = ev.workflowExecutionCompletedEventAttributes;
  if (completed) return completed.newExecutionRunId ? { kind: 'newRun', runId: completed.newExecutionRunId } : { kind: 'closed' };
  const failed = ev.workflowExecutionFailedEventAttributes;
  if (failed) return failed.newExecutionRunId ? { kind: 'newRun', runId: failed.newExecutionRunId } : { kind: 'closed' };
  const can = ev.workflowExecutionContinuedAsNewEventAttributes;
  if (can?.newExecutionRunId) return { kind: 'newRun', runId: can.newExecutionRunId };
  const terminated = ev.workflowExecutionTerminatedEventAttributes;
  if (terminated) return { kind: 'external', how: 'terminated', ...(terminated.reason ? { reason: terminated.reason } : {}), ...(terminated.identity ? { identity: terminated.identity } : {}) };
  if (ev.workflowExecutionCanceledEventAttributes) return { kind: 'external', how: 'cancelled' };
  const timedOut = ev.workflowExecutionTimedOutEventAttributes;
  if (timedOut) return timedOut.newExecutionRunId ? { kind: 'newRun', runId: timedOut.newExecutionRunId } : { kind: 'external', how: 'timed out' };
  return undefined;
}

/** The HrPhase a start or upsert event records, if any. */
export function phaseOf(ev: HistoryEvent): Phase | undefined {
  const fields = (ev.upsertWorkflowSearchAttributesEventAttributes ?? ev.workflowExecutionStartedEventAttributes)?.searchAttributes?.indexedFields;
  const payload = fields?.[SA.phase.name];
  if (!payload) return undefined;
  try {
    const value = defaultPayloadConverter.fromPayload<unknown>(payload as Parameters<typeof defaultPayloadConverter.fromPayload>[0]);
    const phase = Array.isArray(value) ? value[0] : value;
    return (PHASES as readonly unknown[]).includes(phase) ? (phase as Phase) : undefined;
  } catch {
    return undefined;
  }
}

/** The status a closed release ended with: its result, or the status carried by its failure. */
export async function finalStatus(handle: WorkflowHandle): Promise<ReleaseStatus | undefined> {
  try {
    return (await handle.result()) as ReleaseStatus;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const details = (err.cause as { details?: unknown[] } | undefined)?.details;
      const status = details?.[0] as ReleaseStatus | undefined;
      if (status && typeof status === 'object' && 'phase' in status) return status;
      return undefined;
    }
    throw err;
  }
}
