/**
 * A small Chef Infra Server API client: signed JSON requests over undici, one connection pool per
 * server origin shared by every activity in the worker, and failures turned into Temporal
 * ApplicationFailures that say whether a retry can help and what a person should do.
 */
import type { KeyObject } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { Pool } from 'undici';
import { chefTimestamp, signRequest, type SignProtocol } from './sign.ts';

/** Failure types the workflow can match on. */
export const CHEF_AUTH = 'ChefAuth';
export const CHEF_FORBIDDEN = 'ChefForbidden';
export const CHEF_NOT_FOUND = 'ChefNotFound';
export const CHEF_BAD_REQUEST = 'ChefBadRequest';
export const CHEF_NOT_ALLOWED = 'ChefNotAllowed';
export const CHEF_CONFLICT = 'ChefConflict';
export const CHEF_UNAVAILABLE = 'ChefUnavailable';

/** Who signs the requests. `key` is a KeyObject, never PEM text, so it cannot be logged or serialised by accident. */
export interface ChefIdentity {
  clientName: string;
  key: KeyObject;
  /** where the key came from, for messages ("key file /etc/chef/deployer.pem") — never the key */
  source: string;
}

export interface ChefClientOptions {
  /** knife's chef_server_url: https://host[:port][/organizations/ORG] */
  serverUrl: string;
  identity: ChefIdentity;
  /** signing protocol; 1.1 is what chef-client uses by default and what every server accepts */
  protocol?: SignProtocol;
  /** whole-request deadline (connect + headers + body) */
  timeoutMs?: number;
  /** X-Ops-Server-API-Version; 1 keeps the classic object shapes on every server version */
  serverApiVersion?: string;
  /** the clock requests are signed with (X-Ops-Timestamp); default the machine's. A simulated node passes its own, possibly skewed, clock */
  clock?: () => Date;
}

export interface RequestOptions {
  query?: Record<string, string | number>;
  /** JSON body */
  body?: unknown;
  /** raw body (file uploads) with its content type */
  raw?: { bytes: Uint8Array; contentType: string };
  /** what the request is about, for messages: "environment production" */
  object: string;
  /** what to do when the object does not exist */
  notFoundHint?: string;
  /** extra request headers, e.g. X-Ops-Reporting-Protocol-Version for the reporting API */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** the chef-client version requests announce (X-Chef-Version) */
export const CHEF_VERSION = '18.5.0';
const DEFAULT_TIMEOUT_MS = 30_000;

const pools = new Map<string, Pool>();

function poolFor(origin: string): Pool {
  let pool = pools.get(origin);
  if (!pool || pool.closed || pool.destroyed) {
    pool = new Pool(origin, {
      connections: 16,
      connectTimeout: 10_000,
      keepAliveTimeout: 30_000,
      // the per-request AbortSignal enforces the real deadline; these only catch a stalled socket
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
    pools.set(origin, pool);
  }
  return pool;
}

/** Closes every pool (tests and benchmarks, so the process can exit). */
export async function closeChefPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.close().catch(() => undefined)));
}

/** The "error" field of a Chef error body: an array of strings on every server, a string on some paths. */
function serverSays(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: unknown; error_messages?: unknown };
    const e = body.error ?? body.error_messages;
    // goiardi's depsolver answers 412 with an array of objects ({message, non_existent_cookbooks, …})
    if (Array.isArray(e)) return e.map((x) => (x && typeof x === 'object' ? describeErrorObject(x as Record<string, unknown>) : String(x))).join('; ');
    if (typeof e === 'string') return e;
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}

function describeErrorObject(x: Record<string, unknown>): string {
  const message = typeof x.message === 'string' ? x.message : '';
  const rest = Object.entries(x).filter(([k, v]) => k !== 'message' && !(Array.isArray(v) && v.length === 0) && v !== '' && v != null);
  const extra = rest.map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');
  return message && extra ? `${message} (${extra})` : message || extra;
}

