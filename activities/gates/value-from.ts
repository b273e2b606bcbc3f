import { readFile } from 'node:fs/promises';
import { activityScope } from '../../policy/enforce.ts';
import { kubeClients } from '../kube/clients.ts';
import type { ValueFrom } from './types.ts';

/**
 * Why a reference could not be read. `transient` separates "try again later" (the API server is
 * unreachable) from "this will not fix itself" (the variable is not set, the key is missing).
 * Messages name the reference, never a value.
 */
export class ValueFromError extends Error {
  readonly transient: boolean;
  constructor(message: string, transient: boolean) {
    super(message);
    this.name = 'ValueFromError';
    this.transient = transient;
  }
}

/** "env PROBE_TOKEN", "file /etc/x", "secret ns/name key token" — safe to show and log. */
export function describeValueFrom(ref: ValueFrom): string {
  if ('env' in ref) return `env ${ref.env}`;
  if ('file' in ref) return `file ${ref.file}`;
  const s = ref.secret;
  return `secret ${s.namespace}/${s.name} key ${s.key}${s.context ? ` (context ${s.context})` : ''}`;
}

// Files and Secrets made with `echo x > file` / `kubectl create secret --from-file` usually end in a
// newline that would make an invalid header or URL; one trailing line break is never meant.
const firstLine = (s: string) => s.split('\n')[0] ?? s;

const chompNewline = (s: string) => s.replace(/\r?\n$/, '');

/** Reads the value now (no caching, so a rotated Secret or file is picked up on the next check). */
export async function resolveValueFrom(ref: ValueFrom): Promise<string> {
  // the worker's policy lists the references each app may read; its own credentials never are
  const refused = activityScope()?.reference(ref);
  if (refused) throw new ValueFromError(`refused by the worker's policy: ${refused}`, false);
  if ('env' in ref) {
    const value = process.env[ref.env];
    if (value === undefined || value === '') {
      throw new ValueFromError(`environment variable ${ref.env} is not set on the worker`, false);
    }
    return value;
  }
  if ('file' in ref) {
    try {
      return chompNewline(await readFile(ref.file, 'utf8'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new ValueFromError(`cannot read file ${ref.file} (${code})`, false);
    }
  }
  const { name, namespace, key, context } = ref.secret;
  const where = `Secret ${namespace}/${name}`;
  let core: ReturnType<typeof kubeClients>['core'];
  try {
    core = kubeClients(context).core;
  } catch (err) {
    // no kubeconfig, or a context this worker does not have: a worker setup problem, not a blip
    throw new ValueFromError(`cannot read ${where}: ${firstLine((err as Error).message ?? String(err))}`, false);
  }
  let data: Record<string, string> | undefined;
  try {
    const secret = await core.readNamespacedSecret({ name, namespace });
    data = secret.data;
  } catch (err) {
    // ApiException messages carry the response body; only the status code is worth repeating.
    const code = (err as { code?: unknown }).code;
    if (code === 404) throw new ValueFromError(`${where} not found`, false);
    if (code === 401 || code === 403) throw new ValueFromError(`not allowed to read ${where} (HTTP ${code})`, false);
    const what = typeof code === 'number' ? `HTTP ${code}` : firstLine((err as Error).message ?? String(err));
    throw new ValueFromError(`cannot read ${where}: ${what}`, true);
  }
  const encoded = data?.[key];
  if (encoded === undefined) throw new ValueFromError(`${where} has no key ${key}`, false);
  return chompNewline(Buffer.from(encoded, 'base64').toString('utf8'));
}

/**
 * Replaces every secret value in a text with "***": error messages from lower layers (undici,
 * sockets) are quoted in gate reasons and logs, and must not carry a header value or webhook URL.
 */
export function redact(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const s of secrets) {
    if (s.length >= 4) out = out.split(s).join('***');
  }
  return out;
}
