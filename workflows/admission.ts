/**
 * Admission: the first thing a release does. Its input is untrusted — whatever started the
 * workflow (the CLI, `temporal workflow start`, the Temporal UI) — so the worker validates the
 * spec with the one schema, builds the plan itself and checks its policy (an activity: the policy
 * lives on the worker), and the release runs only what that returns. A refusal ends the release
 * `Failed` with the reason, before anything was touched.
 */
import { ApplicationFailure, setCurrentDetails, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { ReleaseInput } from '../release-spec/plan.ts';
import { reads } from './activities.ts';
import { type Command, type ReleaseStatus, statusQuery, UPDATES } from './messages.ts';
import { SA } from './search-attributes.ts';
import { failureMessage } from './steps.ts';
import { now } from './clock.ts';

/** A short string from the untrusted input, for the status of a release that is refused. */
const text = (v: unknown, fallback: string) => (typeof v === 'string' && /^[a-z0-9-]{1,63}$/.test(v) ? v : fallback);

export async function admit(request: ReleaseInput): Promise<ReleaseInput> {
  const raw = request as unknown as { spec?: { metadata?: { name?: unknown }; spec?: { app?: unknown } } } | undefined;
  const status: ReleaseStatus = {
    release: text(raw?.spec?.metadata?.name, workflowInfo().workflowId),
    app: text(raw?.spec?.spec?.app, '(unknown)'),
    phase: 'Pending',
    startedAt: now(),
    steps: [],
    changes: [],
    gates: [],
    decisions: [],
  };
  // answered until the release installs its own handlers, so `status` and `watch` work from the start
  setHandler(statusQuery, () => status);
  for (const command of Object.keys(UPDATES) as Command[]) {
    setHandler(UPDATES[command], (_d) => '', { validator: (_d) => refuseWhileAdmitting(command) });
  }
  setCurrentDetails(`**${status.release}**: admission — the worker validates the spec and checks its policy`);
  try {
    return await reads.admitRelease.executeWithOptions({ summary: 'admission: validate the spec, build the plan, check the worker policy' }, [request]);
  } catch (err) {
    status.phase = 'Failed';
    status.error = `${failureMessage(err)} (nothing was changed)`;
    status.endedAt = now();
    upsertSearchAttributes([{ key: SA.phase, value: 'Failed' }]);
    setCurrentDetails(`**${status.release}**: **Failed**\n\nerror: ${status.error}`);
    throw ApplicationFailure.create({ type: 'ReleaseFailed', message: status.error, nonRetryable: true, details: [status] });
  }
}

/** Commands before the release is admitted: nothing to decide yet (signals wait for the release's handlers). */
function refuseWhileAdmitting(command: Command): never {
  const why =
    command === 'approve'
      ? 'nothing to approve: the release is Pending, not AwaitingApproval'
      : command === 'retry' || command === 'skip'
        ? `${command} answers a failing compensation; the release is Pending`
        : `the release is Pending: the worker is still admitting it (validating the spec and checking its policy); try again in a moment`;
  throw ApplicationFailure.create({ type: 'Refused', message: why, nonRetryable: true });
}
