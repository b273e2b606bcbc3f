/**
 * The worker's copy of a Git repository a release commits to: one bare repository per URL in a
 * cache directory (HR_GIT_CACHE_DIR, default <tmp>/hybrid-release-git-<uid>), fetched before
 * every decision, never with a work tree. Commits are made with plumbing (a temporary index per
 * commit), so concurrent activities of one worker never share a checkout, and the only shared
 * state, the remote-tracking ref, is written under a per-repository lock.
 *
 * Failures are classified for the activities: a transport problem (host unreachable, timeout,
 * 5xx) is retryable; credentials refused, a repository or branch that does not exist, or a push
 * the server refuses for its own reasons (a protected branch, a hook) are not, and say so.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { git, GitCommandError, redactGit, type GitAuth } from './cli.ts';

/** The trailer that ties a commit to one change of one release (idempotency and undo). */
export const CHANGE_TRAILER = 'Hybrid-Release-Change';

export type GitFailureKind = 'auth' | 'not-found' | 'refused' | 'transient';

/** A git failure with what it means for retrying. */
export class GitFailure extends Error {
  readonly kind: GitFailureKind;
  constructor(kind: GitFailureKind, message: string) {
    super(message);
    this.name = 'GitFailure';
    this.kind = kind;
  }
}

export function classify(err: unknown, what: string): GitFailure {
  if (err instanceof GitFailure) return err;
  const e = err as GitCommandError;
  const text = `${e.stderr ?? ''} ${e.message ?? ''}`;
  if (e.timedOut) return new GitFailure('transient', `${what}: ${e.message}`);
  if (/HTTP 40[13]|Authentication failed|could not read (Username|Password)|terminal prompts disabled|The requested URL returned error: 40[13]/i.test(text)) {
    return new GitFailure('auth', `${what}: the Git server refused the credentials (${e.message}); check git.credentials and that the token may push`);
  }
  if (/HTTP 404|returned error: 404|repository .* not found|does not appear to be a git repository|couldn't find remote ref/i.test(text)) {
    return new GitFailure('not-found', `${what}: ${e.message}`);
  }
  return new GitFailure('transient', `${what}: ${e.message}`);
}

const cacheRoot = () => process.env.HR_GIT_CACHE_DIR ?? join(tmpdir(), `hybrid-release-git-${process.getuid?.() ?? 'user'}`);

/** One lock per repository directory in this process: fetches write the remote-tracking ref. */
const locks = new Map<string, Promise<unknown>>();
async function locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = locks.get(key) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(fn);
  locks.set(key, next);
  try {
    return await next;
  } finally {
    if (locks.get(key) === next) locks.delete(key);
  }
}

export interface CommitInfo {
  sha: string;
  author: string;
  email: string;
  date: string;
  subject: string;
}

export interface Identity {
  name: string;
  email: string;
}

export class Repository {
  readonly url: string;
  readonly dir: string;
  private readonly auth: GitAuth | undefined;
  private readonly signal: AbortSignal | undefined;

  private constructor(url: string, dir: string, auth: GitAuth | undefined, signal: AbortSignal | undefined) {
    this.url = url;
    this.dir = dir;
    this.auth = auth;
    this.signal = signal;
  }

  /** The cached bare repository for `url`, created on first use. */
  static async open(url: string, opts: { auth?: GitAuth; signal?: AbortSignal } = {}): Promise<Repository> {
    const dir = join(cacheRoot(), createHash('sha256').update(url).digest('hex').slice(0, 24) + '.git');
    await locked(dir, async () => {
      if (existsSync(join(dir, 'HEAD'))) return;
      mkdirSync(dir, { recursive: true });
      await git(['init', '--quiet', '--bare', dir], { cwd: cacheRoot() });
    });
    return new Repository(url, dir, opts.auth, opts.signal);
  }

