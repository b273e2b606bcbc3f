import { appendFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import type { WorkflowHandle } from '@temporalio/client';
import { parseDuration } from '../../release-spec/duration.ts';
import type { Command, ReleaseStatus } from '../../workflows/messages.ts';
import { SA } from '../../workflows/search-attributes.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import { exitCodeFor, followRelease, type FollowResult } from '../follow.ts';
import { type Output, printJson } from '../output.ts';
import { connect, releaseHandle, releaseStatus, sendCommand, startRelease, uiLink } from '../releases.ts';
import { markdownSummary, phaseText, progressLines, renderStatus } from '../render.ts';
import { describePlan, loadOrExit } from './validate.ts';

export interface Flags {
  file?: string;
  wait?: boolean;
  timeout?: string;
  reason?: string;
  as?: string;
  limit?: string;
  key?: string;
}

/** Who is asking: --as, else the CI system's user, else the OS user. */
export function identity(flags: Flags): string {
  return flags.as ?? process.env.GITHUB_ACTOR ?? process.env.GITLAB_USER_LOGIN ?? process.env.BUILDKITE_BUILD_CREATOR ?? process.env.USER ?? userInfo().username;
}

function timeoutMs(flags: Flags): number | undefined {
  if (!flags.timeout) return undefined;
  const ms = parseDuration(flags.timeout);
  if (!ms) throw new CliError(`--timeout takes a duration such as 30m or 2h, not "${flags.timeout}"`, EXIT.invalid);
  return ms;
}

export async function start(flags: Flags, out: Output): Promise<number> {
  const input = await loadOrExit(flags.file, out);
  const limit = timeoutMs(flags);
  const temporal = await connect();
  try {
    const handle = await startRelease(temporal.client, { ...input, startedBy: identity(flags) });
    const link = uiLink(temporal.namespace, handle.workflowId);
    if (out.json && !flags.wait) printJson({ release: input.spec.metadata.name, workflowId: handle.workflowId, runId: handle.firstExecutionRunId, ui: link ?? null });
    if (!out.json) {
      process.stdout.write(describePlan(input, out));
      process.stdout.write(`started ${out.bold(handle.workflowId)}${link ? `\n  ${link}` : ''}\n`);
      process.stdout.write(`  follow:  hybrid-release watch ${input.spec.spec.app}\n  approve: hybrid-release approve ${input.spec.spec.app}\n  abort:   hybrid-release abort ${input.spec.spec.app} --reason "…"\n`);
    }
    if (!flags.wait) return EXIT.succeeded;
    return await follow(handle, out, limit, link);
  } finally {
    await temporal.close();
  }
}

export async function watch(name: string | undefined, flags: Flags, out: Output): Promise<number> {
  const temporal = await connect();
  try {
    const handle = releaseHandle(temporal.client, required(name));
    return await follow(handle, out, timeoutMs(flags), uiLink(temporal.namespace, handle.workflowId));
  } finally {
    await temporal.close();
  }
}

async function follow(handle: WorkflowHandle, out: Output, limit: number | undefined, link: string | undefined): Promise<number> {
  let prev: ReleaseStatus | undefined;
  let hinted = false;
  // notes about the wait itself go to stderr with --output json, so stdout stays one JSON value
  const notice = (line: string) => (out.json ? process.stderr : process.stdout).write(`${new Date().toISOString().slice(11, 19)} ${out.dim(line)}\n`);
  const result = await followRelease(
    handle,
    (s) => {
      if (!out.json) for (const line of progressLines(prev, s, out)) process.stdout.write(`${line}\n`);
      if (!out.json && !hinted && s.phase === 'AwaitingApproval') {
        process.stdout.write(`  waiting for a person: ${['approve', 'abort'].map((c) => `hybrid-release ${c} ${s.app}`).join('  |  ')}\n`);
        hinted = true;
      }
      if (s.phase !== 'AwaitingApproval') hinted = false;
      prev = s;
    },
    { ...(limit ? { timeoutMs: limit } : {}), onNotice: notice },
  );
  const code = exitCodeFor(result);
  const ending = endingText(result, handle.workflowId);
  if (out.json) printJson({ ...(result.status ?? { workflowId: handle.workflowId }), end: result.end.kind, ...(result.end.kind === 'external' ? { how: result.end.how, reason: result.end.reason ?? null, by: result.end.identity ?? null } : {}), exitCode: code, ui: link ?? null });
  else {
    const s = result.status;
    if (s) process.stdout.write(`${s.release}: ${phaseText(s.phase, out)}${s.error ? ` — ${s.error}` : ''}\n`);
    if (ending) process.stdout.write(`${s ? '' : `${handle.workflowId}: `}${ending}\n`);
  }
  if (process.env.GITHUB_STEP_SUMMARY && result.status) await appendFile(process.env.GITHUB_STEP_SUMMARY, markdownSummary(result.status, link, result.end.kind === 'closed' ? undefined : ending));
  return code;
}

/** What the wait's end means for whoever reads the log, when the phase alone does not say it. */
export function endingText(result: FollowResult, workflowId: string): string | undefined {
  const s = result.status;
  const app = s?.app ?? workflowId.replace(/^release-/, '');
  const remaining = (s?.changes ?? []).filter((c) => c.state !== 'restored');
  const list = remaining.map((c) => `${c.summary} (${c.state})`).join('; ');
  switch (result.end.kind) {
    case 'timedOut':
      return `stopped waiting: --timeout reached; the release goes on (hybrid-release watch ${app})`;
    case 'rollbackFailed':
      return `a person must act: an undo keeps failing or found the target changed since this release wrote it. Retry it (hybrid-release retry ${app}) or accept it and go on undoing the rest (hybrid-release skip ${app} --reason …); the release waits`;
    case 'external': {
      const { how, reason, identity } = result.end;
      const by = identity ? ` by ${identity}` : '';
      const why = reason ? `: ${reason}` : '';
      const left = list ? ` Nothing was undone; changes it had made: ${list}` : s ? ' It had made no change.' : '';
      return how === 'ended without a release status' ? `the release's workflow ended without a release status; check what it changed (hybrid-release status ${app})` : `the release's workflow was ${how}${by}${why}.${left}`;
    }
    case 'closed':
      if (s?.phase === 'Failed') return 'nothing was changed';
      // PartiallyRolledBack is the phase since leases/guarded undo; RolledBack with skips is how older releases end
      if ((s?.phase === 'PartiallyRolledBack' || s?.phase === 'RolledBack') && remaining.length) return `rolled back except what a person skipped: ${list}`;
      return undefined;
  }
}

export async function status(name: string | undefined, out: Output): Promise<number> {
  const temporal = await connect();
  try {
    const s = await releaseStatus(releaseHandle(temporal.client, required(name)));
    if (out.json) printJson(s);
    else process.stdout.write(renderStatus(s, out));
    return EXIT.succeeded;
  } finally {
    await temporal.close();
  }
}

export async function list(flags: Flags, out: Output): Promise<number> {
  const temporal = await connect();
  const limit = Number(flags.limit ?? 20);
  try {
    const rows: Record<string, string>[] = [];
    for await (const w of temporal.client.workflow.list({ query: `WorkflowType IN ('releaseV2', 'releaseWorkflow')`, pageSize: limit })) {
      rows.push({
        release: String(w.typedSearchAttributes.get(SA.release) ?? w.workflowId),
        app: String(w.typedSearchAttributes.get(SA.app) ?? ''),
        phase: String(w.typedSearchAttributes.get(SA.phase) ?? ''),
        status: w.status.name,
        started: w.startTime.toISOString(),
        workflowId: w.workflowId,
      });
      if (rows.length >= limit) break;
    }
    if (out.json) printJson(rows);
    else {
      process.stdout.write(`${'RELEASE'.padEnd(32)} ${'APP'.padEnd(20)} ${'PHASE'.padEnd(17)} STARTED\n`);
      for (const r of rows) process.stdout.write(`${r.release!.padEnd(32)} ${r.app!.padEnd(20)} ${phaseText(r.phase!, out).padEnd(17)} ${r.started}\n`);
    }
    return EXIT.succeeded;
  } finally {
    await temporal.close();
  }
}

export async function command(cmd: Command, name: string | undefined, flags: Flags, out: Output): Promise<number> {
  const temporal = await connect();
  try {
    const answer = await sendCommand(releaseHandle(temporal.client, required(name)), cmd, { by: identity(flags), ...(flags.reason ? { reason: flags.reason } : {}) }, { ...(flags.key ? { key: flags.key } : {}), ...(flags.timeout ? { waitMs: timeoutMs(flags)! } : {}) });
    if (out.json) printJson({ command: cmd, accepted: true, answer });
    else process.stdout.write(`${answer}\n`);
    return EXIT.succeeded;
  } finally {
    await temporal.close();
  }
}

function required(name: string | undefined): string {
  if (!name) throw new CliError('name the release by its app (or its workflow id, release-APP)', EXIT.invalid);
  return name;
}
