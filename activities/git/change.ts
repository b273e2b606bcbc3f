/**
 * The Git-mode change and its undo, as commits on the branch the Flux source reads.
 *
 * **Commit** (`commitChange`): fetch the branch head, find the lines (yaml-fields.ts), replace
 * only their values, make a commit on top of that head and push it as a plain fast-forward. The
 * push is the compare-and-swap: if someone pushed in between, the server refuses it (the branch
 * no longer points at our parent), and the change is applied again to the new head after a
 * backoff — the one-line change re-applies cleanly unless someone changed the same line, which
 * preflight would then have to see again. Two releases of different apps in one repository both
 * land, one after the other.
 *
 * **Undo** (`revertChange`): a new commit on top of the current head that puts back, for each line
 * the release's commit changed, exactly the text that was there before it (read from the commit's
 * parent) — never a force push, never a rewrite of anyone's history. A line someone changed since
 * is a conflict: nothing is committed and the failure names the commit that changed it
 * (UndoConflict, the shape the workflow shows in RollbackFailed).
 *
 * Both are idempotent: each commit carries a trailer `Hybrid-Release-Change: <token>` (the undo
 * `<token>/undo`), and an attempt that finds its commit on the branch already returns it, so a
 * retried activity after a lost response never commits twice.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { FluxTarget } from '../flux/types.ts';
import type { GitAuth } from './cli.ts';
import { pushAuth } from './credentials.ts';
import { CHANGE_TRAILER, classify, type CommitInfo, GitFailure, type Identity, Repository } from './repository.ts';
import { refuseGit, requestReconcile, resolveSource, revisionOf, type GitSource } from './source.ts';
import { FieldProblem, holdsWant, locateFields, type LocatedField, sameValue, scalarText, spliceFields } from './yaml-fields.ts';

export type GitTarget = FluxTarget & { git: NonNullable<FluxTarget['git']> };

/** Who the release is, for the commit message (the workflow id comes from the activity's own context). */
export interface ReleaseIdentity {
  name: string;
  app: string;
  version?: string;
  startedBy?: string;
}

/** One line a commit changed: where, and the text before and after (quotes included). */
export interface ChangedLine {
  key: string;
  line: number;
  before: string;
  after: string;
}

export interface GitCommitted {
  /** the commit whose tree holds the change (the branch head when the file already had it) */
  commit: string;
  /** the change's token: the commit's trailer and the reconcile request (reconcile.fluxcd.io/requestedAt) */
  token: string;
  /** as source-controller reports it: `<branch>@sha1:<commit>` */
  revision: string;
  /** false when the file already held the values: no commit was needed */
  changed: boolean;
  /** push attempts this call made (1 unless the branch moved in between; 0 when an earlier attempt had pushed) */
  attempts: number;
  lines: ChangedLine[];
  source: Omit<GitSource, 'kind'> & { path: string };
}

export interface GitReverted {
  /** the undo commit, or the head when there was nothing to undo */
  commit: string;
  /** the undo's token (trailer and reconcile request) */
  token: string;
  revision: string;
  /** the release's own commit that was undone (undefined: it never reached the branch) */
  reverted?: string;
  restored: string[];
  unchanged: string[];
  attempts: number;
  lines: ChangedLine[];
  source: Omit<GitSource, 'kind'> & { path: string };
}

export const UNDO_CONFLICT = 'UndoConflict';
export const GIT_PUSH_CONTENDED = 'GitPushContended';

/** The commit author and committer: the worker's identity (HR_GIT_AUTHOR="Name <email>"). */
export function workerIdentity(): Identity {
  const raw = process.env.HR_GIT_AUTHOR?.trim();
  const m = raw ? /^(.+?)\s*<([^<>\s]+@[^<>\s]+)>$/.exec(raw) : null;
  return m ? { name: m[1]!, email: m[2]! } : { name: 'hybrid-release', email: 'hybrid-release@users.noreply.invalid' };
}

