/**
 * The Chef activities the release workflow calls. Every export of this module is registered as an
 * activity, so helpers live in the sibling modules and only activities (and types) are exported here.
 */
import { ApplicationFailure, Context, log } from '@temporalio/activity';
import { enforceChef } from '../../policy/enforce.ts';
import { CHEF_AUTH, CHEF_FORBIDDEN, ChefClient } from './client.ts';
import { checkConvergence, DEFAULT_RULES, newPollMemory } from './convergence.ts';
import { forgetCredentials, resolveCredentials, type ChefCredentialsRef } from './credentials.ts';
import { applyPins, getEnvironment, pinsOf, refuseDefault, type ChefEnvironment, type CookbookPins } from './environment.ts';
import { UNDO_CONFLICT } from '../undo-conflict.ts';
import { preflight, type PreflightResult } from './preflight.ts';
import { pollGate } from '../gates/poll.ts';
import { heartbeating } from '../heartbeat.ts';
import type { GateResult } from '../gates/result.ts';

export type { ChefCredentialsRef } from './credentials.ts';
export type { CookbookPins } from './environment.ts';
export type { ConvergenceObserved } from './convergence.ts';

/** One entry of the spec's chef[] list. */
export interface ChefTarget {
  id: string;
  serverUrl: string;
  environment: string;
  /** cookbook -> constraint */
  cookbooks: Record<string, string>;
  credentials: ChefCredentialsRef;
  /** default '1.1' */
  protocol?: '1.0' | '1.1' | '1.3';
}

