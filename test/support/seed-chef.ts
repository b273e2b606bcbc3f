/**
 * Chef test data through goiardi's real API (signed requests): environments, cookbook versions
 * uploaded with the sandbox flow, and nodes that look like chef-client has run on them.
 * Used by tests and the demo; connection defaults come from .stack/env.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chefRequest, type ChefConn } from './chef-minimal-signer.ts';
import { requireEnv } from './env.ts';

/** The admin connection of the local stack (CHEF_SERVER_URL, CHEF_CLIENT_NAME, CHEF_CLIENT_KEY). */
export function chefConnFromEnv(): ChefConn {
  return {
    url: requireEnv('CHEF_SERVER_URL'),
    client: requireEnv('CHEF_CLIENT_NAME'),
    key: readFileSync(requireEnv('CHEF_CLIENT_KEY'), 'utf8'),
  };
}

async function expectOk<T>(what: string, p: Promise<{ status: number; body: T }>, ok: number[] = [200, 201]): Promise<T> {
  const res = await p;
  if (!ok.includes(res.status)) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Creates (or replaces) an environment with the given cookbook constraints. */
export async function createChefEnvironment(
  name: string,
  cookbookVersions: Record<string, string> = {},
  conn: ChefConn = chefConnFromEnv(),
): Promise<void> {
  const env = {
    name,
    description: 'hybrid-release test environment',
    json_class: 'Chef::Environment',
    chef_type: 'environment',
    default_attributes: {},
    override_attributes: {},
    cookbook_versions: cookbookVersions,
  };
  const created = await chefRequest(conn, 'POST', '/environments', { json: env });
  if (created.status === 409) {
    await expectOk(`PUT /environments/${name}`, chefRequest(conn, 'PUT', `/environments/${name}`, { json: env }));
  } else if (created.status !== 201) {
    throw new Error(`POST /environments: HTTP ${created.status} ${JSON.stringify(created.body)}`);
  }
}

export async function deleteChefEnvironment(name: string, conn: ChefConn = chefConnFromEnv()): Promise<void> {
  await expectOk(`DELETE /environments/${name}`, chefRequest(conn, 'DELETE', `/environments/${name}`), [200, 404]);
}

/**
 * Uploads cookbook NAME at VERSION the way knife does: sandbox with the file's checksum, PUT the
 * bytes to the URL goiardi returns, commit the sandbox, then PUT the cookbook version.
 */
export async function uploadCookbookVersion(
  name: string,
  version: string,
  conn: ChefConn = chefConnFromEnv(),
  opts: { dependencies?: Record<string, string> } = {},
): Promise<void> {
  const metadataRb = Buffer.from(`name '${name}'\nversion '${version}'\n`);
  const checksum = createHash('md5').update(metadataRb).digest('hex');
  const sandbox = await expectOk(
    'POST /sandboxes',
    chefRequest<{ sandbox_id: string; checksums: Record<string, { needs_upload: boolean; url?: string }> }>(conn, 'POST', '/sandboxes', {
      json: { checksums: { [checksum]: null } },
    }),
  );
  const entry = sandbox.checksums[checksum];
  if (entry?.needs_upload && entry.url) {
    await expectOk(
      `PUT ${entry.url}`,
      chefRequest(conn, 'PUT', '', { raw: metadataRb, contentType: 'application/x-binary', absoluteUrl: entry.url }),
      [200, 201, 204],
    );
  }
  await expectOk(
    `PUT /sandboxes/${sandbox.sandbox_id}`,
    chefRequest(conn, 'PUT', `/sandboxes/${sandbox.sandbox_id}`, { json: { is_completed: true } }),
  );
  const cookbook = {
    name: `${name}-${version}`,
    cookbook_name: name,
    version,
    json_class: 'Chef::CookbookVersion',
    chef_type: 'cookbook_version',
    'frozen?': false,
    metadata: { name, version, dependencies: opts.dependencies ?? {} },
    root_files: [{ name: 'metadata.rb', path: 'metadata.rb', checksum, specificity: 'default' }],
  };
  await expectOk(`PUT /cookbooks/${name}/${version}`, chefRequest(conn, 'PUT', `/cookbooks/${name}/${version}`, { json: cookbook }));
}

export interface SeedNode {
  name: string;
  environment: string;
  /** cookbook name → version the last chef-client run used */
  cookbooks?: Record<string, string>;
  /** epoch seconds of the last chef-client run; default now */
  ohaiTime?: number;
}

/** Registers (or replaces) a node as a chef-client run would leave it. */
export async function registerChefNode(node: SeedNode, conn: ChefConn = chefConnFromEnv()): Promise<void> {
  const body = {
    name: node.name,
    chef_environment: node.environment,
    json_class: 'Chef::Node',
    chef_type: 'node',
    run_list: Object.keys(node.cookbooks ?? {}).map((cb) => `recipe[${cb}]`),
    normal: {},
    default: {},
    override: {},
    automatic: {
      ohai_time: node.ohaiTime ?? Date.now() / 1000,
      fqdn: `${node.name}.example.test`,
      cookbooks: Object.fromEntries(Object.entries(node.cookbooks ?? {}).map(([cb, version]) => [cb, { version }])),
    },
  };
  const created = await chefRequest(conn, 'POST', '/nodes', { json: body });
  if (created.status === 409) {
    await expectOk(`PUT /nodes/${node.name}`, chefRequest(conn, 'PUT', `/nodes/${node.name}`, { json: body }));
  } else if (created.status !== 201) {
    throw new Error(`POST /nodes: HTTP ${created.status} ${JSON.stringify(created.body)}`);
  }
}

/** Waits until the search index lists `count` nodes in the environment (it lags writes). */
export async function waitForIndexedNodes(environment: string, count: number, conn: ChefConn = chefConnFromEnv(), timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await chefRequest<{ total: number }>(conn, 'GET', `/search/node?q=chef_environment:${encodeURIComponent(environment)}&rows=1000`);
    if (res.status === 200 && res.body.total >= count) return;
    if (Date.now() > deadline) throw new Error(`search lists ${res.body?.total ?? '?'} of ${count} nodes in ${environment} after ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
