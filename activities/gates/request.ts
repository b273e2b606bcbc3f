import type { Readable } from 'node:stream';

/**
 * Small pieces shared by everything here that makes an HTTP request (probe, Prometheus, webhooks):
 * one deadline per request, a capped body read, and transport errors said plainly.
 */

/** The request's own timeout, plus the activity's cancellation when there is one. */
export function requestSignal(timeoutMs: number, cancel?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return cancel ? AbortSignal.any([cancel, timeout]) : timeout;
}

const PLAIN: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed (temporary)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'response body stalled',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS: self-signed certificate (set caFile, or insecureSkipVerify)',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS: self-signed certificate in chain (set caFile)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS: certificate not signed by a trusted CA (set caFile)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'TLS: certificate issuer unknown (set caFile)',
  CERT_HAS_EXPIRED: 'TLS: certificate has expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS: certificate does not match the host name',
};

/** One line for a failed request: "connection refused (ECONNREFUSED 127.0.0.1:9)", "no response within 2s". */
export function describeRequestError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return `no response within ${formatMs(timeoutMs)}`;
  const code = e?.code ?? e?.cause?.code;
  const message = firstLine(e?.cause?.message ?? e?.message ?? String(err));
  const plain = code ? PLAIN[code] : undefined;
  if (plain) return `${plain} (${message})`;
  return message;
}

export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

const firstLine = (s: string) => s.split('\n')[0] ?? s;

/** Reads at most `max` bytes; a health endpoint answering megabytes is itself worth reporting. */
export async function readCapped(body: Readable, max: number): Promise<{ text: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (size + buf.length > max) {
      chunks.push(buf.subarray(0, max - size));
      body.destroy();
      return { text: Buffer.concat(chunks).toString('utf8'), truncated: true };
    }
    chunks.push(buf);
    size += buf.length;
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated: false };
}

/** A URL for display: no credentials, no query string (where tokens tend to live). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
