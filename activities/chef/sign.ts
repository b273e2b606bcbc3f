/**
 * Chef request signing (mixlib-authentication's X-Ops-Sign), protocols 1.0, 1.1 and 1.3.
 * No maintained JavaScript implementation exists, so this is checked byte for byte against the
 * published known-answer vectors (test/unit/chef-sign.test.ts).
 */
import { createHash, privateEncrypt, sign as rsaSign, constants, type KeyObject } from 'node:crypto';

export type SignProtocol = '1.0' | '1.1' | '1.3';

export interface SignInput {
  method: string;
  /** URL path; a query string, if present, is dropped (servers hash the path without it) */
  path: string;
  /** exact bytes that go on the wire; empty for GET/DELETE */
  body?: string | Uint8Array;
  userId: string;
  /** UTC ISO-8601 without fraction; defaults to now */
  timestamp?: string;
  /** the X-Ops-Server-API-Version header sent with the request; part of the 1.3 canonical string */
  serverApiVersion?: string;
  protocol: SignProtocol;
  key: KeyObject;
}

export const SIGN_HEADER: Record<SignProtocol, string> = {
  '1.0': 'algorithm=sha1;version=1.0;',
  '1.1': 'algorithm=sha1;version=1.1;',
  '1.3': 'algorithm=sha256;version=1.3;',
};

const b64 = (alg: 'sha1' | 'sha256', data: string | Uint8Array) => createHash(alg).update(data).digest('base64');

/** Path as the server hashes it: no query or fragment, repeated "/" collapsed, no trailing "/" (except "/"). */
export function canonicalPath(path: string): string {
  const bare = path.replace(/[?#].*$/s, '').replace(/\/+/g, '/');
  return bare.length > 1 ? bare.replace(/\/$/, '') : bare || '/';
}

/** Chef's timestamp format: second precision, "Z". */
export function chefTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The string that is signed, exactly as the server rebuilds it. */
export function canonicalRequest(input: Omit<SignInput, 'key'> & { timestamp: string }): string {
  const method = input.method.toUpperCase();
  const path = canonicalPath(input.path);
  const body = input.body ?? '';
  if (input.protocol === '1.3') {
    return [
      `Method:${method}`,
      `Path:${path}`,
      `X-Ops-Content-Hash:${b64('sha256', body)}`,
      `X-Ops-Sign:version=1.3`,
      `X-Ops-Timestamp:${input.timestamp}`,
      `X-Ops-UserId:${input.userId}`,
      `X-Ops-Server-API-Version:${input.serverApiVersion ?? '0'}`,
    ].join('\n');
  }
  return [
    `Method:${method}`,
    `Hashed Path:${b64('sha1', path)}`,
    `X-Ops-Content-Hash:${b64('sha1', body)}`,
    `X-Ops-Timestamp:${input.timestamp}`,
    `X-Ops-UserId:${input.protocol === '1.1' ? b64('sha1', input.userId) : input.userId}`,
  ].join('\n');
}

/** Base64 signature of the canonical request. */
export function signature(input: SignInput & { timestamp: string }): string {
  const canonical = Buffer.from(canonicalRequest(input), 'utf8');
  // 1.0/1.1 are a raw PKCS#1 v1.5 type-1 "private encrypt" of the canonical string (no DigestInfo),
  // which is what Ruby's OpenSSL private_encrypt did; 1.3 is a standard RSASSA-PKCS1-v1_5/SHA-256.
  const raw =
    input.protocol === '1.3'
      ? rsaSign('sha256', canonical, input.key)
      : privateEncrypt({ key: input.key, padding: constants.RSA_PKCS1_PADDING }, canonical);
  return raw.toString('base64');
}

/** The authentication headers for one request (X-Ops-Server-API-Version is the caller's to send). */
export function signRequest(input: SignInput): Record<string, string> {
  const timestamp = input.timestamp ?? chefTimestamp();
  const sig = signature({ ...input, timestamp });
  const headers: Record<string, string> = {
    'X-Ops-Sign': SIGN_HEADER[input.protocol],
    'X-Ops-Userid': input.userId,
    'X-Ops-Timestamp': timestamp,
    'X-Ops-Content-Hash': b64(input.protocol === '1.3' ? 'sha256' : 'sha1', input.body ?? ''),
  };
  for (let i = 0; i * 60 < sig.length; i++) headers[`X-Ops-Authorization-${i + 1}`] = sig.slice(i * 60, i * 60 + 60);
  return headers;
}
