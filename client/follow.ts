/**
 * Following a release until it ends: poll its status query, report each change once, and
 * settle on the final status (from the result or the failure details once the workflow closes).
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { FINAL_PHASES, type ReleaseStatus, statusQuery } from '../workflows/messages.ts';

export interface FollowResult {
  status: ReleaseStatus;
  timedOut: boolean;
}

export async function followRelease(
  handle: WorkflowHandle,
  onStatus: (status: ReleaseStatus) => void,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<FollowResult> {
  const deadline = options.timeoutMs ? Date.now() + options.timeoutMs : Infinity;
  const interval = options.intervalMs ?? 1000;
  let last: ReleaseStatus | undefined;
  for (;;) {
    const closed = (await handle.describe()).status.name !== 'RUNNING';
    if (closed) {
      const final = await finalStatus(handle);
      if (final) {
        onStatus(final);
        return { status: final, timedOut: false };
      }
    }
    last = await handle.query(statusQuery);
    onStatus(last);
    if (FINAL_PHASES.includes(last.phase) && closed) return { status: last, timedOut: false };
    if (Date.now() >= deadline) return { status: last, timedOut: true };
    await new Promise((r) => setTimeout(r, Math.min(interval, Math.max(0, deadline - Date.now()))));
  }
}

/** The status a closed release ended with: its result, or the status carried by its failure. */
export async function finalStatus(handle: WorkflowHandle): Promise<ReleaseStatus | undefined> {
  try {
    return (await handle.result()) as ReleaseStatus;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const details = (err.cause as { details?: unknown[] } | undefined)?.details;
      if (details?.[0]) return details[0] as ReleaseStatus;
    }
    return undefined;
  }
}