/** The activity's cancellation signal, when running as an activity. */
function cancellation(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

/**
 * Runs `fn` with a client for the target. A rejected key is dropped from the cache so the next
 * attempt reads it again (it may have been rotated in the file or Secret meanwhile).
 */
async function withChef<T>(target: ChefTarget, fn: (client: ChefClient, signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
  // the worker's policy for the app: server, environment, cookbooks and credentials, before any key is read
  enforceChef(target);
  const identity = await resolveCredentials(target.credentials);
  if (identity.profileServerUrl && identity.profileServerUrl.replace(/\/+$/, '') !== target.serverUrl.replace(/\/+$/, '')) {
    log.warn('knife profile points at another Chef server than the release spec; using the spec', {
      target: target.id,
      specServerUrl: target.serverUrl,
      profileServerUrl: identity.profileServerUrl,
    });
  }
  const client = new ChefClient({ serverUrl: target.serverUrl, identity, protocol: target.protocol ?? '1.1' });
  try {
    return await fn(client, cancellation());
  } catch (err) {
    if (err instanceof ApplicationFailure && (err.type === CHEF_AUTH || err.type === CHEF_FORBIDDEN)) forgetCredentials(target.credentials);
    throw err;
  }
}

/** Before any change: environment exists and is not _default, credentials work, every constraint can be met. */
export async function chefPreflight(target: ChefTarget): Promise<PreflightResult> {
  return withChef(target, (client, signal) => preflight(client, target.environment, target.cookbooks, signal));
}

/** The environment's current constraints for the target's cookbooks (null = absent): what a compensation restores. */
export async function chefSnapshot(target: ChefTarget): Promise<CookbookPins> {
  return withChef(target, async (client, signal) => {
    refuseDefault(client, target.environment);
    return pinsOf(await getEnvironment(client, target.environment, signal), Object.keys(target.cookbooks));
  });
}

/** chefPin's result. */
export interface ChefPinResult {
  /** the constraints before (null = absent) */
  previous: CookbookPins;
  /**
   * Epoch ms (worker clock) by which the pin had landed on the server: when the write and its
   * read-back had returned, or, when the environment already had the pin (a retried attempt), when
   * that was seen. Chef runs that start after it resolve the new versions. Absent in results
   * recorded before the field existed.
   */
  landedAt?: number;
}

/**
 * Sets the target's constraints, verifies them by reading back, and returns the values before and
 * when the pin landed. Idempotent; a retry after an attempt that already applied returns the new
 * values as "previous", which is why the workflow takes its undo values from chefSnapshot before
 * calling this.
 */
export async function chefPin(target: ChefTarget): Promise<ChefPinResult> {
  // heartbeats so an abort reaches it; stops before the PUT when cancelled, never during it (docs/rollback.md)
  return heartbeating((beforeWrite) => withChef(target, async (client, signal) => {
    const { previous, changed } = await applyPins(client, target.environment, target.cookbooks, signal, { beforeWrite });
    // applyPins returns after the write and its read-back: by now any chef-client run resolves the new pins
    const landedAt = Date.now();
    log.info(changed ? 'pinned Chef cookbooks' : 'Chef cookbooks already pinned', {
      target: target.id,
      server: client.serverUrl,
      environment: target.environment,
      previous,
      pinned: target.cookbooks,
    });
    return { previous, landedAt };
  }));
}

/**
 * Writes back exactly the recorded constraints (null removes the entry). Idempotent; touches
 * nothing else. With `written` (what the release pinned), a cookbook whose constraint is now
 * neither that nor the recorded one was changed by someone else: nothing is written and the
 * restore fails with a non-retryable conflict naming the cookbook and the value found (the
 * release waits in RollbackFailed for retry or skip). Chef keeps no history of an environment,
 * so who changed it cannot be told; the message says it was changed outside this release.
 */
export async function chefRestore(input: { target: ChefTarget; previous: CookbookPins; written?: Record<string, string> }): Promise<void> {
  const { target, previous, written } = input;
  enforceChef({ ...target, cookbooks: { ...previous, ...target.cookbooks } });
  await withChef(target, async (client, signal) => {
    const guard = written ? (env: ChefEnvironment) => refuseForeignPins(client, target.environment, env, previous, written) : undefined;
    const { changed } = await applyPins(client, target.environment, previous, signal, guard ? { guard } : {});
    log.info(changed ? 'restored Chef cookbook constraints' : 'Chef cookbook constraints already as recorded', {
      target: target.id,
      server: client.serverUrl,
      environment: target.environment,
      restored: previous,
    });
  });
}

/** Throws an UndoConflict when a cookbook holds neither what the release wrote nor what it restores. */
function refuseForeignPins(client: ChefClient, environment: string, env: ChefEnvironment, previous: CookbookPins, written: Record<string, string>): void {
  const now = pinsOf(env, Object.keys(previous));
  const show = (c: string | null | undefined) => (c === null || c === undefined ? '(unpinned)' : JSON.stringify(c));
  const foreign = Object.keys(previous).filter((cb) => now[cb] !== (written[cb] ?? null) && now[cb] !== previous[cb]);
  if (foreign.length === 0) return;
  throw ApplicationFailure.create({
    type: UNDO_CONFLICT,
    nonRetryable: true,
    message:
      foreign.map((cb) => `cookbook_versions.${cb} in environment ${environment} (${client.serverUrl}) is ${show(now[cb])}, not ${show(written[cb])} as this release wrote`).join('; ') +
      `: changed outside this release (a Chef environment keeps no history of who changed it). Not restored to ${foreign.map((cb) => `${cb} ${show(previous[cb])}`).join(', ')}: ` +
      'retry after putting it back yourself, or skip to keep what is there',
    details: [{ conflicts: foreign.map((cb) => ({ key: `cookbook_versions.${cb}`, found: now[cb], wrote: written[cb] ?? null, restore: previous[cb] })) }],
  });
}

/**
 * Waits until at least minPercent of the environment's live nodes ran chef-client after the pin
 * on a version that satisfies the constraints; fails at once when more than maxFailed nodes
 * failed a run since the pin (seen in the server's run reports). Rules: convergence.ts.
 * observed = ConvergenceObserved.
 */
export async function chefConvergenceGate(input: {
  gate: string;
  target: ChefTarget;
  /** epoch ms by which the pin had landed (chefPin's landedAt; older callers: the workflow's clock before the pin) */
  since: number;
  minPercent: number;
  /** failed nodes tolerated (default 0) */
  maxFailed?: number;
  /** a node without a successful run this long is stale (default 1h) */
  staleAfterMs?: number;
  /** count stale nodes in the percentage (default false) */
  includeStale?: boolean;
  /** node clock skew tolerated (default 5m) */
  maxClockSkewMs?: number;
  timeoutMs: number;
  intervalMs: number;
  successes: number;
}): Promise<GateResult> {
  const { target } = input;
  const rules = {
    minPercent: input.minPercent,
    maxFailed: input.maxFailed ?? DEFAULT_RULES.maxFailed,
    staleAfterMs: input.staleAfterMs ?? DEFAULT_RULES.staleAfterMs,
    includeStale: input.includeStale ?? DEFAULT_RULES.includeStale,
    maxClockSkewMs: input.maxClockSkewMs ?? DEFAULT_RULES.maxClockSkewMs,
  };
  // failed runs seen by earlier polls of this attempt: a run new since a poll after the pin started after it
  const memory = newPollMemory();
  return withChef(target, (client) =>
    pollGate(
      { name: input.gate, kind: 'chefConvergence' },
      { timeoutMs: input.timeoutMs, intervalMs: input.intervalMs, successes: input.successes },
      (signal) => checkConvergence(client, target.environment, target.cookbooks, input.since, rules, signal, memory),
    ),
  );
}
