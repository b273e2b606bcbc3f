/**
 * Human control of a running release. A decision (approve, abort, pause, resume, retry, skip)
 * counts only when the worker can verify who made it: the approver must be one of the release's
 * approvers (from the worker's policy, fixed at admission) and the decision must carry their SSH
 * signature over this command on this run. Checking a signature is crypto against the policy,
 * which workflow code must not do, so the handlers ask a local activity and then apply.
 *
 * Updates answer the caller: their validators refuse a command in the wrong phase or from someone
 * who is not an approver (nothing is recorded), and an unverifiable decision is refused and
 * recorded with what it claimed. Signals carry the same commands for tools that can only signal;
 * a signal that is refused is recorded. A used signature cannot be used again (replay).
 */
import { ApplicationFailure, proxyLocalActivities, setHandler } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import { type Command, type Decision, type Phase, SIGNALS, statusQuery, UPDATES } from './messages.ts';
import type { ReleaseState } from './state.ts';

const RUNNING: readonly Phase[] = ['Pending', 'Queued', 'Preflight', 'Applying', 'Verifying', 'Paused', 'AwaitingApproval'];

/**
 * Refused decisions recorded per release. Beyond it, refusals are no longer recorded and a decision
 * without a signature is refused at once (history stays bounded); signed decisions are still checked,
 * so a flood of unsigned ones cannot lock the approvers out.
 */
const MAX_REFUSALS_RECORDED = 20;

const identity = proxyLocalActivities<typeof activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', maximumAttempts: 3 },
});

/** Why a decision's shape is unacceptable (sizes bound what reaches the history). */
function malformed(d: Decision): string | undefined {
  if (!d || typeof d !== 'object' || typeof d.by !== 'string' || d.by.trim() === '') return 'say who you are (--as USER)';
  if (d.by.length > 100) return 'the name is longer than 100 characters';
  if (d.reason !== undefined && (typeof d.reason !== 'string' || d.reason.length > 1000)) return 'the reason must be text of at most 1000 characters';
  const p = d.proof;
  if (p !== undefined && (typeof p !== 'object' || p === null || typeof p.signature !== 'string' || p.signature.length > 8192 || typeof p.nonce !== 'string' || p.nonce.length > 64 || typeof p.at !== 'string' || p.at.length > 40)) {
    return 'the proof must be {at, nonce, signature} (as the CLI sends it)';
  }
  return undefined;
}

/** Why a command is refused now (wrong phase, not an approver), or undefined when it may go on to verification. */
function refusal(release: ReleaseState, command: Command, d: Decision): string | undefined {
  const bad = malformed(d);
  if (bad) return bad;
  const approvers = release.input.approvers ?? [];
  if (!approvers.includes(d.by)) {
    return `${d.by} is not an approver of ${release.status.release} (approvers: ${approvers.join(', ') || "nobody: the worker's policy names no approver for this app"})`;
  }
  const phase = release.phase;
  switch (command) {
    case 'approve':
      return phase === 'AwaitingApproval' ? undefined : `nothing to approve: the release is ${phase}, not AwaitingApproval`;
    case 'abort':
      if (phase === 'RollingBack' || phase === 'RollbackFailed') return `already rolling back (${phase})`;
      return RUNNING.includes(phase) ? undefined : `the release has ended (${phase})`;
    case 'pause':
      if (release.held) return `already held by ${release.status.heldBy}`;
      return RUNNING.includes(phase) ? undefined : `only a running release can be paused (it is ${phase})`;
    case 'resume':
      return release.held ? undefined : 'the release is not held';
    case 'retry':
    case 'skip':
      return phase === 'RollbackFailed' ? undefined : `${command} answers a failing compensation; the release is ${phase}`;
  }
}

/** An ApplicationFailure, so a refused update fails only the update, never the release. */
const refused = (why: string) => ApplicationFailure.create({ type: 'Refused', message: why, nonRetryable: true });

