import { existsSync, mkdirSync } from 'node:fs';
import { join, delimiter } from 'node:path';
import { Connection } from '@temporalio/client';
import { cachedBinaries, stackDir } from '../lib/paths.ts';
import { freePort } from '../lib/ports.ts';
import { isAlive, startDetached } from '../lib/proc.ts';
import { fetchQuick, waitFor } from '../lib/wait.ts';
import type { Service } from './service.ts';

/** The workflow's custom search attributes (all Keyword) — registered at every start. */
export const searchAttributes = ['HrRelease', 'HrApp', 'HrPhase', 'HrImageTag', 'HrCookbookConstraint'];
const namespace = 'default';

/** A `temporal` on PATH wins (someone's own install); otherwise the one provision.sh built. */
export function temporalBinary(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'temporal');
    if (dir && existsSync(candidate)) return candidate;
  }
  if (existsSync(cachedBinaries.temporal)) return cachedBinaries.temporal;
  throw new Error(
    `Temporal CLI not found on PATH nor at ${cachedBinaries.temporal}: run scripts/provision.sh`,
  );
}

export const temporal: Service = {
  name: 'temporal',
  group: 'temporal',
  async start(previous) {
    const binary = temporalBinary();
    const grpc = await freePort(previous?.grpc);
    const ui = await freePort(previous?.ui);
    const http = await freePort(previous?.http);
    const metrics = await freePort(previous?.metrics);
    const dir = join(stackDir, 'temporal');
    mkdirSync(dir, { recursive: true });
    const args = [
      'server', 'start-dev',
      '--ip', '127.0.0.1',
      '--port', String(grpc),
      '--ui-port', String(ui),
      '--http-port', String(http),
      '--metrics-port', String(metrics),
      // the state file keeps workflows across a dev-server restart (restart tests rely on it)
      '--db-filename', join(stackDir, 'temporal.db'),
      '--namespace', namespace,
      '--log-level', 'warn',
      ...searchAttributes.flatMap((a) => ['--search-attribute', `${a}=Keyword`]),
    ];
    const { pid } = startDetached(binary, args, { logFile: join(dir, 'server.log'), cwd: dir });
    return {
      pid,
      binary,
      ports: { grpc, ui, http, metrics },
      startedAt: new Date().toISOString(),
      env: {
        TEMPORAL_ADDRESS: `127.0.0.1:${grpc}`,
        TEMPORAL_NAMESPACE: namespace,
        TEMPORAL_UI_URL: `http://127.0.0.1:${ui}`,
      },
    };
  },
  async ready(rec, timeoutMs) {
    const address = rec.env.TEMPORAL_ADDRESS!;
    await waitFor(
      `temporal at ${address}`,
      async () => {
        const conn = await Connection.connect({ address, connectTimeout: 2000 });
        try {
          // answering means: the namespace exists and our search attributes are registered
          const res = await conn.operatorService.listSearchAttributes({ namespace });
          const missing = searchAttributes.filter((a) => !(a in (res.customAttributes ?? {})));
          if (missing.length) throw new Error(`search attributes missing: ${missing.join(', ')}`);
          return true;
        } finally {
          await conn.close();
        }
      },
      { timeoutMs, intervalMs: 500, alive: () => isAlive(rec.pid) },
    );
    await waitFor(`temporal UI at ${rec.env.TEMPORAL_UI_URL}`, async () => (await fetchQuick(rec.env.TEMPORAL_UI_URL!)).ok, {
      timeoutMs,
      alive: () => isAlive(rec.pid),
    });
  },
};