const MAX_ATTEMPTS = 8;
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
/** 0.5 s, 1 s, 2 s … capped at 8 s, with jitter so two losers do not collide again. */
const backoff = (attempt: number) => Math.min(8_000, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random());

function activity() {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** How often a commit or undo heartbeats while git works (a fetch or push may take a while on a big repository). */
const HEARTBEAT_MS = 10_000;

/**
 * Runs `fn` heartbeating every HEARTBEAT_MS with the current attempt, so a slow fetch never looks
 * like a dead worker and a cancellation reaches the activity (git is then killed through the signal).
 */
async function heartbeating<T>(fn: (progress: { attempt: number }) => Promise<T>): Promise<T> {
  const ctx = activity();
  const progress = { attempt: 0 };
  ctx?.heartbeat(progress);
  const timer = ctx ? setInterval(() => ctx.heartbeat(progress), HEARTBEAT_MS) : undefined;
  try {
    return await fn(progress);
  } finally {
    clearInterval(timer);
  }
}

/** Turns git and kube errors into what the workflow needs: retry, or stop with a message. */
export function asFailure(err: unknown, target: Pick<FluxTarget, 'kind' | 'namespace' | 'name'>): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof FieldProblem) return refuseGit(target, err.message);
  const f = err instanceof GitFailure ? err : classify(err, 'git');
  return ApplicationFailure.create({
    type: f.kind === 'transient' ? 'GitUnavailable' : f.kind === 'auth' ? 'GitDenied' : f.kind === 'not-found' ? 'GitNotFound' : 'GitRefused',
    nonRetryable: f.kind !== 'transient',
    message: `${target.kind} ${target.namespace}/${target.name} (Git mode): ${f.message}`,
  });
}

interface Opened {
  source: GitSource;
  repo: Repository;
  auth: GitAuth | undefined;
}

export async function openTarget(target: GitTarget, resolved?: GitSource): Promise<Opened> {
  const source: GitSource = resolved ?? (({ targetObject: _t, applierObject: _a, ...rest }) => rest)(await resolveSource(target));
  const auth = await pushAuth(target, source.url);
  const repo = await Repository.open(source.url, { auth, signal: activity()?.cancellationSignal });
  return { source, repo, auth };
}

const publicSource = (s: GitSource, path: string) => ({ applier: s.applier, appliesItself: s.appliesItself, gitRepository: s.gitRepository, url: s.url.replace(/\/\/[^/@]+@/, '//***@'), branch: s.branch, applierPath: s.applierPath, path });

const describeTarget = (t: FluxTarget) => `${t.kind} ${t.namespace}/${t.name}`;
const wantText = (t: FluxTarget) => (t.kind === 'Kustomization' ? t.images.map((i) => `${i.newName ?? i.name}${i.digest ? `@${i.digest}` : `:${i.newTag}`}`).join(', ') : t.values.map((v) => `${v.path}=${v.value}`).join(', '));

function trailers(release: ReleaseIdentity, token: string): string {
  const run = activity()?.info.workflowExecution;
  const lines = [
    `Release: ${release.name}`,
    `App: ${release.app}`,
    ...(release.version ? [`Version: ${release.version}`] : []),
    ...(run ? [`Workflow-Id: ${run.workflowId}`, `Workflow-Run-Id: ${run.runId}`] : []),
    ...(release.startedBy ? [`Started-By: ${release.startedBy}`] : []),
    `${CHANGE_TRAILER}: ${token}`,
  ];
  return lines.join('\n');
}

function commitMessage(target: GitTarget, source: GitSource, release: ReleaseIdentity, token: string, lines: ChangedLine[]): string {
  const subject = `release ${release.name}: ${release.app}${release.version ? ` ${release.version}` : ''} — ${wantText(target)}`;
  const body = [
    `Release ${release.name} of app ${release.app}${release.version ? `, version ${release.version}` : ''}, sets on ${describeTarget(target)}:`,
    ...lines.map((l) => `  ${target.git.path}:${l.line} ${l.key}: ${l.before} -> ${l.after}`),
    `Flux applies it through Kustomization ${source.applier.namespace}/${source.applier.name} from GitRepository ${source.gitRepository.namespace}/${source.gitRepository.name}.`,
  ];
  return `${subject}\n\n${body.join('\n')}\n\n${trailers(release, token)}\n`;
}

