/**
 * Running the `git` binary for the Git-mode activities.
 *
 * Why the binary and not a library: git itself is the reference implementation of the smart-HTTP
 * protocol every Git host speaks, and of the object format; it handles packfiles, thin packs,
 * protocol v2, proxies and TLS the way the host expects, and it is what people use to check what
 * the release did. JavaScript ports (isomorphic-git) re-implement the protocol and lag behind it
 * (no protocol v2 negotiation, partial shallow/filter support, no SSH). The worker needs only a
 * handful of plumbing commands (fetch, cat-file, hash-object, read-tree, update-index, write-tree,
 * commit-tree, push, log, rev-list, merge-base), all stable, scriptable interfaces with
 * machine-readable output (`--porcelain`, `--format`). The worker image installs git (Dockerfile).
 *
 * Every call is isolated from the machine's git configuration (no system or global config, so
 * no credential helper stores anything and no hook or alias applies), may use only the http and
 * https transports, never prompts, and has a timeout. Credentials travel as an HTTP header in the
 * child's environment (GIT_CONFIG_* variables), scoped to the repository's URL, never on a command
 * line (which other users can see) and never in the repository's config.
 */
import { spawn } from 'node:child_process';

/** Push/fetch credentials for one repository URL (HTTP basic auth: user name and password or token). */
export interface GitAuth {
  url: string;
  username: string;
  password: string;
}

export interface GitRunOptions {
  /** the repository (a bare repository for the worker's cache) */
  cwd: string;
  auth?: GitAuth;
  /** written to stdin */
  input?: string;
  /** default 60 s; network commands get the caller's choice */
  timeoutMs?: number;
  signal?: AbortSignal;
  env?: Record<string, string>;
  /** exit codes that are answers, not failures (e.g. 1 for `merge-base --is-ancestor`) */
  okCodes?: number[];
}

export class GitCommandError extends Error {
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly stdout: string;
  readonly timedOut: boolean;
  constructor(message: string, exitCode: number | null, stdout: string, stderr: string, timedOut: boolean) {
    super(message);
    this.name = 'GitCommandError';
    this.exitCode = exitCode;
    this.stdout = stdout;
    this.stderr = stderr;
    this.timedOut = timedOut;
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;

/** `http://user:pass@host/x` → `http://***@host/x`; and every secret value → `***`. */
export function redactGit(text: string, secrets: string[] = []): string {
  let out = text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1***@');
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

/** The URL prefix an HTTP header is scoped to: scheme, host and port (git matches config URLs by prefix). */
function urlScope(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}/`;
}

function configEnv(auth: GitAuth | undefined): Record<string, string> {
  const entries: Array<[string, string]> = [
    // a redirect could carry the header elsewhere, and hosts a release pushes to do not need one
    ['http.followRedirects', 'false'],
    ['core.hooksPath', '/dev/null'],
    ['advice.detachedHead', 'false'],
  ];
  if (auth) {
    const basic = Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
    entries.push([`http.${urlScope(auth.url)}.extraHeader`, `Authorization: Basic ${basic}`]);
  }
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(entries.length) };
  entries.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return env;
}

/**
 * Runs `git args…`; resolves with stdout/stderr, or rejects with GitCommandError whose message
 * names the command and git's own words (credentials and URL user info redacted).
 */
export function git(args: string[], opts: GitRunOptions): Promise<{ stdout: string; stderr: string; code: number }> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const secrets = opts.auth ? [opts.auth.password, Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')] : [];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/nonexistent',
    LC_ALL: 'C',
    LANG: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '/bin/false',
    SSH_ASKPASS: '/bin/false',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ALLOW_PROTOCOL: 'http:https',
    ...configEnv(opts.auth),
    ...opts.env,
  };
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const kill = () => child.kill('SIGKILL');
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    opts.signal?.addEventListener('abort', kill, { once: true });
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    const done = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', kill);
    };
    child.once('error', (err) => {
      done();
      reject(new GitCommandError(`git ${args[0]}: cannot run git: ${err.message} (is git installed on the worker?)`, null, '', '', false));
    });
    child.once('close', (code) => {
      done();
      if (code === 0 || (code !== null && opts.okCodes?.includes(code))) return resolve({ stdout, stderr, code });
      const why = timedOut ? `timed out after ${Math.round(timeoutMs / 1000)}s` : opts.signal?.aborted ? 'cancelled' : `exit ${code}`;
      const words = redactGit(stderr.trim().split('\n').filter(Boolean).slice(-3).join(' / '), secrets);
      reject(new GitCommandError(`git ${args[0]} ${why}${words ? `: ${words}` : ''}`, code, stdout, redactGit(stderr, secrets), timedOut));
    });
  });
}
