/**
 * Writes that cannot outrun their undo (docs/rollback.md): the activity heartbeats while it works,
 * so an abort reaches it; a request it has sent is never abandoned (it runs to its own timeout);
 * and a cancellation is honoured between steps — before a write is sent, never in the middle of
 * one. The workflow awaits the attempt's end (WAIT_CANCELLATION_COMPLETED) before it undoes.
 */
import { Context } from '@temporalio/activity';

const EVERY_MS = 2_000;

/** `checkpoint()` throws the cancellation if one arrived; call it right before sending a write. */
export async function heartbeating<T>(fn: (checkpoint: () => void) => Promise<T>): Promise<T> {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return fn(() => {}); // called outside an activity (tests, scripts)
  }
  ctx.heartbeat();
  const timer = setInterval(() => ctx.heartbeat(), EVERY_MS);
  try {
    return await fn(() => {
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
    });
  } finally {
    clearInterval(timer);
  }
}