function revertMessage(target: GitTarget, release: ReleaseIdentity, token: string, reverted: CommitInfo, lines: ChangedLine[], reason?: string): string {
  const subject = `Revert release ${release.name}: ${release.app}${release.version ? ` ${release.version}` : ''} (${reverted.sha.slice(0, 12)})`;
  const body = [
    `Undo of release ${release.name}: puts back the lines commit ${reverted.sha} changed in ${target.git.path}:`,
    ...lines.map((l) => `  ${target.git.path}:${l.line} ${l.key}: ${l.before} -> ${l.after}`),
    ...(reason ? ['', `Why: ${reason}`] : []),
    '',
    `This reverts the change of commit ${reverted.sha}.`,
  ];
  return `${subject}\n\n${body.join('\n')}\n\n${trailers(release, token)}\n`;
}

/** The lines a commit changed, with the text before (its parent) and after. */
async function linesOf(repo: Repository, target: GitTarget, commit: string): Promise<{ before: LocatedField[]; after: LocatedField[]; parent: string }> {
  const parent = await repo.parent(commit);
  const [was, now] = await Promise.all([repo.readFile(parent, target.git.path), repo.readFile(commit, target.git.path)]);
  if (was === null || now === null) throw new GitFailure('refused', `commit ${commit.slice(0, 12)} does not change ${target.git.path} as a release commit does`);
  const before = locateFields(was, target, target.git.path).fields;
  const after = locateFields(now, target, target.git.path).fields;
  return { before, after, parent };
}

/** The file at `head`, or a refusal naming the branch. */
async function fileAt(repo: Repository, source: GitSource, head: string, target: GitTarget): Promise<string> {
  const text = await repo.readFile(head, target.git.path);
  if (text === null) throw refuseGit(target, `${target.git.path} does not exist on branch ${source.branch} of ${source.url} (at ${head.slice(0, 12)})`);
  return text;
}

/** Read-only: the lines the release would change, as they are on the branch now. */
export async function snapshotChange(target: GitTarget): Promise<{ head: string; revision: string; fields: Array<{ key: string; line: number; text: string; value: unknown }> }> {
  try {
    const { source, repo } = await openTarget(target);
    const head = await repo.fetch(source.branch);
    const { fields } = locateFields(await fileAt(repo, source, head, target), target, target.git.path);
    return { head, revision: revisionOf(source.branch, head), fields: fields.map(({ key, line, text, value }) => ({ key, line, text, value })) };
  } catch (err) {
    throw asFailure(err, target);
  }
}

/**
 * Commits the release's values to the file on the branch (see the module comment), then asks
 * source-controller and the applier to reconcile now (`token`). `afterRead` lets a test push a
 * competing commit between the read and the push.
 */
