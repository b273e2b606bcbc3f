import { Context, log } from '@temporalio/activity';
import { request, type Dispatcher } from 'undici';
import { activityScope } from '../../policy/enforce.ts';
import { policyDenial } from '../../policy/net.ts';
import { describeRequestError, requestSignal } from '../gates/request.ts';
import type { WebhookRef } from '../gates/types.ts';
import { describeValueFrom, redact, resolveValueFrom, ValueFromError } from '../gates/value-from.ts';

export interface ReleaseEvent {
  release: string;
  app: string;
  phase: string;
  step?: string;
  summary: string;
  /** link to the release in the Temporal UI */
  uiUrl?: string;
  /** ISO time */
  at: string;
}

export interface NotifyInput {
  webhooks: WebhookRef[];
  event: ReleaseEvent;
}

export interface NotifyResult {
  delivered: number;
  failed: number;
}

/**
 * Per webhook: up to 3 attempts, 5 s each, 0.5 s then 1 s apart, so one notify call ends within
 * about 17 s even with every receiver hanging (webhooks are sent in parallel). Give the activity a
 * start-to-close timeout above that.
 */
const ATTEMPTS = 3;
const ATTEMPT_TIMEOUT_MS = 5_000;
const BACKOFF_MS = [500, 1_000];

/**
 * POSTs the event as JSON to every webhook. A notification must never fail or hold up a release:
 * this never throws; each failure is logged (naming the reference, never the URL, which for chat
 * webhooks is itself the credential) and counted.
 */
export async function notify(input: NotifyInput): Promise<NotifyResult> {
  const body = JSON.stringify(input.event);
  const cancel = activitySignal();
  let scope: ReturnType<typeof activityScope>;
  try {
    scope = activityScope();
  } catch (err) {
    warn(`webhooks not delivered: ${(err as Error).message}`, { release: input.event.release });
    return { delivered: 0, failed: input.webhooks?.length ?? 0 };
  }
  // every connection passes the policy's host and address checks, as for gates
  const dispatcher = scope?.guard().dispatcher();
  const outcomes = await Promise.all(
    (input.webhooks ?? []).map((hook, i) => deliver(hook, i, body, input.event, cancel, scope, dispatcher).catch(() => false)),
  );
  await dispatcher?.close().catch(() => {});
  const delivered = outcomes.filter(Boolean).length;
  return { delivered, failed: outcomes.length - delivered };
}

function activitySignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

/** Logs through the activity logger when there is an activity, so the entry carries the workflow's ids. */
function warn(message: string, attrs: Record<string, unknown>): void {
  try {
    log.warn(message, attrs);
  } catch {
    console.warn(message, attrs);
  }
}

async function deliver(
  hook: WebhookRef,
  index: number,
  body: string,
  event: ReleaseEvent,
  cancel: AbortSignal | undefined,
  scope: ReturnType<typeof activityScope>,
  dispatcher: Dispatcher | undefined,
): Promise<boolean> {
  const ref = describeValueFrom(hook.urlFrom);
  const attrs = { webhook: index, urlFrom: ref, release: event.release, phase: event.phase };
  let lastError = 'cancelled before sending';
  let attempts = 0;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    if (cancel?.aborted) break;
    let url: string | undefined;
    let retry = true;
    attempts = attempt;
    try {
      url = await resolveValueFrom(hook.urlFrom);
      const refused = scope?.destination(url);
      if (refused) {
        lastError = redact(`refused by the worker's policy: ${refused}`, [url]);
        retry = false;
        break;
      }
      const res = await request(url, {
        ...(dispatcher ? { dispatcher } : {}),
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'hybrid-release' },
        body,
        signal: requestSignal(ATTEMPT_TIMEOUT_MS, cancel),
      });
      await res.body.dump().catch(() => {});
      if (res.statusCode >= 200 && res.statusCode < 300) return true;
      lastError = `receiver answered HTTP ${res.statusCode}`;
      // A 4xx other than 408/429 is the receiver refusing this request; sending it again will not help.
      retry = res.statusCode >= 500 || res.statusCode === 408 || res.statusCode === 429;
    } catch (err) {
      if (err instanceof ValueFromError) {
        lastError = `cannot resolve the URL: ${err.message}`;
        retry = err.transient;
      } else if (url === undefined) {
        lastError = 'cannot resolve the URL';
      } else if (policyDenial(err)) {
        lastError = redact(`refused by the worker's policy: ${policyDenial(err)!.message}`, [url]);
        retry = false;
      } else {
        lastError = redact(describeRequestError(err, ATTEMPT_TIMEOUT_MS), [url]);
        if (err instanceof TypeError || (err as { code?: string }).code === 'UND_ERR_INVALID_ARG') retry = false;
      }
    }
    if (!retry || attempt === ATTEMPTS) break;
    await sleep(BACKOFF_MS[attempt - 1] ?? 1_000, cancel);
  }
  warn(`webhook not delivered: ${lastError}`, { ...attrs, attempts });
  return false;
}

function sleep(ms: number, cancel?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      cancel?.removeEventListener('abort', done);
      resolve();
    }
    cancel?.addEventListener('abort', done, { once: true });
  });
}