export class ChefClient {
  readonly serverUrl: string;
  readonly origin: string;
  /** "" or "/organizations/ORG" */
  readonly basePath: string;
  readonly protocol: SignProtocol;
  readonly identity: ChefIdentity;
  readonly timeoutMs: number;
  readonly serverApiVersion: string;
  readonly clock: () => Date;

  constructor(options: ChefClientOptions) {
    let url: URL;
    try {
      url = new URL(options.serverUrl);
    } catch {
      throw ApplicationFailure.create({
        type: CHEF_BAD_REQUEST,
        nonRetryable: true,
        message: `Chef server URL ${JSON.stringify(options.serverUrl)} is not a URL: give knife's chef_server_url, e.g. https://chef.example.com/organizations/acme`,
      });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw ApplicationFailure.create({
        type: CHEF_BAD_REQUEST,
        nonRetryable: true,
        message: `Chef server URL ${options.serverUrl} must be http or https`,
      });
    }
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.serverUrl = this.origin + this.basePath;
    this.identity = options.identity;
    this.protocol = options.protocol ?? '1.1';
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.serverApiVersion = options.serverApiVersion ?? '1';
    this.clock = options.clock ?? (() => new Date());
  }

  get<T>(path: string, options: RequestOptions): Promise<T> {
    return this.request<T>('GET', path, options);
  }
  put<T>(path: string, options: RequestOptions): Promise<T> {
    return this.request<T>('PUT', path, options);
  }
  post<T>(path: string, options: RequestOptions): Promise<T> {
    return this.request<T>('POST', path, options);
  }
  delete<T>(path: string, options: RequestOptions): Promise<T> {
    return this.request<T>('DELETE', path, options);
  }