export async function commitChange(
  input: { target: GitTarget; token: string; release: ReleaseIdentity },
  hooks: { afterRead?: (attempt: number, head: string) => Promise<void> } = {},
): Promise<GitCommitted> {
  const { target, token, release } = input;
  const ctx = activity();
  try {
    return await heartbeating(async (progress) => {
      const { source, repo } = await openTarget(target);
      const path = target.git.path;
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        progress.attempt = attempt;
        ctx?.heartbeat(progress);
        const head = await repo.fetch(source.branch);
        const existing = await repo.findChange(head, token);
        if (existing) {
          // an earlier attempt pushed it and its answer was lost
          const { before, after } = await linesOf(repo, target, existing);
          await requestReconcile(source, token, target.context);
          return { commit: existing, token, revision: revisionOf(source.branch, existing), changed: true, attempts: attempt - 1, lines: diffLines(before, after), source: publicSource(source, path) };
        }
        const text = await fileAt(repo, source, head, target);
        const { fields } = locateFields(text, target, path);
        const edits = fields.filter((f) => !holdsWant(f)).map((f) => ({ ...f, next: scalarText(f.want, f.style) }));
        if (edits.length === 0) {
          await requestReconcile(source, token, target.context);
          return { commit: head, token, revision: revisionOf(source.branch, head), changed: false, attempts: attempt - 1, lines: [], source: publicSource(source, path) };
        }
        const lines = edits.map((e) => ({ key: e.key, line: e.line, before: e.text, after: e.next }));
        const commit = await repo.commitFile(head, path, spliceFields(text, edits.map((e) => ({ start: e.start, end: e.end, text: e.next }))), commitMessage(target, source, release, token, lines), workerIdentity());
        await hooks.afterRead?.(attempt, head);
        if ((await repo.push(commit, source.branch)) === 'pushed') {
          await requestReconcile(source, token, target.context);
          return { commit, token, revision: revisionOf(source.branch, commit), changed: true, attempts: attempt, lines, source: publicSource(source, path) };
        }
        await sleep(backoff(attempt), ctx?.cancellationSignal);
      }
      throw ApplicationFailure.create({
        type: GIT_PUSH_CONTENDED,
        message: `${describeTarget(target)} (Git mode): branch ${source.branch} of ${source.url} moved before each of ${MAX_ATTEMPTS} pushes; will try again`,
    });
    });
  } catch (err) {
    throw asFailure(err, target);
  }
}

function diffLines(before: LocatedField[], after: LocatedField[]): ChangedLine[] {
  return after.flatMap((a) => {
    const b = before.find((f) => f.key === a.key);
    return b && !sameValue(b.value, a.value) ? [{ key: a.key, line: a.line, before: b.text, after: a.text }] : [];
  });
}

/** A line someone changed after the release: the value found and the commit that changed it. */
export interface GitConflict {
  key: string;
  found: unknown;
  wrote: unknown;
  before: unknown;
  changedBy: string;
  /** the commit that changed the line after the release's commit */
  commit?: CommitInfo;
}

/**
 * The oldest commit after `ours` (up to `head`) after which the line no longer holds what the
 * release wrote: the one that changed it.
 */
async function culprit(repo: Repository, target: GitTarget, ours: string, head: string, key: string, wrote: unknown): Promise<CommitInfo | undefined> {
  for (const sha of await repo.commitsTouching(ours, head, target.git.path)) {
    const text = await repo.readFile(sha, target.git.path);
    let value: unknown = Symbol('gone');
    if (text !== null) {
      try {
        value = locateFields(text, target, target.git.path).fields.find((f) => f.key === key)?.value;
      } catch {
        // the file no longer parses or the entry is gone: this commit changed it
      }
    }
    if (typeof value === 'symbol' || !sameValue(value, wrote)) return repo.describe(sha);
  }
  return undefined;
}

const describeCommit = (c: CommitInfo) => `commit ${c.sha.slice(0, 12)} by ${c.author} <${c.email}> at ${c.date}: "${c.subject}"`;

/**
 * Undoes the release's commit (found by `token`) with a new commit (trailer `undoToken`), then
 * asks Flux to reconcile (`undoToken`). All or nothing: when a line conflicts, nothing is
 * committed and UndoConflict names each line, the value found and the commit that changed it.
 */
