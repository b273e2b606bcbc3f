/**
 * SSH signatures (the SSHSIG format of OpenSSH's PROTOCOL.sshsig, as `ssh-keygen -Y sign` writes
 * them), verified with Node's crypto against OpenSSH public keys. Keys: ssh-ed25519,
 * ecdsa-sha2-nistp256/384/521 and ssh-rsa (signatures rsa-sha2-256/512; SHA-1 `ssh-rsa`
 * signatures are refused, as OpenSSH does). FIDO keys (sk-*) are not supported.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

const MAGIC = Buffer.from('SSHSIG');

/** Reads SSH wire-format fields (RFC 4251). */
class Reader {
  private at = 0;
  private readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  u32(): number {
    if (this.at + 4 > this.buf.length) throw new Error('truncated');
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    if (this.at + n > this.buf.length) throw new Error('truncated');
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  string(): string {
    return this.bytes().toString('utf8');
  }
  raw(n: number): Buffer {
    if (this.at + n > this.buf.length) throw new Error('truncated');
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  get done(): boolean {
    return this.at === this.buf.length;
  }
}

const sshString = (b: Buffer | string) => {
  const data = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
};

const b64url = (b: Buffer) => b.toString('base64url');
/** An SSH mpint as unsigned big-endian bytes (leading zero dropped). */
const unsigned = (b: Buffer) => (b.length > 1 && b[0] === 0 ? b.subarray(1) : b);

const CURVES: Record<string, { crv: string; size: number; hash: string }> = {
  nistp256: { crv: 'P-256', size: 32, hash: 'sha256' },
  nistp384: { crv: 'P-384', size: 48, hash: 'sha384' },
  nistp521: { crv: 'P-521', size: 66, hash: 'sha512' },
};

export interface SshPublicKey {
  type: string;
  /** the key in SSH wire format (what authorized_keys base64-encodes) */
  blob: Buffer;
  key: KeyObject;
  /** SHA256:… as ssh-keygen -l prints it */
  fingerprint: string;
  comment?: string;
}

export const fingerprintOf = (blob: Buffer) => `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;

function keyFromBlob(blob: Buffer): { type: string; key: KeyObject } {
  const r = new Reader(blob);
  const type = r.string();
  if (type === 'ssh-ed25519') {
    const pk = r.bytes();
    if (pk.length !== 32) throw new Error('ed25519 key of the wrong length');
    return { type, key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pk) }, format: 'jwk' }) };
  }
  if (type === 'ssh-rsa') {
    const e = unsigned(r.bytes());
    const n = unsigned(r.bytes());
    if (n.length * 8 < 2048) throw new Error('RSA keys need at least 2048 bits');
    return { type, key: createPublicKey({ key: { kty: 'RSA', e: b64url(e), n: b64url(n) }, format: 'jwk' }) };
  }
  const ec = /^ecdsa-sha2-(nistp256|nistp384|nistp521)$/.exec(type);
  if (ec) {
    const curve = CURVES[ec[1]!]!;
    if (r.string() !== ec[1]) throw new Error('ECDSA key names another curve');
    const q = r.bytes();
    if (q[0] !== 4 || q.length !== 1 + 2 * curve.size) throw new Error('ECDSA key is not an uncompressed point');
    const x = q.subarray(1, 1 + curve.size);
    const y = q.subarray(1 + curve.size);
    return { type, key: createPublicKey({ key: { kty: 'EC', crv: curve.crv, x: b64url(x), y: b64url(y) }, format: 'jwk' }) };
  }
  throw new Error(`key type ${type} is not supported (use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa)`);
}

/** Parses one authorized_keys line: `ssh-ed25519 AAAA… comment`. */
export function parsePublicKey(line: string): SshPublicKey {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) throw new Error(`${JSON.stringify(line.slice(0, 40))} is not an OpenSSH public key (type base64 [comment])`);
  const blob = Buffer.from(parts[1]!, 'base64');
  let parsed;
  try {
    parsed = keyFromBlob(blob);
  } catch (err) {
    throw new Error(`not a usable OpenSSH public key: ${(err as Error).message}`);
  }
  if (parsed.type !== parts[0]) throw new Error(`public key says ${parts[0]} but holds a ${parsed.type} key`);
  return { ...parsed, blob, fingerprint: fingerprintOf(blob), ...(parts[2] ? { comment: parts.slice(2).join(' ') } : {}) };
}

export interface ParsedSignature {
  publicKey: Buffer;
  namespace: string;
  hashAlgorithm: 'sha256' | 'sha512';
  sigType: string;
  signature: Buffer;
}

/** Parses the armored `-----BEGIN SSH SIGNATURE-----` text. */
export function parseSignature(armored: string): ParsedSignature {
  const m = /-----BEGIN SSH SIGNATURE-----([\s\S]*?)-----END SSH SIGNATURE-----/.exec(armored);
  if (!m) throw new Error('not an SSH signature (-----BEGIN SSH SIGNATURE-----)');
  const blob = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  if (!blob.subarray(0, 6).equals(MAGIC)) throw new Error('not an SSHSIG blob');
  const r = new Reader(blob.subarray(6));
  const version = r.u32();
  if (version !== 1) throw new Error(`SSHSIG version ${version} is not supported`);
  const publicKey = r.bytes();
  const namespace = r.string();
  r.bytes(); // reserved
  const hashAlgorithm = r.string();
  if (hashAlgorithm !== 'sha256' && hashAlgorithm !== 'sha512') throw new Error(`hash algorithm ${hashAlgorithm} is not supported`);
  const sig = new Reader(r.bytes());
  if (!r.done) throw new Error('trailing data after the signature');
  const sigType = sig.string();
  const signature = sig.bytes();
  return { publicKey, namespace, hashAlgorithm, sigType, signature };
}

/** The bytes SSHSIG signs for a message. */
function signedData(namespace: string, hashAlgorithm: string, message: Buffer): Buffer {
  const digest = createHash(hashAlgorithm).update(message).digest();
  return Buffer.concat([MAGIC, sshString(namespace), sshString(''), sshString(hashAlgorithm), sshString(digest)]);
}

/**
 * Verifies an SSHSIG over `message` in `namespace`, made by `key`. Returns false for a signature
 * that does not verify; throws for one that cannot be read at all.
 */
export function verifySignature(sig: ParsedSignature, key: SshPublicKey, namespace: string, message: string | Buffer): boolean {
  if (sig.namespace !== namespace) return false;
  if (!sig.publicKey.equals(key.blob)) return false;
  const data = signedData(namespace, sig.hashAlgorithm, Buffer.isBuffer(message) ? message : Buffer.from(message));
  switch (key.type) {
    case 'ssh-ed25519':
      return sig.sigType === 'ssh-ed25519' && verify(null, data, key.key, sig.signature);
    case 'ssh-rsa':
      if (sig.sigType === 'rsa-sha2-512') return verify('sha512', data, key.key, sig.signature);
      if (sig.sigType === 'rsa-sha2-256') return verify('sha256', data, key.key, sig.signature);
      return false; // ssh-rsa (SHA-1) signatures are refused
    default: {
      const curve = CURVES[key.type.replace('ecdsa-sha2-', '')];
      if (!curve || sig.sigType !== key.type) return false;
      const rs = new Reader(sig.signature);
      const pad = (b: Buffer) => {
        const u = unsigned(b);
        if (u.length > curve.size) throw new Error('ECDSA signature component too long');
        return Buffer.concat([Buffer.alloc(curve.size - u.length), u]);
      };
      const p1363 = Buffer.concat([pad(rs.bytes()), pad(rs.bytes())]);
      return verify(curve.hash, data, { key: key.key, dsaEncoding: 'ieee-p1363' }, p1363);
    }
  }
}
