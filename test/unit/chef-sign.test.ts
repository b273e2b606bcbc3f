import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, publicDecrypt, verify, constants } from 'node:crypto';
import { describe, it } from 'node:test';
import { canonicalPath, canonicalRequest, chefTimestamp, signRequest, type SignProtocol } from '../../activities/chef/sign.ts';

interface Vectors {
  privateKeyPem: string;
  publicKeyPem: string;
  request: { method: string; path: string; body: string; userId: string; timestamp: string; serverApiVersionHeaderForV13: string };
  intermediate: Record<string, string>;
  expectedAuthorizationLines: Record<SignProtocol, string[]>;
  expectedSignHeader: Record<SignProtocol, string>;
}

/**
 * Known-answer vectors from the mixlib-authentication test suite (public test key pair, never a
 * real credential), kept inline so the test needs nothing outside the repository.
 */
const v: Vectors = {
  "privateKeyPem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0ueqo76MXuP6XqZBILFziH/9AI7C6PaN5W0dSvkr9yInyGHS\nz/IR1+4tqvP2qlfKVKI4CP6BFH251Ft9qMUBuAsnlAVQ1z0exDtIFFOyQCdR7iXm\njBIWMSS4buBwRQXwDK7id1OxtU23qVJv+xwEV0IzaaSJmaGLIbvRBD+qatfUuQJB\nMU/04DdJIwvLtZBYdC2219m5dUBQaa4bimL+YN9EcsDzD9h9UxQo5ReK7b3cNMzJ\nBKJWLzFBcJuePMzAnLFktr/RufX4wpXe6XJxoVPaHo72GorLkwnQ0HYMTY8rehT4\nmDi1FI969LHCFFaFHSAaRnwdXaQkJmSfcxzCYQIDAQABAoIBAQCW3I4sKN5B9jOe\nxq/pkeWBq4OvhW8Ys1yW0zFT8t6nHbB1XrwscQygd8gE9BPqj3e0iIEqtdphbPmj\nVHqTYbC0FI6QDClifV7noTwTBjeIOlgZ0NSUN0/WgVzIOxUz2mZ2vBZUovKILPqG\nTOi7J7RXMoySMdcXpP1f+PgvYNcnKsT72UcWaSXEV8/zo+Zm/qdGPVWwJonri5Mp\nDVm5EQSENBiRyt028rU6ElXORNmoQpVjDVqZ1gipzXkifdjGyENw2rt4V/iKYD7V\n5iqXOsvP6Cemf4gbrjunAgDG08S00kiUgvVWcdXW+dlsR2nCvH4DOEe3AYYh/aH8\nDxEE7FbtAoGBAPcNO8fJ56mNw0ow4Qg38C+Zss/afhBOCfX4O/SZKv/roRn5+gRM\nKRJYSVXNnsjPI1plzqR4OCyOrjAhtuvL4a0DinDzf1+fiztyNohwYsW1vYmqn3ti\nEN0GhSgE7ppZjqvLQ3f3LUTxynhA0U+k9wflb4irIlViTUlCsOPkrNJDAoGBANqL\nQ+vvuGSsmRLU/Cenjy+Mjj6+QENg51dz34o8JKuVKIPKU8pNnyeLa5fat0qD2MHm\nOB9opeQOcw0dStodxr6DB3wi83bpjeU6BWUGITNiWEaZEBrQ0aiqNJJKrrHm8fAZ\n9o4l4oHc4hI0kYVYYDuxtKuVJrzZiEapTwoOcYiLAoGBAI/EWbeIHZIj9zOjgjEA\nLHvm25HtulLOtyk2jd1njQhlHNk7CW2azIPqcLLH99EwCYi/miNH+pijZ2aHGCXb\n/bZrSxM0ADmrZKDxdB6uGCyp+GS2sBxjEyEsfCyvwhJ8b3Q100tqwiNO+d5FCglp\nHICx2dgUjuRVUliBwOK93nx1AoGAUI8RhIEjOYkeDAESyhNMBr0LGjnLOosX+/as\nqiotYkpjWuFULbibOFp+WMW41vDvD9qrSXir3fstkeIAW5KqVkO6mJnRoT3Knnra\nzjiKOITCAZQeiaP8BO5o3pxE9TMqb9VCO3ffnPstIoTaN4syPg7tiGo8k1SklVeH\n2S8lzq0CgYAKG2fljIYWQvGH628rp4ZcXS4hWmYohOxsnl1YrszbJ+hzR+IQOhGl\nYlkUQYXhy9JixmUUKtH+NXkKX7Lyc8XYw5ETr7JBT3ifs+G7HruDjVG78EJVojbd\n8uLA+DdQm5mg4vd1GTiSK65q/3EeoBlUaVor3HhLFki+i9qpT8CBsg==\n-----END RSA PRIVATE KEY-----\n",
  "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0ueqo76MXuP6XqZBILFz\niH/9AI7C6PaN5W0dSvkr9yInyGHSz/IR1+4tqvP2qlfKVKI4CP6BFH251Ft9qMUB\nuAsnlAVQ1z0exDtIFFOyQCdR7iXmjBIWMSS4buBwRQXwDK7id1OxtU23qVJv+xwE\nV0IzaaSJmaGLIbvRBD+qatfUuQJBMU/04DdJIwvLtZBYdC2219m5dUBQaa4bimL+\nYN9EcsDzD9h9UxQo5ReK7b3cNMzJBKJWLzFBcJuePMzAnLFktr/RufX4wpXe6XJx\noVPaHo72GorLkwnQ0HYMTY8rehT4mDi1FI969LHCFFaFHSAaRnwdXaQkJmSfcxzC\nYQIDAQAB\n-----END PUBLIC KEY-----\n",
  "request": {
    "method": "POST",
    "path": "/organizations/clownco",
    "body": "Spec Body",
    "userId": "spec-user",
    "timestamp": "2009-01-01T12:00:00Z",
    "serverApiVersionHeaderForV13": "1"
  },
  "intermediate": {
    "bodySha1Base64": "DFteJZPVv6WKdQmMqZUQUumUyRs=",
    "bodySha256Base64": "hDlKNZhIhgso3Fs0S0pZwJ0xyBWtR1RBaeHs1DrzOho=",
    "pathSha1Base64": "YtBWDn1blGGuFIuKksdwXzHU9oE=",
    "emptyBodySha1Base64": "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
    "emptyBodySha256Base64": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
  },
  "expectedAuthorizationLines": {
    "1.0": [
      "jVHrNniWzpbez/eGWjFnO6lINRIuKOg40ZTIQudcFe47Z9e/HvrszfVXlKG4",
      "NMzYZgyooSvU85qkIUmKuCqgG2AIlvYa2Q/2ctrMhoaHhLOCWWoqYNMaEqPc",
      "3tKHE+CfvP+WuPdWk4jv4wpIkAz6ZLxToxcGhXmZbXpk56YTmqgBW2cbbw4O",
      "IWPZDHSiPcw//AYNgW1CCDptt+UFuaFYbtqZegcBd2n/jzcWODA7zL4KWEUy",
      "9q4rlh/+1tBReg60QdsmDRsw/cdO1GZrKtuCwbuD4+nbRdVBKv72rqHX9cu0",
      "utju9jzczCyB+sSAQWrxSsXB/b8vV2qs0l4VD2ML+w=="
    ],
    "1.1": [
      "UfZD9dRz6rFu6LbP5Mo1oNHcWYxpNIcUfFCffJS1FQa0GtfU/vkt3/O5HuCM",
      "1wIFl/U0f5faH9EWpXWY5NwKR031Myxcabw4t4ZLO69CIh/3qx1XnjcZvt2w",
      "c2R9bx/43IWA/r8w8Q6decuu0f6ZlNheJeJhaYPI8piX/aH+uHBH8zTACZu8",
      "vMnl5MF3/OIlsZc8cemq6eKYstp8a8KYq9OmkB5IXIX6qVMJHA6fRvQEB/7j",
      "281Q7oI/O+lE8AmVyBbwruPb7Mp6s4839eYiOdjbDwFjYtbS3XgAjrHlaD7W",
      "FDlbAG7H8Dmvo+wBxmtNkszhzbBnEYtuwQqT8nM/8A=="
    ],
    "1.3": [
      "FZOmXAyOBAZQV/uw188iBljBJXOm+m8xQ/8KTGLkgGwZNcRFxk1m953XjE3W",
      "VGy1dFT76KeaNWmPCNtDmprfH2na5UZFtfLIKrPv7xm80V+lzEzTd9WBwsfP",
      "42dZ9N+V9I5SVfcL/lWrrlpdybfceJC5jOcP5tzfJXWUITwb6Z3Erg3DU3Uh",
      "H9h9E0qWlYGqmiNCVrBnpe6Si1gU/Jl+rXlRSNbLJ4GlArAPuL976iTYJTzE",
      "MmbLUIm3JRYi00Yb01IUCCKdI90vUq1HHNtlTEu93YZfQaJwRxXlGkCNwIJe",
      "fy49QzaCIEu1XiOx5Jn+4GmkrZch/RrK9VzQWXgs+w=="
    ]
  },
  "expectedSignHeader": {
    "1.0": "algorithm=sha1;version=1.0;",
    "1.1": "algorithm=sha1;version=1.1;",
    "1.3": "algorithm=sha256;version=1.3;"
  }
};
const key = createPrivateKey(v.privateKeyPem);
const pub = createPublicKey(v.publicKeyPem);
const protocols: SignProtocol[] = ['1.0', '1.1', '1.3'];

