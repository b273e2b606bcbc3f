import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `probe` until it returns a truthy value. The last error is kept so a timeout says why the
 * service never answered, not just that it did not.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  opts: { timeoutMs: number; intervalMs?: number; alive?: () => boolean },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (opts.alive && !opts.alive()) {
      throw new Error(`${what}: the process exited before it answered${describe(lastError)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not ready after ${opts.timeoutMs / 1000}s${describe(lastError)}`);
    }
    await sleep(opts.intervalMs ?? 250);
  }
}

function describe(err: unknown): string {
  if (!err) return '';
  const e = err as { message?: string; cause?: { message?: string } };
  return ` (last error: ${e.message ?? String(err)}${e.cause?.message ? `: ${e.cause.message}` : ''})`;
}

/** fetch with a short timeout: a hung server must not hang readiness checks. */
export function fetchQuick(url: string, init: RequestInit = {}, timeoutMs = 3000): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
}
