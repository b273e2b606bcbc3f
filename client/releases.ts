/**
 * A small library for CI and the CLI: start a release, find it, steer it, follow it.
 * Connection settings follow Temporal's conventions (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS
 * and API key variables, and the Temporal CLI's profile file), so one set of settings serves both.
 */
import { Client, Connection, QueryNotRegisteredError, WorkflowExecutionAlreadyStartedError, WorkflowIdConflictPolicy, WorkflowNotFoundError, WorkflowUpdateFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { ReleaseInput } from '../release-spec/plan.ts';
import { type Command, type Decision, type ReleaseStatus, statusQuery, UPDATES } from '../workflows/messages.ts';
import { SA, TASK_QUEUE, workflowIdFor } from '../workflows/search-attributes.ts';
import { CliError, EXIT } from './exit-codes.ts';
import { finalStatus } from './follow.ts';
import { signDecision, SigningError, signingKey } from './sign.ts';

export interface Connected {
  client: Client;
  namespace: string;
  close(): Promise<void>;
}

export async function connect(): Promise<Connected> {
  const config = loadClientConnectConfig();
  const namespace = config.namespace ?? 'default';
  const address = config.connectionOptions.address ?? 'localhost:7233';
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...(config.connectionOptions as object), address, connectTimeout: '5s' });
  } catch (err) {
    throw new CliError(`cannot reach Temporal at ${address}: ${(err as Error).message} (set TEMPORAL_ADDRESS, or run \`npm run stack -- up\` and \`source .stack/env\`)`, EXIT.unreachable);
  }
  return { client: new Client({ connection, namespace }), namespace, close: () => connection.close() };
}

export function uiLink(namespace: string, workflowId: string): string | undefined {
  const base = process.env.TEMPORAL_UI_URL;
  return base ? `${base.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}` : undefined;
}

/**
 * Starts a release. One release runs per app at a time (the workflow id is derived from the
 * app), so a second start is refused with the name of the release that is running.
 */
export async function startRelease(
  client: Client,
  input: ReleaseInput,
  options: { taskQueue?: string } = {},
): Promise<WorkflowHandleWithFirstExecutionRunId> {
  const { metadata, spec } = input.spec;
  const workflowId = workflowIdFor(spec.app);
  try {
    return await client.workflow.start('releaseV2', {
      workflowId,
      taskQueue: options.taskQueue ?? process.env.HR_TASK_QUEUE ?? TASK_QUEUE,
      args: [{ ...input, ...(process.env.TEMPORAL_UI_URL && !input.uiUrl ? { uiUrl: process.env.TEMPORAL_UI_URL } : {}) }],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      staticSummary: `release ${metadata.name} of ${spec.app}${spec.version ? ` (${spec.version})` : ''}`,
      staticDetails: input.plan.map((s, i) => `${i + 1}. ${s.summary}`).join('\n'),
      typedSearchAttributes: [
        { key: SA.release, value: metadata.name },
        { key: SA.app, value: spec.app },
        { key: SA.phase, value: 'Pending' },
      ],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      const running = await describeRunning(client, workflowId);
      throw new CliError(`app ${spec.app} already has a release running: ${running} — wait for it, or abort it (hybrid-release abort ${spec.app})`, EXIT.invalid);
    }
    throw err;
  }
}

async function describeRunning(client: Client, workflowId: string): Promise<string> {
  try {
    const d = await client.workflow.getHandle(workflowId).describe();
    return `${d.typedSearchAttributes.get(SA.release) ?? workflowId} (started ${d.startTime.toISOString()})`;
  } catch {
    return workflowId;
  }
}

/** A release by app name (its workflow id) or by explicit workflow id. */
export function releaseHandle(client: Client, appOrId: string): WorkflowHandle {
  return client.workflow.getHandle(appOrId.startsWith('release-') ? appOrId : workflowIdFor(appOrId));
}

/**
 * A running release answers its status query; an ended one is read from its result or failure,
 * which needs no worker.
 */
export async function releaseStatus(handle: WorkflowHandle): Promise<ReleaseStatus> {
  try {
    const { status } = await handle.describe();
    if (status.name !== 'RUNNING') {
      const final = await finalStatus(handle);
      if (final) return final;
      throw new CliError(`release ${handle.workflowId} ended (${status.name}) without a status`, EXIT.rolledBack);
    }
    return await handle.query(statusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new CliError(`no release ${handle.workflowId}`, EXIT.invalid);
    if (err instanceof QueryNotRegisteredError || (err as Error).name === 'ServiceError') {
      throw new CliError(`release ${handle.workflowId} did not answer: is a hybrid-release worker running on its task queue? (${(err as Error).cause ?? (err as Error).message})`, EXIT.unreachable);
    }
    throw err;
  }
}

/**
 * A decision signed for the release's current run with the approver's SSH key (--key, else
 * HR_SIGNING_KEY, else ~/.ssh/id_ed25519…): what the worker accepts as proof of who decided.
 * Also what a tool that can only signal sends as the signal's argument.
 */
export async function signedDecision(handle: WorkflowHandle, command: Command, decision: Decision, key?: string): Promise<{ decision: Decision; runId: string }> {
  const { runId } = await handle.describe();
  return { decision: await signDecision({ workflowId: handle.workflowId, runId }, command, decision, signingKey(key)), runId };
}

/**
 * Sends approve/abort/…, signed (see signedDecision) and addressed to the run the signature is
 * for; a refusal (wrong phase, not an approver, a signature the worker cannot verify) is exit code
 * 2 with the reason.
 */
export async function sendCommand(handle: WorkflowHandle, command: Command, decision: Decision, options: { key?: string } = {}): Promise<string> {
  try {
    const { decision: signed, runId } = await signedDecision(handle, command, decision, options.key);
    return await handle.client.getHandle(handle.workflowId, runId).executeUpdate(UPDATES[command], { args: [signed] });
  } catch (err) {
    if (err instanceof SigningError) throw new CliError(err.message, EXIT.invalid);
    if (err instanceof WorkflowUpdateFailedError) throw new CliError(`${command} refused: ${err.cause?.message ?? err.message}`, EXIT.invalid);
    if (err instanceof WorkflowNotFoundError) throw new CliError(`no running release ${handle.workflowId}`, EXIT.invalid);
    throw err;
  }
}
