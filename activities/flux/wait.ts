import { ApplicationFailure } from '@temporalio/activity';
import type { CheckOutcome } from '../gates/result.ts';
import { KUBE_NOT_FOUND, describeObject, statusOf } from '../kube/errors.ts';
import { collectionPath, fluxOp, getFlux, type FluxObject, type FluxRef } from './resource.ts';

export type WaitMode = 'watch' | 'poll';

export interface WaitOptions {
  ref: FluxRef;
  evaluate: (obj: FluxObject) => CheckOutcome;
  /** epoch ms */
  deadline: number;
  /** longest pause between polls; polling starts faster and backs off to this */
  intervalMs: number;
  /** 'watch' (default) falls back to polling when a watch cannot be held; 'poll' never watches */
  mode?: WaitMode;
  signal?: AbortSignal;
  /** called after every evaluation, e.g. to heartbeat */
  onCheck?: (last: CheckOutcome, checks: number) => void;
}

export interface WaitResult {
  /** the last evaluation: pass or fail, or wait when the deadline came first */
  outcome: CheckOutcome;
  checks: number;
  timedOut: boolean;
  /** how the final state was seen */
  via: 'get' | 'watch';
  watchFailures: number;
}

/** First poll pause; it doubles up to intervalMs while nothing changes. */
const FIRST_POLL_MS = 250;
/**
 * The API server closes a watch after timeoutSeconds; client-node aborts one that is silent for
 * 30 s. Ending it server-side first turns a quiet period into a clean re-watch, not an error.
 */
const WATCH_SECONDS = 25;

/**
 * Waits until `evaluate` passes or fails for one Flux object. A GET opens every round (so nothing
 * between watches is missed), then a watch on that object from the GET's resourceVersion delivers
 * each change as it is written. When a watch cannot be opened or breaks, the wait polls with
 * backoff instead; a forbidden watch (RBAC without `watch`) stays on polling for the rest of the wait.
 */
export async function waitForFlux(opts: WaitOptions): Promise<WaitResult> {
  const { ref, evaluate, deadline, signal } = opts;
  let checks = 0;
  let last: CheckOutcome = { status: 'wait', reason: 'not checked yet' };
  let watchUsable = (opts.mode ?? 'watch') === 'watch';
  let watchFailures = 0;
  let pollDelay = Math.min(FIRST_POLL_MS, opts.intervalMs);
  let lastVersion: string | undefined;

  const consider = (obj: FluxObject): boolean => {
    checks++;
    last = evaluate(obj);
    opts.onCheck?.(last, checks);
    return last.status !== 'wait';
  };
  const result = (via: WaitResult['via'], timedOut = false): WaitResult => ({ outcome: last, checks, timedOut, via, watchFailures });

  for (;;) {
    throwIfAborted(signal);
    if (Date.now() >= deadline) return result('get', true);

    let obj: FluxObject | undefined;
    try {
      obj = await getFlux(opts.ref);
    } catch (err) {
      const failure = err as ApplicationFailure;
      if (failure.nonRetryable) throw failure;
      last = { status: 'wait', reason: `read failed, will retry: ${failure.message}` };
      opts.onCheck?.(last, checks);
    }
    if (obj) {
      if (consider(obj)) return result('get');
      // Something moved since the last look: the controller is busy, look again soon.
      if (obj.metadata.resourceVersion !== lastVersion) pollDelay = Math.min(FIRST_POLL_MS, opts.intervalMs);
      lastVersion = obj.metadata.resourceVersion;
    }

    if (obj && watchUsable) {
      const end = await watchOnce(ref, obj.metadata.resourceVersion, deadline, consider, signal);
      if (end.kind === 'done') return result('watch');
      if (end.kind === 'deleted') {
        throw ApplicationFailure.create({ type: KUBE_NOT_FOUND, nonRetryable: true, message: `${describeObject(fluxOp(ref, 'watch'))} was deleted while waiting for it to become ready` });
      }
      if (end.kind === 'error') {
        watchFailures++;
        const code = statusOf(end.error);
        if (code === 401 || code === 403 || code === 405) watchUsable = false;
        // One poll-paced pause before watching again, so a broken watch does not spin.
        await pause(pollDelay, deadline, signal);
        pollDelay = Math.min(pollDelay * 2, opts.intervalMs);
      }
      // 'closed' / 'expired': the server ended the watch or the resourceVersion is too old;
      // re-read and watch again straight away.
      continue;
    }

    await pause(pollDelay, deadline, signal);
    pollDelay = Math.min(pollDelay * 2, opts.intervalMs);
  }
}

type WatchEnd = { kind: 'done' } | { kind: 'deleted' } | { kind: 'closed' } | { kind: 'expired' } | { kind: 'error'; error: unknown };

function watchOnce(
  ref: FluxRef,
  resourceVersion: string | undefined,
  deadline: number,
  consider: (obj: FluxObject) => boolean,
  signal: AbortSignal | undefined,
): Promise<WatchEnd> {
  return new Promise<WatchEnd>((resolve) => {
    let settled = false;
    let controller: AbortController | undefined;
    const timer = setTimeout(() => finish({ kind: 'closed' }), Math.max(0, deadline - Date.now()));
    const onAbort = () => finish({ kind: 'closed' });
    signal?.addEventListener('abort', onAbort, { once: true });
    function finish(end: WatchEnd) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      controller?.abort();
      resolve(end);
    }
    const seconds = Math.max(1, Math.min(WATCH_SECONDS, Math.ceil((deadline - Date.now()) / 1000)));
    ref.clients.watch
      .watch(
        collectionPath(ref),
        { fieldSelector: `metadata.name=${ref.name}`, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: seconds },
        (type: string, object: unknown) => {
          if (settled) return;
          if (type === 'ADDED' || type === 'MODIFIED') {
            if (consider(object as FluxObject)) finish({ kind: 'done' });
          } else if (type === 'DELETED') {
            finish({ kind: 'deleted' });
          } else if (type === 'ERROR') {
            const code = (object as { code?: number } | null)?.code;
            finish(code === 410 ? { kind: 'expired' } : { kind: 'error', error: Object.assign(new Error((object as { message?: string })?.message ?? 'watch error'), { statusCode: code }) });
          }
        },
        (err: unknown) => finish(err ? { kind: 'error', error: err } : { kind: 'closed' }),
      )
      .then(
        (c) => {
          controller = c;
          if (settled) c.abort();
        },
        (err: unknown) => finish({ kind: 'error', error: err }),
      );
  });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('wait cancelled');
}

/** Sleeps up to `ms`, never past the deadline, and wakes on abort. */
function pause(ms: number, deadline: number, signal: AbortSignal | undefined): Promise<void> {
  const wait = Math.max(0, Math.min(ms, deadline - Date.now()));
  return new Promise((resolve) => {
    const t = setTimeout(done, wait);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
