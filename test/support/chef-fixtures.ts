/**
 * Test data for the Chef tests and benchmarks, written with the project's own client: environments
 * and cookbook versions (uploaded through a sandbox, as knife does). Nodes are not test data: they
 * are the fleet simulator's (fleetApi), saved by its chef-client runs.
 */
import { createHash, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ChefClient, seg } from '../../activities/chef/client.ts';
import type { ChefTarget } from '../../activities/chef/index.ts';
import { FleetApi } from '../../scripts/fleet/api.ts';
import { requireEnv, uniqueName } from './env.ts';

export interface ChefServerEnv {
  serverUrl: string;
  clientName: string;
  keyFile: string;
}

/** The stack's goiardi (CHEF_SERVER_URL, CHEF_CLIENT_NAME, CHEF_CLIENT_KEY = key file path). */
export function chefServerEnv(): ChefServerEnv {
  return { serverUrl: requireEnv('CHEF_SERVER_URL'), clientName: requireEnv('CHEF_CLIENT_NAME'), keyFile: requireEnv('CHEF_CLIENT_KEY') };
}

export function adminClient(env = chefServerEnv()): ChefClient {
  return new ChefClient({
    serverUrl: env.serverUrl,
    identity: { clientName: env.clientName, key: createPrivateKey(readFileSync(env.keyFile)), source: `key file ${env.keyFile}` },
  });
}

export function targetFor(env: ChefServerEnv, environment: string, cookbooks: Record<string, string>): ChefTarget {
  return { id: environment, serverUrl: env.serverUrl, environment, cookbooks, credentials: { keyFile: env.keyFile, clientName: env.clientName } };
}

/** Runs fn over items with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export async function createEnvironment(client: ChefClient, name: string, cookbookVersions: Record<string, string> = {}): Promise<void> {
  await client.post('environments', {
    object: `environment ${name}`,
    body: {
      name,
      description: 'hybrid-release test',
      json_class: 'Chef::Environment',
      chef_type: 'environment',
      default_attributes: { keep: { me: 'as is' } },
      override_attributes: { also: ['kept'] },
      cookbook_versions: cookbookVersions,
    },
  });
}

export async function deleteEnvironment(client: ChefClient, name: string): Promise<void> {
  await client.delete(`environments/${seg(name)}`, { object: `environment ${name}` }).catch(() => undefined);
}

export interface CookbookContent {
  /**
   * recipes/default.rb; default: one harmless resource. A recipe with `raise "message"` is how a
   * cookbook version marks itself failing for the fleet simulator (scripts/fleet/recipes.ts).
   */
  recipe?: string;
  /** more recipes: name -> content (recipes/NAME.rb) */
  recipes?: Record<string, string>;
  /** metadata dependencies: cookbook -> constraint; one nothing satisfies makes the depsolver answer 412 */
  dependencies?: Record<string, string>;
}

/** Uploads one cookbook version (metadata.rb and its recipes) through a sandbox, like `knife cookbook upload`. */
export async function uploadCookbook(client: ChefClient, name: string, version: string, content: CookbookContent = {}): Promise<void> {
  const deps = content.dependencies ?? {};
  const metadata = [`name "${name}"`, `version "${version}"`, ...Object.entries(deps).map(([d, c]) => `depends "${d}", "${c}"`)].join('\n') + '\n';
  const files = [
    { segment: 'root_files', name: 'metadata.rb', path: 'metadata.rb', bytes: Buffer.from(metadata, 'utf8') },
    ...Object.entries({ default: content.recipe ?? `log "${name} ${version} converged"\n`, ...content.recipes }).map(([r, text]) => ({
      segment: 'recipes',
      name: `${r}.rb`,
      path: `recipes/${r}.rb`,
      bytes: Buffer.from(text, 'utf8'),
    })),
  ].map((f) => ({ ...f, md5: createHash('md5').update(f.bytes).digest('hex') }));
  const sandbox = await client.post<{ sandbox_id: string; checksums: Record<string, { url?: string; needs_upload: boolean }> }>('sandboxes', {
    object: `sandbox for cookbook ${name} ${version}`,
    body: { checksums: Object.fromEntries(files.map((f) => [f.md5, null])) },
  });
  for (const f of files) {
    const slot = sandbox.checksums[f.md5];
    if (slot?.needs_upload && slot.url) {
      // the server builds the URL from its own host name; only the path is ours to use
      await client.put(new URL(slot.url).pathname, { object: `file ${f.path} of cookbook ${name} ${version}`, raw: { bytes: f.bytes, contentType: 'application/x-binary' } });
    }
  }
  await client.put(`sandboxes/${seg(sandbox.sandbox_id)}`, { object: `sandbox ${sandbox.sandbox_id}`, body: { is_completed: true } });
  const body: Record<string, unknown> = {
    name: `${name}-${version}`,
    cookbook_name: name,
    version,
    json_class: 'Chef::CookbookVersion',
    chef_type: 'cookbook_version',
    'frozen?': false,
    metadata: { name, version, dependencies: deps, recipes: Object.fromEntries(files.filter((f) => f.segment === 'recipes').map((f) => [`${name}::${f.name.slice(0, -3)}`, ''])) },
  };
  for (const f of files) ((body[f.segment] ??= []) as unknown[]).push({ name: f.name, path: f.path, checksum: f.md5, specificity: 'default' });
  await client.put(`cookbooks/${seg(name)}/${seg(version)}`, { object: `cookbook ${name} ${version}`, body });
}

/**
 * The stack's fleet simulator (FLEET_URL). Node objects come only from its simulated chef-client
 * runs: tests never write them.
 */
export function fleetApi(): FleetApi {
  return new FleetApi(requireEnv('FLEET_URL'));
}

/** Polls until the node search sees `count` nodes in the environment (the index may lag writes). */
export async function waitForIndexed(client: ChefClient, environment: string, count: number, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let seen = 0;
    for (let start = 0; ; start += 1000) {
      const page = await client.get<{ rows: unknown[] }>('search/node', {
        object: 'node search',
        query: { q: `chef_environment:${environment}`, rows: 1000, start },
      });
      seen += page.rows.length;
      if (page.rows.length < 1000) break;
    }
    if (seen >= count) return;
    if (Date.now() > deadline) throw new Error(`search index shows ${seen} of ${count} nodes in ${environment} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export { uniqueName };
