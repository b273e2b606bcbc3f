/**
 * Human control of a running release. Updates answer the caller (and their validators refuse
 * a command in the wrong phase or from someone not in spec.approvals.approvers); signals with
 * the same meaning exist for tools that can only signal, and a refused signal is recorded.
 */
import { ApplicationFailure, setHandler } from '@temporalio/workflow';
import { type Command, type Decision, type Phase, SIGNALS, statusQuery, UPDATES } from '../messages.ts';
import type { ReleaseState } from './state.ts';

const RUNNING: readonly Phase[] = ['Pending', 'Preflight', 'Applying', 'Verifying', 'Paused', 'AwaitingApproval'];

/** Why a command is refused now, or undefined when it is allowed. */
function refusal(release: ReleaseState, command: Command, d: Decision): string | undefined {
  if (!d || typeof d.by !== 'string' || d.by.trim() === '') return 'say who you are (--as USER)';
  const approvers = release.input.spec.spec.approvals.approvers;
  if (approvers.length > 0 && !approvers.includes(d.by)) {
    return `${d.by} is not an approver of ${release.status.release} (approvers: ${approvers.join(', ')})`;
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

function record(release: ReleaseState, command: Command, d: Decision, via: 'update' | 'signal', accepted: boolean, note: string) {
  release.recordDecision({ command, by: d?.by ?? '(unknown)', ...(d?.reason ? { reason: d.reason } : {}), via, accepted, note });
}

export function installControls(release: ReleaseState, onAbort: () => void): void {
  for (const command of Object.keys(UPDATES) as Command[]) {
    setHandler(
      UPDATES[command],
      (d: Decision) => {
        // phases may have moved between validation and handling; check again
        const why = refusal(release, command, d);
        if (why) throw refused(why);
        const note = apply(release, command, d);
        record(release, command, d, 'update', true, note);
        if (command === 'abort') onAbort();
        return note;
      },
      {
        validator: (d: Decision) => {
          const why = refusal(release, command, d);
          if (why) throw refused(why);
        },
      },
    );
    setHandler(SIGNALS[command], (d: Decision) => {
      const why = refusal(release, command, d);
      if (why) return record(release, command, d, 'signal', false, `ignored: ${why}`);
      record(release, command, d, 'signal', true, apply(release, command, d));
      if (command === 'abort') onAbort();
    });
  }
  setHandler(statusQuery, () => release.status);
}
