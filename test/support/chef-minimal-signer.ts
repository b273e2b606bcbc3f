/**
 * A deliberately minimal Chef request signer (protocol 1.1, SHA-1) for the stack's readiness
 * check, the smoke tests and the seeding helpers. It exists so those do not depend on the real
 * client in activities/chef/ while that is being written; it is not used by the product.
 */
import { createHash, privateEncrypt, constants, type KeyObject } from 'node:crypto';

const sha1b64 = (data: string | Buffer): string => createHash('sha1').update(data).digest('base64');

export interface SignInput {
  method: string;
  /** URL path only; the query string is not part of what Chef hashes */
  path: string;
  body?: string | Buffer;
  userId: string;
  key: string | KeyObject;
  timestamp?: Date;
}

export function chefHeaders11(input: SignInput): Record<string, string> {
  const ts = (input.timestamp ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const path = input.path.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');
  const contentHash = sha1b64(input.body ?? '');
  const canonical = [
    `Method:${input.method.toUpperCase()}`,
    `Hashed Path:${sha1b64(path)}`,
    `X-Ops-Content-Hash:${contentHash}`,
    `X-Ops-Timestamp:${ts}`,
    `X-Ops-UserId:${sha1b64(input.userId)}`,
  ].join('\n');
  const sig = privateEncrypt({ key: input.key, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(canonical))
    .toString('base64');
  const headers: Record<string, string> = {
    'X-Ops-Sign': 'algorithm=sha1;version=1.1;',
    'X-Ops-Userid': input.userId,
    'X-Ops-Timestamp': ts,
    'X-Ops-Content-Hash': contentHash,
    'X-Chef-Version': '18.0.0',
    'X-Ops-Server-API-Version': '1',
    Accept: 'application/json',
  };
  sig.match(/.{1,60}/g)!.forEach((line, i) => {
    headers[`X-Ops-Authorization-${i + 1}`] = line;
  });
  return headers;
}

export interface ChefConn {
  url: string;
  client: string;
  key: string | KeyObject;
}

export interface ChefResponse<T = unknown> {
  status: number;
  body: T;
}

/** One signed request; JSON in and out unless `raw` is given (cookbook file uploads). */
export async function chefRequest<T = any>(
  conn: ChefConn,
  method: string,
  pathAndQuery: string,
  opts: { json?: unknown; raw?: Buffer; contentType?: string; absoluteUrl?: string } = {},
): Promise<ChefResponse<T>> {
  const url = new URL(opts.absoluteUrl ?? conn.url.replace(/\/$/, '') + pathAndQuery);
  const body = opts.raw ?? (opts.json === undefined ? undefined : JSON.stringify(opts.json));
  const headers = chefHeaders11({ method, path: url.pathname, body: body ?? '', userId: conn.client, key: conn.key });
  if (body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/json';
  const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body: parsed as T };
}