  /**
   * `path` relative to the server URL ("environments/prod", under /organizations/ORG when the URL
   * has it), or absolute on the origin when it starts with "/" (URLs the server hands out, such as
   * sandbox upload locations).
   */
  async request<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const { status, bytes } = await this.send(method, path, options);
    const text = bytes.toString('utf8');
    if (status >= 200 && status < 300) {
      if (!text) return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw ApplicationFailure.create({
          type: CHEF_UNAVAILABLE,
          nonRetryable: false,
          message: `Chef server ${this.serverUrl}: ${method} ${options.object} answered ${status} with a body that is not JSON (a proxy in the way?): ${text.slice(0, 200)}`,
        });
      }
    }
    throw this.statusFailure(method, options, status, serverSays(text));
  }

  /** GET of a body that is not JSON (a cookbook file from the server's file store), as bytes. */
  async getBytes(path: string, options: RequestOptions): Promise<Buffer> {
    const { status, bytes } = await this.send('GET', path, options);
    if (status >= 200 && status < 300) return bytes;
    throw this.statusFailure('GET', options, status, serverSays(bytes.toString('utf8')));
  }

  private async send(method: string, path: string, options: RequestOptions): Promise<{ status: number; bytes: Buffer }> {
    const fullPath = path.startsWith('/') ? path : `${this.basePath}/${path}`;
    const query = options.query
      ? '?' + new URLSearchParams(Object.entries(options.query).map(([k, v]): [string, string] => [k, String(v)])).toString()
      : '';
    const body: Uint8Array | undefined = options.raw
      ? options.raw.bytes
      : options.body === undefined
        ? undefined
        : Buffer.from(JSON.stringify(options.body), 'utf8');

    const headers: Record<string, string> = {
      Accept: 'application/json',
      'X-Chef-Version': CHEF_VERSION,
      'X-Ops-Server-API-Version': this.serverApiVersion,
      ...options.headers,
      ...signRequest({
        method,
        path: fullPath,
        body: body ?? '',
        userId: this.identity.clientName,
        protocol: this.protocol,
        key: this.identity.key,
        serverApiVersion: this.serverApiVersion,
        timestamp: chefTimestamp(this.clock()),
      }),
    };
    if (body) headers['Content-Type'] = options.raw?.contentType ?? 'application/json';

    const deadline = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    try {
      const res = await poolFor(this.origin).request({ method, path: fullPath + query, headers, body, signal });
      return { status: res.statusCode, bytes: Buffer.from(await res.body.arrayBuffer()) };
    } catch (err) {
      // the activity was cancelled: let Temporal see the cancellation, not a server failure
      if (options.signal?.aborted) throw err;
      throw this.transportFailure(method, options.object, err, deadline.aborted);
    }
  }

  private transportFailure(method: string, object: string, err: unknown, timedOut: boolean): ApplicationFailure {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    const code = e.cause?.code ?? e.code;
    const detail = timedOut
      ? `no answer within ${this.timeoutMs >= 1000 ? `${Math.round(this.timeoutMs / 1000)}s` : `${this.timeoutMs}ms`}`
      : `${code ?? 'connection error'}${e.message ? ` (${e.message})` : ''}`;
    return ApplicationFailure.create({
      type: CHEF_UNAVAILABLE,
      nonRetryable: false,
      message: `Chef server ${this.serverUrl} unreachable: ${method} ${object} failed: ${detail}. Check serverUrl and that the server is up; the request will be retried`,
    });
  }

  private statusFailure(method: string, options: RequestOptions, status: number, says: string): ApplicationFailure {
    const where = `Chef server ${this.serverUrl}: ${method} ${options.object}`;
    const client = `client "${this.identity.clientName}" (credentials from ${this.identity.source})`;
    const fail = (type: string, nonRetryable: boolean, todo: string) =>
      ApplicationFailure.create({
        type,
        nonRetryable,
        message: `${where} failed with ${status}${says ? ` (${says})` : ''}: ${todo}`,
        details: [{ server: this.serverUrl, method, object: options.object, status }],
      });
    switch (status) {
      case 401:
        return fail(
          CHEF_AUTH,
          true,
          `the server did not accept ${client}. The key does not match the client's public key on the server, the client does not exist there, ` +
            `or this machine's clock is more than 15 minutes off` +
            (this.protocol === '1.3' ? '; servers without SHA-256 signing (Chef Server 11 and older) need protocol "1.1"' : '') +
            '. Fix the credentials reference or re-key the client',
        );
      case 403:
        return fail(CHEF_FORBIDDEN, true, `${client} is not permitted to do this: grant it the permission (e.g. via the admins group or the object's ACL) or use a client that has it`);
      case 404:
        return fail(CHEF_NOT_FOUND, true, options.notFoundHint ?? `it does not exist: check the name and the server URL (Chef Infra Server needs /organizations/ORG in it)`);
      case 405:
        return fail(CHEF_NOT_ALLOWED, true, `the server does not allow ${method} here`);
      case 406:
        return fail(CHEF_BAD_REQUEST, true, `the server does not accept X-Ops-Server-API-Version ${this.serverApiVersion}`);
      case 409:
        return fail(CHEF_CONFLICT, false, 'it conflicts with a concurrent change; the request will be retried');
      case 400:
      case 413:
      case 415:
        return fail(CHEF_BAD_REQUEST, true, 'the server rejected the request as invalid; fix the value it names');
      default:
        if (status >= 500 || status === 429 || status === 408) {
          return fail(CHEF_UNAVAILABLE, false, 'the server is failing or overloaded; the request will be retried');
        }
        return fail(CHEF_BAD_REQUEST, true, 'unexpected answer from the server');
    }
  }
}

/** A path segment, escaped. */
/** One URL path segment; "." and ".." would move the path, so they are never a name. */
export const seg = (s: string) => {
  if (s === '.' || s === '..' || s === '') throw ApplicationFailure.create({ type: 'ChefBadRequest', nonRetryable: true, message: `${JSON.stringify(s)} is not a Chef object name` });
  return encodeURIComponent(s);
};
