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
const git = (cwd: string, ...args: string[]) =>
  run('git', ['-c', 'user.name=hybrid-release tests', '-c', 'user.email=tests@hybrid-release.invalid', '-c', 'init.defaultBranch=main', ...args], { cwd, timeout: 60_000 });

/** The clone URL of a repository on the stack's Git server (created by the first push). */
export function gitRepoUrl(repo: string): string {
  return `${requireEnv('HR_GIT_URL')}/${repo}.git`;
}

/**
 * Commits `files` (path -> content; null deletes the file) to branch main of `repo` and pushes.
 * The repository is created by the first push. Returns the commit's sha, as source-controller
 * reports it in a revision `main@sha1:<sha>`.
 */
export async function commitFiles(repo: string, files: Record<string, string | null>, message: string): Promise<string> {
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
      for (const [path, content] of Object.entries(files)) {
        const file = join(dir, path);
        if (content === null) rmSync(file, { force: true });
        else {
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, content);
        }
      }
      await git(dir, 'add', '--all');
      await git(dir, 'commit', '--quiet', '--allow-empty', '-m', message);
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
