import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, stackDir } from '../lib/paths.ts';
import { freePort } from '../lib/ports.ts';
import { isAlive, startDetached } from '../lib/proc.ts';
import { fetchQuick, waitFor } from '../lib/wait.ts';
import type { Service } from './service.ts';

const dir = join(stackDir, 'sources');
const PUSH_USER = 'hybrid-release';

/**
 * The source server (scripts/source-server.ts): Git over smart HTTP through git-http-backend
 * (clone, fetch, push) and a static Helm chart repository. Both clusters' source-controllers
 * fetch from it, as they would from a Git host and a chart repository outside the cluster.
 */
export const sources: Service = {
  name: 'source-server',
  group: 'sources',
  async start(previous) {
    const port = await freePort(previous?.http);
    mkdirSync(dir, { recursive: true });
    // who may push (HTTP basic auth), made once and kept, so an env sourced earlier stays valid
    const credentials = join(dir, 'push-credentials');
    if (!existsSync(credentials)) writeFileSync(credentials, `${PUSH_USER}:${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
    const passwordFile = join(dir, 'push-password');
    writeFileSync(passwordFile, `${readFileSync(credentials, 'utf8').split('\n')[0]!.slice(PUSH_USER.length + 1)}\n`, { mode: 0o600 });
    const binary = process.execPath;
    const { pid } = startDetached(binary, [join(repoRoot, 'scripts', 'source-server.ts'), '--port', String(port), '--root', dir, '--push-credentials', credentials], {
      logFile: join(dir, 'source-server.log'),
    });
    return {
      pid,
      binary,
      ports: { http: port },
      startedAt: new Date().toISOString(),
      env: {
        // clone / push: $HR_GIT_URL/<name>.git ; GitRepository spec.url the same
        HR_GIT_URL: `http://127.0.0.1:${port}/git`,
        // a HelmRepository's spec.url: $HR_HELM_REPO_URL/<repo>/ ; PUT <repo>/<chart>-<version>.tgz publishes
        HR_HELM_REPO_URL: `http://127.0.0.1:${port}/charts`,
        // pushing needs HTTP basic auth: this user and the password in this file (fetching needs none)
        HR_GIT_PUSH_USER: PUSH_USER,
        HR_GIT_PUSH_PASSWORD_FILE: passwordFile,
      },
    };
  },
  async ready(rec, timeoutMs) {
    await waitFor(`source server at http://127.0.0.1:${rec.ports.http}`, async () => (await fetchQuick(`http://127.0.0.1:${rec.ports.http}/healthz`)).ok, {
      timeoutMs,
      alive: () => isAlive(rec.pid),
    });
  },
};