export async function revertChange(
  input: { target: GitTarget; token: string; undoToken: string; release: ReleaseIdentity; reason?: string },
  hooks: { afterRead?: (attempt: number, head: string) => Promise<void> } = {},
): Promise<GitReverted> {
  const { target, token, undoToken, release } = input;
  const ctx = activity();
  const path = target.git.path;
  try {
    return await heartbeating(async (progress) => {
      const { source, repo } = await openTarget(target);
      const done = (r: Omit<GitReverted, 'revision' | 'source' | 'token'>): GitReverted => ({ ...r, token: undoToken, revision: revisionOf(source.branch, r.commit), source: publicSource(source, path) });
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        progress.attempt = attempt;
        ctx?.heartbeat(progress);
        const head = await repo.fetch(source.branch);
        const ours = await repo.findChange(head, token);
        const already = await repo.findChange(head, undoToken);
        if (already) {
          await requestReconcile(source, undoToken, target.context);
          const { before, after } = await linesOf(repo, target, already);
          return done({ commit: already, reverted: ours, restored: [], unchanged: [], attempts: attempt - 1, lines: diffLines(before, after) });
        }
        if (!ours) {
          // the release's commit never reached the branch (or the file already had the values): nothing to undo
          return done({ commit: head, restored: [], unchanged: [], attempts: attempt - 1, lines: [] });
        }
        const { before, after } = await linesOf(repo, target, ours);
        const text = await repo.readFile(head, path);
        const conflicts: GitConflict[] = [];
        const restored: string[] = [];
        const unchanged: string[] = [];
        const edits: Array<{ start: number; end: number; text: string; key: string; line: number; from: string }> = [];
        let current: LocatedField[] | undefined;
        let unreadable: string | undefined;
        if (text === null) unreadable = `${path} was deleted`;
        else {
          try {
            current = locateFields(text, target, path).fields;
          } catch (err) {
            unreadable = (err as Error).message;
          }
        }
        for (const a of after) {
          const b = before.find((f) => f.key === a.key);
          if (!b || sameValue(b.value, a.value)) continue; // a line the release did not change
          const now = current?.find((f) => f.key === a.key);
          if (now && sameValue(now.value, a.value)) {
            edits.push({ start: now.start, end: now.end, text: b.text, key: a.key, line: now.line, from: now.text });
            restored.push(a.key);
          } else if (now && sameValue(now.value, b.value)) {
            unchanged.push(a.key);
          } else {
            const by = await culprit(repo, target, ours, head, a.key, a.value);
            conflicts.push({
              key: `${a.key} in ${path} (branch ${source.branch})`,
              found: now ? now.value : null,
              wrote: a.value,
              before: b.value,
              changedBy: by ? describeCommit(by) : unreadable ? `unknown (${unreadable})` : 'unknown: no later commit on the branch changed it',
              ...(by ? { commit: by } : {}),
            });
          }
        }
        if (conflicts.length) {
          throw ApplicationFailure.create({
            type: UNDO_CONFLICT,
            nonRetryable: true,
            message:
              `not reverted, changed in Git since release ${release.name} committed ${ours.slice(0, 12)}: ` +
              conflicts.map((c) => `${c.key} is ${JSON.stringify(c.found)}, not ${JSON.stringify(c.wrote)} (${c.changedBy})`).join('; ') +
              '; nothing was committed',
            details: [{ conflicts, restored: [], unchanged, reverted: ours }],
          });
        }
        if (edits.length === 0) {
          await requestReconcile(source, undoToken, target.context);
          return done({ commit: head, reverted: ours, restored, unchanged, attempts: attempt - 1, lines: [] });
        }
        const lines = edits.map((e) => ({ key: e.key, line: e.line, before: e.from, after: e.text }));
        const commit = await repo.commitFile(head, path, spliceFields(text!, edits), revertMessage(target, release, undoToken, await repo.describe(ours), lines, input.reason), workerIdentity());
        await hooks.afterRead?.(attempt, head);
        if ((await repo.push(commit, source.branch)) === 'pushed') {
          await requestReconcile(source, undoToken, target.context);
          return done({ commit, reverted: ours, restored, unchanged, attempts: attempt, lines });
        }
        await sleep(backoff(attempt), ctx?.cancellationSignal);
      }
      throw ApplicationFailure.create({ type: GIT_PUSH_CONTENDED, message: `${describeTarget(target)} (Git mode): branch ${source.branch} of ${source.url} moved before each of ${MAX_ATTEMPTS} undo pushes; will try again` });
    });
  } catch (err) {
    throw asFailure(err, target);
  }
}