const signVector = (protocol: SignProtocol, overrides: { path?: string } = {}) =>
  signRequest({
    method: v.request.method,
    path: overrides.path ?? v.request.path,
    body: v.request.body,
    userId: v.request.userId,
    timestamp: v.request.timestamp,
    protocol,
    key,
    ...(protocol === '1.3' ? { serverApiVersion: v.request.serverApiVersionHeaderForV13 } : {}),
  });

const authLines = (headers: Record<string, string>) =>
  Object.keys(headers)
    .filter((h) => h.startsWith('X-Ops-Authorization-'))
    .sort((a, b) => Number(a.split('-').pop()) - Number(b.split('-').pop()))
    .map((h) => headers[h]!);

describe('chef signing: known-answer vectors', () => {
  for (const protocol of protocols) {
    it(`protocol ${protocol}: authorization lines and headers match byte for byte`, () => {
      const h = signVector(protocol);
      assert.deepEqual(authLines(h), v.expectedAuthorizationLines[protocol]);
      assert.equal(h['X-Ops-Sign'], v.expectedSignHeader[protocol]);
      assert.equal(h['X-Ops-Userid'], v.request.userId);
      assert.equal(h['X-Ops-Timestamp'], v.request.timestamp);
      assert.equal(h['X-Ops-Content-Hash'], protocol === '1.3' ? v.intermediate.bodySha256Base64 : v.intermediate.bodySha1Base64);
      for (const line of authLines(h)) assert.ok(line.length <= 60);
    });

    it(`protocol ${protocol}: the signature verifies with the public key`, () => {
      const sig = Buffer.from(authLines(signVector(protocol)).join(''), 'base64');
      const canonical = canonicalRequest({
        method: v.request.method,
        path: v.request.path,
        body: v.request.body,
        userId: v.request.userId,
        timestamp: v.request.timestamp,
        protocol,
        serverApiVersion: v.request.serverApiVersionHeaderForV13,
      });
      if (protocol === '1.3') {
        assert.ok(verify('sha256', Buffer.from(canonical), pub, sig));
        assert.ok(!verify('sha256', Buffer.from(canonical.replace('POST', 'GET')), pub, sig));
      } else {
        // 1.0/1.1 "verify" the way the server does: public-decrypt and compare with the canonical string
        const recovered = publicDecrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, sig).toString('utf8');
        assert.equal(recovered, canonical);
      }
    });

    it(`protocol ${protocol}: query string, doubled and trailing slashes do not change the signature`, () => {
      const expected = authLines(signVector(protocol));
      for (const path of ['/organizations/clownco?q=a:b&rows=10', '//organizations///clownco/', '/organizations/clownco/?x=1']) {
        assert.deepEqual(authLines(signVector(protocol, { path })), expected, path);
      }
      assert.notDeepEqual(authLines(signVector(protocol, { path: '/organizations/clownco2' })), expected);
    });
  }

  it('intermediate hashes match (path, empty body)', () => {
    const b64 = (alg: string, s: string) => createHash(alg).update(s).digest('base64');
    assert.equal(b64('sha1', canonicalPath(v.request.path)), v.intermediate.pathSha1Base64);
    assert.equal(b64('sha1', ''), v.intermediate.emptyBodySha1Base64);
    assert.equal(b64('sha256', ''), v.intermediate.emptyBodySha256Base64);
    const get = signRequest({ method: 'get', path: '/nodes', userId: 'u', protocol: '1.1', key });
    assert.equal(get['X-Ops-Content-Hash'], v.intermediate.emptyBodySha1Base64);
  });

  it('1.3 without an API version header signs "0"; 1.0 signs the plain user id, 1.1 its SHA-1', () => {
    const base = { method: 'GET', path: '/x', userId: 'spec-user', timestamp: v.request.timestamp };
    assert.match(canonicalRequest({ ...base, protocol: '1.3' }), /\nX-Ops-Server-API-Version:0$/);
    assert.match(canonicalRequest({ ...base, protocol: '1.0' }), /\nX-Ops-UserId:spec-user$/);
    assert.match(canonicalRequest({ ...base, protocol: '1.1' }), new RegExp(`\\nX-Ops-UserId:${createHash('sha1').update('spec-user').digest('base64').replace(/[+/]/g, '\\$&')}$`));
    assert.match(canonicalRequest({ ...base, protocol: '1.1' }), /^Method:GET\n/);
  });

  it('canonical paths', () => {
    const cases: [string, string][] = [
      ['/', '/'],
      ['', '/'],
      ['//', '/'],
      ['/environments/prod/', '/environments/prod'],
      ['/search/node?q=chef_environment:prod&rows=10', '/search/node'],
      ['/a//b///c', '/a/b/c'],
      ['/organizations/acme/environments/x#frag', '/organizations/acme/environments/x'],
    ];
    for (const [input, expected] of cases) assert.equal(canonicalPath(input), expected, input);
  });

  it('timestamps are UTC without fraction', () => {
    assert.equal(chefTimestamp(new Date(Date.UTC(2009, 0, 1, 12, 0, 0, 456))), '2009-01-01T12:00:00Z');
  });
});
