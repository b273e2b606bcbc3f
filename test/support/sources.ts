/**
 * The stack's source server from the outside, the way a developer or CI would use a Git host and
 * a chart repository: commits pushed with the git CLI over smart HTTP, charts packed with tar and
 * uploaded. Addresses come from .stack/env (HR_GIT_URL, HR_HELM_REPO_URL).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { requireEnv } from './env.ts';

const run = promisify(execFile);

/**
 * The stack's Git server wants HTTP basic auth for pushes (HR_GIT_PUSH_USER and the password in
 * HR_GIT_PUSH_PASSWORD_FILE); given to git as a header in its environment, never on a command line.
 */
export function pushAuthEnv(author?: { name: string; email: string }): NodeJS.ProcessEnv {
  const user = requireEnv('HR_GIT_PUSH_USER');
  const password = readFileSync(requireEnv('HR_GIT_PUSH_PASSWORD_FILE'), 'utf8').trim();
  return {
    ...process.env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${new URL(requireEnv('HR_GIT_URL')).origin}/.extraHeader`,
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
    ...(author ? { GIT_AUTHOR_NAME: author.name, GIT_AUTHOR_EMAIL: author.email, GIT_COMMITTER_NAME: author.name, GIT_COMMITTER_EMAIL: author.email } : {}),
  };
}

const git = (cwd: string, ...args: string[]) =>
  run('git', ['-c', 'user.name=hybrid-release tests', '-c', 'user.email=tests@hybrid-release.invalid', '-c', 'init.defaultBranch=main', ...args], { cwd, timeout: 60_000, env: pushAuthEnv() });

/** The clone URL of a repository on the stack's Git server (created by the first push). */
export function gitRepoUrl(repo: string): string {
  return `${requireEnv('HR_GIT_URL')}/${repo}.git`;
}

/**
 * Commits `files` (path -> content; null deletes the file) to branch main of `repo` and pushes.
 * The repository is created by the first push. Returns the commit's sha, as source-controller
 * reports it in a revision `main@sha1:<sha>`.
 */
export async function commitFiles(repo: string, files: Record<string, string | null>, message: string, author?: { name: string; email: string }): Promise<string> {
  return commitEdit(repo, () => files, message, author);
}

/**
 * Commits to branch main of `repo` what `edit` makes of the current files (it gets a reader of the
 * checkout; returns path -> content, null deletes) and pushes, as a person with `author` would;
 * starts again from the new head when someone pushed in between. Returns the commit's sha.
 */
export async function commitEdit(
  repo: string,
  edit: (read: (path: string) => string | null) => Record<string, string | null>,
  message: string,
  author?: { name: string; email: string },
): Promise<string> {
  const url = gitRepoUrl(repo);
  for (let attempt = 1; ; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'hr-git-'));
    try {
      const exists = await run('git', ['ls-remote', '--exit-code', '--heads', url, 'main'], { timeout: 30_000 }).then(
        () => true,
        () => false,
      );
      if (exists) await git(dir, 'clone', '--quiet', url, '.');
      else {
        await git(dir, 'init', '--quiet');
        await git(dir, 'remote', 'add', 'origin', url);
      }
      const files = edit((path) => {
        try {
          return readFileSync(join(dir, path), 'utf8');
        } catch {
          return null;
        }
      });
      for (const [path, content] of Object.entries(files)) {
        const file = join(dir, path);
        if (content === null) rmSync(file, { force: true });
        else {
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, content);
        }
      }
      await git(dir, 'add', '--all');
      await run('git', ['-c', 'user.name=hybrid-release tests', '-c', 'user.email=tests@hybrid-release.invalid', 'commit', '--quiet', '--allow-empty', '-m', message], { cwd: dir, timeout: 60_000, env: pushAuthEnv(author) });
      try {
        await git(dir, 'push', '--quiet', 'origin', 'HEAD:main');
      } catch (err) {
        // someone pushed in between: start again from their commit
        if (attempt < 5) continue;
        throw err;
      }
      return (await git(dir, 'rev-parse', 'HEAD')).stdout.trim();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** A file of `repo` at `ref` (default main) as the Git server has it, or null when absent. */
export async function readRepoFile(repo: string, path: string, ref = 'main'): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), 'hr-git-'));
  try {
    await git(dir, 'init', '--quiet');
    await git(dir, 'fetch', '--quiet', gitRepoUrl(repo), `${ref}:refs/remotes/origin/x`);
    return await run('git', ['show', `refs/remotes/origin/x:${path}`], { cwd: dir, timeout: 30_000 }).then((r) => r.stdout, () => null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The commits of branch main of `repo`, newest first: sha, author, subject and full message. */
export async function repoLog(repo: string, ref = 'main'): Promise<Array<{ sha: string; author: string; subject: string; message: string; parents: string[] }>> {
  const dir = mkdtempSync(join(tmpdir(), 'hr-git-'));
  try {
    await git(dir, 'init', '--quiet');
    await git(dir, 'fetch', '--quiet', gitRepoUrl(repo), `${ref}:refs/remotes/origin/x`);
    const out = (await run('git', ['log', '-z', '--format=%H%x01%P%x01%an <%ae>%x01%s%x01%B', 'refs/remotes/origin/x'], { cwd: dir, timeout: 30_000 })).stdout;
    return out.split('\0').filter(Boolean).map((rec) => {
      const [sha, parents, author, subject, message] = rec.split('\x01');
      return { sha: sha!.trim(), parents: parents!.split(' ').filter(Boolean), author: author!, subject: subject!, message: message! };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The sample chart that test/fixtures/charts/web holds. */
export const SAMPLE_CHART = new URL('../fixtures/charts/web', import.meta.url).pathname;

/**
 * Packs a chart directory (Chart.yaml's version set to `version`) with tar and publishes it to
 * chart repository `repo` of the stack's Helm repository, which rewrites its index.yaml.
 * Returns the repository URL for a HelmRepository's spec.url.
 */
export async function publishChart(repo: string, opts: { chartDir?: string; version?: string } = {}): Promise<string> {
  const chartDir = opts.chartDir ?? SAMPLE_CHART;
  const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as { name: string; version: string };
  const version = opts.version ?? chart.version;
  const work = mkdtempSync(join(tmpdir(), 'hr-chart-'));
  try {
    // the archive's top-level directory must be the chart's name
    cpSync(chartDir, join(work, chart.name), { recursive: true });
    writeFileSync(join(work, chart.name, 'Chart.yaml'), stringify({ ...chart, version }));
    const archive = join(work, `${chart.name}-${version}.tgz`);
    await run('tar', ['-C', work, '-czf', archive, chart.name]);
    const base = `${requireEnv('HR_HELM_REPO_URL')}/${repo}`;
    const res = await fetch(`${base}/${chart.name}-${version}.tgz`, { method: 'PUT', body: readFileSync(archive), signal: AbortSignal.timeout(30_000) });
    if (res.status !== 201) throw new Error(`publishing ${chart.name}-${version} to ${base}: HTTP ${res.status} ${await res.text()}`);
    return `${base}/`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
