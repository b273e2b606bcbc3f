/**
 * Chef credentials by reference. The release spec (and so the workflow history) only ever holds
 * where a key is; the key itself is read here, inside the activity, and kept as a KeyObject that
 * never reaches inputs, results, logs or error messages.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { parse as parseToml } from 'smol-toml';
import { kubeClients } from '../kube/clients.ts';
import { kubeCall } from '../kube/errors.ts';
import type { ChefIdentity } from './client.ts';

/** Mirrors release-spec/schema.ts; declared here so activities do not load the spec's zod schema. */
export type ChefCredentialsRef =
  | { keyFile: string; clientName: string }
  | { profile: string; credentialsFile?: string }
  | { secret: { name: string; namespace: string; context?: string } };

export const CHEF_CREDENTIALS = 'ChefCredentials';

export interface ResolvedCredentials extends ChefIdentity {
  /** chef_server_url of a knife profile, when it has one */
  profileServerUrl?: string;
}

/** How long a resolved key is reused before it is read again (so a rotated Secret or file is picked up). */
const CACHE_TTL_MS = 5 * 60_000;
const cache = new Map<string, { at: number; creds: Promise<ResolvedCredentials> }>();

const cacheKey = (ref: ChefCredentialsRef) => JSON.stringify(ref);

/** "key file /etc/chef/deployer.pem", "knife profile prod in ~/.chef/credentials", "Secret chef/deployer" */
export function describeCredentials(ref: ChefCredentialsRef): string {
  if ('keyFile' in ref) return `key file ${ref.keyFile}`;
  if ('profile' in ref) return `knife profile "${ref.profile}" in ${ref.credentialsFile ?? '~/.chef/credentials'}`;
  if ('secret' in ref) {
    return `Secret ${ref.secret.namespace}/${ref.secret.name}${ref.secret.context ? ` (kube context ${ref.secret.context})` : ''}`;
  }
  return 'an unknown credentials reference';
}

const invalid = (message: string) => ApplicationFailure.create({ type: CHEF_CREDENTIALS, nonRetryable: true, message });

/** Parses PEM text into a KeyObject; the error never quotes the text. */
function parseKey(pem: string | Buffer, source: string): KeyObject {
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
    return key;
  } catch {
    throw invalid(`Chef credentials from ${source}: the key is not a PEM-encoded RSA private key (Chef client keys are RSA)`);
  }
}

async function readKeyFile(path: string, source: string): Promise<KeyObject> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw invalid(
      `Chef credentials from ${source}: cannot read key file ${path} (${code ?? 'error'}): ` +
        'mount or copy the client key there on every worker, or use a knife profile or a Kubernetes Secret',
    );
  }
  return parseKey(pem, source);
}

const expandHome = (p: string) => (p === '~' || p.startsWith('~/') ? homedir() + p.slice(1) : p);

async function fromKnifeProfile(profile: string, credentialsFile: string | undefined, source: string): Promise<ResolvedCredentials> {
  const file = resolve(expandHome(credentialsFile ?? '~/.chef/credentials'));
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw invalid(`Chef credentials from ${source}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    // smol-toml's message quotes the offending line, which may be key material: give only the position
    const line = (err as { line?: number }).line;
    throw invalid(`Chef credentials from ${source}: ${file} is not valid TOML${line ? ` (line ${line})` : ''}`);
  }
  const section = doc[profile];
  if (!section || typeof section !== 'object') {
    const known = Object.keys(doc).filter((k) => typeof doc[k] === 'object');
    throw invalid(`Chef credentials from ${source}: no profile [${profile}] in ${file} (profiles there: ${known.join(', ') || 'none'})`);
  }
  const s = section as Record<string, unknown>;
  // chef-config accepts node_name as the older spelling of client_name
  const clientName = s.client_name ?? s.node_name;
  if (typeof clientName !== 'string' || !clientName) {
    throw invalid(`Chef credentials from ${source}: profile [${profile}] in ${file} has no client_name`);
  }
  const clientKey = s.client_key;
  if (typeof clientKey !== 'string' || !clientKey) {
    throw invalid(`Chef credentials from ${source}: profile [${profile}] in ${file} has no client_key`);
  }
  // as in chef-config: client_key is either the PEM itself or a path, relative paths from the credentials file's directory
  const key = clientKey.trimStart().startsWith('-----BEGIN')
    ? parseKey(clientKey, source)
    : await readKeyFile(resolve(dirname(file), expandHome(clientKey)), source);
  const url = s.chef_server_url;
  return { clientName, key, source, ...(typeof url === 'string' && url ? { profileServerUrl: url } : {}) };
}

async function fromSecret(ref: { name: string; namespace: string; context?: string }, source: string): Promise<ResolvedCredentials> {
  let clients;
  try {
    clients = kubeClients(ref.context);
  } catch (err) {
    throw invalid(`Chef credentials from ${source}: ${(err as Error).message}`);
  }
  const secret = await kubeCall(
    { verb: 'get', resource: 'secrets', namespace: ref.namespace, name: ref.name, context: clients.context },
    () => clients.core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace }),
  );
  const field = (k: string) => {
    const v = secret.data?.[k];
    return v === undefined ? (secret.stringData?.[k] ?? undefined) : Buffer.from(v, 'base64').toString('utf8');
  };
  // client_name/client_key as knife names them, or api_user/api_key as the old operator stored them
  const pairs: [string, string][] = [['client_name', 'client_key'], ['api_user', 'api_key']];
  for (const [nameKey, keyKey] of pairs) {
    const clientName = field(nameKey)?.trim();
    const pem = field(keyKey);
    if (clientName && pem) return { clientName, key: parseKey(pem, source), source };
  }
  const present = Object.keys(secret.data ?? {}).sort().join(', ') || 'none';
  throw invalid(
    `Chef credentials from ${source}: the Secret needs the keys client_name and client_key (or api_user and api_key); it has: ${present}`,
  );
}

async function load(ref: ChefCredentialsRef): Promise<ResolvedCredentials> {
  const source = describeCredentials(ref);
  if ('keyFile' in ref) {
    if (!ref.clientName) throw invalid(`Chef credentials from ${source}: clientName is missing (the Chef client the key belongs to)`);
    return { clientName: ref.clientName, key: await readKeyFile(resolve(expandHome(ref.keyFile)), source), source };
  }
  if ('profile' in ref) return fromKnifeProfile(ref.profile, ref.credentialsFile, source);
  if ('secret' in ref) return fromSecret(ref.secret, source);
  throw invalid('Chef credentials: give exactly one of keyFile (+ clientName), profile, or secret');
}

/** Resolves a reference, reusing a recent result for the same reference. */
export function resolveCredentials(ref: ChefCredentialsRef): Promise<ResolvedCredentials> {
  const k = cacheKey(ref);
  const hit = cache.get(k);
  if (hit && Date.now() - hit.at < CACHE_TTL_MS) return hit.creds;
  const creds = load(ref);
  cache.set(k, { at: Date.now(), creds });
  // a failed read is not cached: the next attempt reads again
  creds.catch(() => {
    if (cache.get(k)?.creds === creds) cache.delete(k);
  });
  return creds;
}

/** Drops a cached key, e.g. after the server rejected it, so a retry reads a rotated key. */
export function forgetCredentials(ref: ChefCredentialsRef): void {
  cache.delete(cacheKey(ref));
}
