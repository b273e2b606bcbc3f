/**
 * A small library for CI and the CLI: start a release, find it, steer it, follow it.
 * Connection settings follow Temporal's conventions (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS
 * and API key variables, and the Temporal CLI's profile file), so one set of settings serves both.
 */
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowIdConflictPolicy, WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { ReleaseInput } from '../release-spec/plan.ts';
import { type Command, type Decision, type ReleaseStatus, statusQuery, UPDATES } from '../workflows/messages.ts';
import { SA, SEARCH_ATTRIBUTE_NAMES, TASK_QUEUE, workflowIdFor } from '../workflows/search-attributes.ts';
import { CliError, EXIT } from './exit-codes.ts';
import { finalStatus, grpcCode, namespaceMissing, rootMessage } from './follow.ts';
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
    throw setupError(err, client.options.namespace) ?? err;
  }
}

/**
 * Errors a namespace that is not set up for releases gives at start, as one line with the fix:
 * a missing namespace, search attributes that were never registered.
 */
export function setupError(err: unknown, namespace: string): CliError | undefined {
  const message = rootMessage(err);
  if (namespaceMissing(err)) return new CliError(`namespace ${namespace} does not exist on this Temporal server: create it (temporal operator namespace create --namespace ${namespace}) or set TEMPORAL_NAMESPACE`, EXIT.invalid);
  const attribute = /search attribute\s+(\w+)/i.exec(message)?.[1] ?? SEARCH_ATTRIBUTE_NAMES.find((n) => message.includes(n));
  if (attribute && /not (defined|registered|found)|no mapping|unknown|invalid/i.test(message)) {
    return new CliError(
      `search attribute ${attribute} is not registered in namespace ${namespace} (${message}): register them once with\n  for a in ${SEARCH_ATTRIBUTE_NAMES.join(' ')}; do temporal operator search-attribute create --namespace ${namespace} --name "$a" --type Keyword; done`,
      EXIT.invalid,
    );
  }
  return undefined;
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
  let described: Awaited<ReturnType<WorkflowHandle['describe']>>;
  try {
    described = await handle.describe();
  } catch (err) {
    throw notFound(err, handle) ?? err;
  }
  if (described.status.name !== 'RUNNING') {
    const final = await finalStatus(handle.client.getHandle(handle.workflowId, described.runId));
    if (final) return final;
    throw new CliError(`release ${handle.workflowId} ended (${described.status.name}) without a release status: it was terminated or timed out from outside; see the Temporal UI`, EXIT.terminated);
  }
  try {
    return await handle.client.connection.withDeadline(Date.now() + QUERY_WAIT_MS, () => handle.query(statusQuery));
  } catch (err) {
    if (notFound(err, handle)) throw notFound(err, handle);
    const phase = described.typedSearchAttributes.get(SA.phase);
    throw new CliError(
      `release ${handle.workflowId} is running${phase ? ` (phase ${phase}, from its search attributes)` : ''} but did not answer its status query within ${QUERY_WAIT_MS / 1000}s: no worker is serving task queue ${described.taskQueue}? (${rootMessage(err)})`,
      EXIT.unreachable,
    );
  }
}

const QUERY_WAIT_MS = 15_000;

/** A not-found answer as one line naming what was not found, else undefined. */
export function notFound(err: unknown, handle: WorkflowHandle): CliError | undefined {
  if (!(err instanceof WorkflowNotFoundError) && grpcCode(err) !== 5 && !namespaceMissing(err)) return undefined;
  const namespace = handle.client.options.namespace;
  if (namespaceMissing(err)) return new CliError(`namespace ${namespace} does not exist on this Temporal server: create it (temporal operator namespace create --namespace ${namespace}) or set TEMPORAL_NAMESPACE`, EXIT.invalid);
  const app = handle.workflowId.replace(/^release-/, '');
  return new CliError(`no release of app ${app} (workflow id ${handle.workflowId}) in namespace ${namespace}`, EXIT.invalid);
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
export async function sendCommand(handle: WorkflowHandle, command: Command, decision: Decision, options: { key?: string; waitMs?: number } = {}): Promise<string> {
  const waitMs = options.waitMs ?? COMMAND_WAIT_MS;
  let runId: string | undefined;
  try {
    const signed = await signedDecision(handle, command, decision, options.key);
    runId = signed.runId;
    // an update waits for a worker to accept it; without one it would wait for ever
    return await handle.client.connection.withDeadline(Date.now() + waitMs, () => handle.client.getHandle(handle.workflowId, signed.runId).executeUpdate(UPDATES[command], { args: [signed.decision] }));
  } catch (err) {
    if (err instanceof SigningError) throw new CliError(err.message, EXIT.invalid);
    if (err instanceof WorkflowUpdateFailedError) throw new CliError(`${command} refused: ${err.cause?.message ?? err.message}`, EXIT.invalid);
    const missing = notFound(err, handle);
    if (missing) throw runId ? new CliError(`no running release ${handle.workflowId}: it ended before the ${command} reached it`, EXIT.invalid) : missing;
    if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || grpcCode(err) === 4) throw await unserved(handle, command, waitMs, err);
    throw err;
  }
}

/** Tells "no worker is serving the release" from "the release ended" once an update got no answer. */
async function unserved(handle: WorkflowHandle, command: Command, waitMs: number, err: unknown): Promise<CliError> {
  try {
    const d = await handle.client.connection.withDeadline(Date.now() + 10_000, () => handle.describe());
    if (d.status.name === 'RUNNING') {
      const phase = d.typedSearchAttributes.get(SA.phase);
      return new CliError(
        `the release ${handle.workflowId} is alive (running${phase ? `, phase ${phase}` : ''}) but no worker is serving it: ${command} got no answer within ${Math.round(waitMs / 1000)}s. Start a worker on task queue ${d.taskQueue}; the ${command} was not confirmed and may still take effect when one polls — check with hybrid-release status ${handle.workflowId.replace(/^release-/, '')}`,
        EXIT.unreachable,
      );
    }
    return new CliError(`no running release ${handle.workflowId}: it is ${d.status.name}`, EXIT.invalid);
  } catch {
    return new CliError(`${command} got no answer within ${Math.round(waitMs / 1000)}s (${rootMessage(err)}), and Temporal does not answer either`, EXIT.unreachable);
  }
}

/** How long approve/abort/… wait for a worker to accept them (`--timeout` overrides). */
export const COMMAND_WAIT_MS = 60_000;