function apply(release: ReleaseState, command: Command, d: Decision): string {
  switch (command) {
    case 'approve':
      release.approved = true;
      return `approved by ${d.by}`;
    case 'abort':
      release.abortRequested = true;
      return `abort requested by ${d.by}: rolling back`;
    case 'pause':
      release.held = true;
      release.status.heldBy = d.by;
      return `held by ${d.by} at the next step boundary`;
    case 'resume':
      release.held = false;
      delete release.status.heldBy;
      return `resumed by ${d.by}`;
    case 'retry':
    case 'skip':
      release.compensationAnswer = command;
      return command === 'retry' ? `retrying the compensation (${d.by})` : `skipping the compensation (${d.by})`;
  }
}

export function installControls(release: ReleaseState, onAbort: () => void): void {
  /** nonces of the signed decisions this release has accepted */
  const used = new Set<string>();
  let refusals = 0;

  const record = (command: Command, d: Decision, via: 'update' | 'signal', accepted: boolean, note: string, key?: string) => {
    if (!accepted) {
      if (refusals >= MAX_REFUSALS_RECORDED) return;
      if (++refusals === MAX_REFUSALS_RECORDED) note += ` (the ${MAX_REFUSALS_RECORDED}th refused decision: further refusals are not recorded, and unsigned decisions are refused at once)`;
    }
    const by = typeof d?.by === 'string' && d.by ? d.by.slice(0, 100) : '(unknown)';
    const reason = typeof d?.reason === 'string' && d.reason ? d.reason.slice(0, 1000) : undefined;
    release.recordDecision({ command, by, ...(reason ? { reason } : {}), ...(key ? { key } : {}), via, accepted, note });
  };

  /** Who made the decision, as the worker can prove it; a used signature is refused. */
  const verify = async (command: Command, d: Decision): Promise<{ key: string } | { why: string }> => {
    if (d.proof && used.has(d.proof.nonce)) return { why: 'this signed decision was already used (a signature counts once)' };
    const result = await identity.verifyDecision.executeWithOptions({ summary: `verify ${command} by ${d.by}` }, [
      { command, decision: { by: d.by, ...(d.reason ? { reason: d.reason } : {}), ...(d.proof ? { proof: d.proof } : {}) }, approvers: release.input.approvers ?? [] },
    ]);
    if (!result.verified) return { why: result.reason };
    if (used.has(d.proof!.nonce)) return { why: 'this signed decision was already used (a signature counts once)' };
    used.add(d.proof!.nonce);
    return { key: result.key };
  };

  for (const command of Object.keys(UPDATES) as Command[]) {
    setHandler(
      UPDATES[command],
      async (d: Decision) => {
        const why = refusal(release, command, d);
        if (why) throw refused(why);
        const proven = await verify(command, d);
        if ('why' in proven) {
          record(command, d, 'update', false, `refused: ${proven.why}`);
          throw refused(proven.why);
        }
        // the phase may have moved while the signature was checked
        const now = refusal(release, command, d);
        if (now) throw refused(now);
        const note = apply(release, command, d);
        record(command, d, 'update', true, note, proven.key);
        if (command === 'abort') onAbort();
        return note;
      },
      {
        validator: (d: Decision) => {
          const why = refusal(release, command, d);
          if (why) throw refused(why);
          if (refusals >= MAX_REFUSALS_RECORDED && !d.proof) throw refused('unsigned: a decision counts only when signed with your SSH key (README, Security model)');
        },
      },
    );
    setHandler(SIGNALS[command], async (d: Decision) => {
      if (refusals >= MAX_REFUSALS_RECORDED && !d?.proof) return;
      const why = refusal(release, command, d);
      if (why) return record(command, d, 'signal', false, `ignored: ${why}`);
      const proven = await verify(command, d);
      if ('why' in proven) return record(command, d, 'signal', false, `refused: ${proven.why}`);
      const now = refusal(release, command, d);
      if (now) return record(command, d, 'signal', false, `ignored: ${now}`);
      record(command, d, 'signal', true, apply(release, command, d), proven.key);
      if (command === 'abort') onAbort();
    });
  }
  setHandler(statusQuery, () => release.status);
}
