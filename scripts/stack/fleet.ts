import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, stackDir } from '../lib/paths.ts';
import { freePort } from '../lib/ports.ts';
import { isAlive, startDetached } from '../lib/proc.ts';
import { fetchQuick, waitFor } from '../lib/wait.ts';
import type { Service } from './service.ts';

const dir = join(stackDir, 'fleet');

/**
 * The Chef fleet simulator (scripts/fleet/): simulated nodes that run chef-client against the
 * stack's goiardi, each as its own Chef client. Started empty (or with the nodes of its last run,
 * see nodes.json); `npm run stack -- nodes …` drives it. See docs/stack.md, "The Chef fleet".
 */
export const fleet: Service = {
  name: 'fleet',
  group: 'chef',
  stale(rec, state) {
    // it signs against goiardi's address: a goiardi on another port means a new fleet process
    return rec.ports.chef !== state.chef?.ports.http;
  },
  async start(previous, state) {
    const chef = state.chef;
    if (!chef) throw new Error('goiardi (chef) must start before the fleet simulator');
    const port = await freePort(previous?.http);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const binary = process.execPath;
    const args = [
      join(repoRoot, 'scripts', 'fleet', 'main.ts'),
      '--port', String(port),
      '--chef-url', chef.env.CHEF_SERVER_URL!,
      '--admin-name', chef.env.CHEF_CLIENT_NAME!,
      '--admin-key', chef.env.CHEF_CLIENT_KEY!,
      '--dir', dir,
    ];
    const { pid } = startDetached(binary, args, { logFile: join(dir, 'fleet.log') });
    return {
      pid,
      binary,
      ports: { http: port, chef: chef.ports.http! },
      startedAt: new Date().toISOString(),
      env: { FLEET_URL: `http://127.0.0.1:${port}` },
    };
  },
  async ready(rec, timeoutMs) {
    await waitFor(`fleet simulator at ${rec.env.FLEET_URL}`, async () => (await fetchQuick(`${rec.env.FLEET_URL}/healthz`)).ok, { timeoutMs, alive: () => isAlive(rec.pid) });
  },
};