  private run(args: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number; okCodes?: number[]; network?: boolean } = {}) {
    return git(args, { cwd: this.dir, signal: this.signal, input: opts.input, env: opts.env, timeoutMs: opts.timeoutMs, okCodes: opts.okCodes, auth: opts.network ? this.auth : undefined });
  }

  /** Where the branch is on the server now; brings its history into the cache. */
  async fetch(branch: string): Promise<string> {
    const ref = `refs/remotes/origin/${branch}`;
    return locked(this.dir, async () => {
      try {
        await this.run(['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', this.url, `+refs/heads/${branch}:${ref}`], { timeoutMs: 120_000, network: true });
      } catch (err) {
        const f = classify(err, `fetching branch ${branch} of ${redactGit(this.url)}`);
        if (f.kind === 'not-found') throw new GitFailure('not-found', `branch ${branch} of ${redactGit(this.url)} does not exist (or the repository does not): ${f.message}`);
        throw f;
      }
      return (await this.run(['rev-parse', '--verify', `${ref}^{commit}`])).stdout.trim();
    });
  }

  /** Checks that the credentials may push, without changing anything (the server asks for them before it lists refs). */
  async checkPush(branch: string, head: string): Promise<void> {
    try {
      await this.run(['push', '--dry-run', '--porcelain', this.url, `${head}:refs/heads/${branch}`], { timeoutMs: 60_000, network: true });
    } catch (err) {
      throw classify(err, `checking push access to ${redactGit(this.url)}`);
    }
  }

  /** The file's text at a commit, or null when the commit has no such file. */
  async readFile(commit: string, path: string): Promise<string | null> {
    const r = await this.run(['cat-file', '-p', `${commit}:${path}`], { okCodes: [128] });
    return r.code === 0 ? r.stdout : null;
  }

  /** A new commit on top of `parent` in which only `path` changed to `content`. */
  async commitFile(parent: string, path: string, content: string, message: string, who: Identity): Promise<string> {
    const entry = (await this.run(['ls-tree', parent, '--', path])).stdout.trim();
    const mode = /^(100644|100755) blob /.exec(entry)?.[1];
    if (!mode) throw new GitFailure('refused', `${path} is not a regular file in commit ${parent.slice(0, 12)}`);
    const blob = (await this.run(['hash-object', '-w', '--stdin'], { input: content })).stdout.trim();
    const index = join(this.dir, `hr-index-${randomUUID()}`);
    try {
      const env = { GIT_INDEX_FILE: index };
      await this.run(['read-tree', parent], { env });
      await this.run(['update-index', '--cacheinfo', `${mode},${blob},${path}`], { env });
      const tree = (await this.run(['write-tree'], { env })).stdout.trim();
      const ident = { GIT_AUTHOR_NAME: who.name, GIT_AUTHOR_EMAIL: who.email, GIT_COMMITTER_NAME: who.name, GIT_COMMITTER_EMAIL: who.email };
      return (await this.run(['commit-tree', tree, '-p', parent, '-F', '-'], { input: message, env: ident })).stdout.trim();
    } finally {
      rmSync(index, { force: true });
    }
  }

  /**
   * Pushes `commit` to the branch as a plain fast-forward (never forced). The server accepts it
   * only while the branch still points at the commit's parent, so this is the compare-and-swap:
   * 'moved' means someone pushed in between and the caller starts again from the new head.
   */
  async push(commit: string, branch: string): Promise<'pushed' | 'moved'> {
    const dst = `refs/heads/${branch}`;
    let out: { stdout: string; stderr: string };
    try {
      out = await this.run(['push', '--porcelain', this.url, `${commit}:${dst}`], { timeoutMs: 120_000, network: true, okCodes: [1] });
    } catch (err) {
      throw classify(err, `pushing to branch ${branch} of ${redactGit(this.url)}`);
    }
    // porcelain: "<flag>\t<src>:<dst>\t<summary>" per ref; "!" rejected
    const line = out.stdout.split('\n').find((l) => l.includes(`:${dst}\t`));
    if (line && !line.startsWith('!')) return 'pushed';
    const summary = line?.split('\t')[2] ?? redactGit(out.stderr.trim());
    if (/\b(fetch first|non-fast-forward|stale info)\b/.test(summary)) return 'moved';
    throw new GitFailure('refused', `the Git server refused the push to branch ${branch} of ${redactGit(this.url)}: ${summary}${out.stderr.trim() ? ` (${redactGit(out.stderr.trim().split('\n').slice(-2).join(' / '))})` : ''}`);
  }

  /** The newest commit reachable from `head` whose change trailer is exactly `token`. */
  async findChange(head: string, token: string): Promise<string | undefined> {
    const out = (
      await this.run(['log', '-z', '--fixed-strings', `--grep=${CHANGE_TRAILER}: ${token}`, `--format=%H%x01%(trailers:key=${CHANGE_TRAILER},valueonly,separator=%x02)`, head])
    ).stdout;
    for (const rec of out.split('\0')) {
      const [sha, values] = rec.split('\x01');
      if (sha && values !== undefined && values.split('\x02').map((v) => v.trim()).includes(token)) return sha.trim();
    }
    return undefined;
  }

  /** Whether `ancestor` is `descendant` or in its history (false when either is unknown here). */
  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    const r = await this.run(['merge-base', '--is-ancestor', ancestor, descendant], { okCodes: [1, 128] });
    return r.code === 0;
  }

  async hasCommit(sha: string): Promise<boolean> {
    return (await this.run(['cat-file', '-e', `${sha}^{commit}`], { okCodes: [1, 128] })).code === 0;
  }

  /** The commits after `from` up to `to` that touch `path`, oldest first. */
  async commitsTouching(from: string, to: string, path: string): Promise<string[]> {
    const out = (await this.run(['rev-list', '--reverse', `${from}..${to}`, '--', path])).stdout;
    return out.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  async describe(sha: string): Promise<CommitInfo> {
    const [s, author, email, date, subject] = (await this.run(['show', '-s', '--format=%H%x00%an%x00%ae%x00%aI%x00%s', sha])).stdout.trimEnd().split('\0');
    return { sha: s!, author: author!, email: email!, date: date!, subject: subject! };
  }

  async parent(sha: string): Promise<string> {
    return (await this.run(['rev-parse', '--verify', `${sha}^1`])).stdout.trim();
  }
}
