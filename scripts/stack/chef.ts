import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { ChefClient } from '../../activities/chef/client.ts';
import { stackDir } from '../lib/paths.ts';
import { freePort } from '../lib/ports.ts';
import { isAlive, startDetached } from '../lib/proc.ts';
import { waitFor } from '../lib/wait.ts';
import type { Service } from './service.ts';

const dir = join(stackDir, 'chef');

export const chef: Service = {
  name: 'chef',
  group: 'chef',
  async start(previous) {
    const binary = '/usr/bin/goiardi';
    if (!existsSync(binary)) throw new Error('goiardi is not installed: run scripts/provision.sh (apt-get install goiardi)');
    const port = await freePort(previous?.http);
    mkdirSync(join(dir, 'files'), { recursive: true });
    const args = [
      '-A', // authentication on: every request must be signed
      '-I', '127.0.0.1',
      // goiardi builds absolute URLs (sandbox upload URLs, cookbook file URLs) from its hostname
      '-H', '127.0.0.1',
      '-P', String(port),
      '--conf-root', dir, // admin.pem is written here on first start and kept afterwards
      // in-memory store frozen to disk, so data (and the admin client's key) survive a restart
      '-D', join(dir, 'data.bin'),
      '-i', join(dir, 'index.bin'),
      '-F', '2',
      // every chef-client run of the fleet simulator leaves a run report (goiardi keeps them in
      // memory and scans them all per reporting query): keep two hours, longer than any local gate
      '--purge-reports-after', '2h',
      '--local-filestore-dir', join(dir, 'files'),
      '-g', 'info',
    ];
    const { pid } = startDetached(binary, args, { logFile: join(dir, 'goiardi.log'), cwd: dir });
    return {
      pid,
      binary,
      ports: { http: port },
      startedAt: new Date().toISOString(),
      env: {
        CHEF_SERVER_URL: `http://127.0.0.1:${port}`,
        CHEF_CLIENT_NAME: 'admin',
        CHEF_CLIENT_KEY: join(dir, 'admin.pem'),
      },
    };
  },
  async ready(rec, timeoutMs) {
    await waitFor(
      `goiardi at ${rec.env.CHEF_SERVER_URL}`,
      async () => {
        const key = createPrivateKey(readFileSync(rec.env.CHEF_CLIENT_KEY!));
        const chef = new ChefClient({ serverUrl: rec.env.CHEF_SERVER_URL!, identity: { clientName: 'admin', key, source: 'stack admin key' } });
        await chef.get('environments/_default', { object: 'environment _default' }); // throws until goiardi answers a signed request
        return true;
      },
      { timeoutMs, alive: () => isAlive(rec.pid) },
    );
  },
};
