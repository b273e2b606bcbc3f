/**
 * The client's wire behaviour against a local HTTP server that checks what a Chef server checks:
 * URL with /organizations/ORG, headers, a signature that verifies over the path without query,
 * and how each answer is classified.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, publicDecrypt, constants, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/activity';
import { ChefClient, closeChefPools } from '../../activities/chef/client.ts';
import { canonicalRequest, type SignProtocol } from '../../activities/chef/sign.ts';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
let seen: Seen[] = [];
let reply: (req: Seen) => { status: number; body?: string; delayMs?: number } = () => ({ status: 200, body: '{}' });
let server: Server;
let base: string;

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      seen.push(s);
      const r = reply(s);
      setTimeout(() => {
        res.writeHead(r.status, { 'content-type': 'application/json' });
        res.end(r.body ?? '');
      }, r.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(async () => {
  await closeChefPools();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const client = (protocol: SignProtocol = '1.1', serverUrl = `${base}/organizations/acme/`, timeoutMs?: number) =>
  new ChefClient({ serverUrl, protocol, identity: { clientName: 'deployer', key: privateKey, source: 'key file /etc/chef/deployer.pem' }, ...(timeoutMs ? { timeoutMs } : {}) });

/** The server side of the signature check. */
function verifies(s: Seen, protocol: SignProtocol, pub: KeyObject): boolean {
  const h = s.headers;
  const sig = Buffer.from(
    Object.keys(h)
      .filter((k) => k.startsWith('x-ops-authorization-'))
      .sort((a, b) => Number(a.split('-').pop()) - Number(b.split('-').pop()))
      .map((k) => h[k])
      .join(''),
    'base64',
  );
  const canonical = canonicalRequest({
    method: s.method,
    path: new URL(s.url, base).pathname,
    body: s.body,
    userId: String(h['x-ops-userid']),
    timestamp: String(h['x-ops-timestamp']),
    protocol,
    serverApiVersion: String(h['x-ops-server-api-version']),
  });
  if (protocol === '1.3') return verify('sha256', Buffer.from(canonical), pub, sig);
  return publicDecrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, sig).toString('utf8') === canonical;
}

describe('chef client: requests', () => {
  for (const protocol of ['1.0', '1.1', '1.3'] as const) {
    it(`protocol ${protocol}: org prefix, headers, query outside the signature, signature verifies`, async () => {
      seen = [];
      reply = () => ({ status: 200, body: '{"rows":[],"total":0}' });
      const c = client(protocol);
      assert.equal(c.serverUrl, `${base}/organizations/acme`);
      await c.post('search/node', { object: 'node search', query: { q: 'chef_environment:prod', rows: 10, start: 0 }, body: { name: ['name'] } });
      const s = seen[0]!;
      assert.equal(s.url, '/organizations/acme/search/node?q=chef_environment%3Aprod&rows=10&start=0');
      assert.equal(s.headers.accept, 'application/json');
      assert.equal(s.headers['content-type'], 'application/json');
      assert.ok(s.headers['x-chef-version']);
      assert.equal(s.headers['x-ops-server-api-version'], '1');
      assert.equal(s.headers['x-ops-userid'], 'deployer');
      assert.match(String(s.headers['x-ops-timestamp']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(
        s.headers['x-ops-content-hash'],
        createHash(protocol === '1.3' ? 'sha256' : 'sha1').update(s.body).digest('base64'),
      );
      assert.ok(verifies(s, protocol, publicKey));
      for (const v of Object.values(s.headers)) assert.ok(!String(v).includes('PRIVATE KEY'));
    });
  }

  it('a GET has no body and no content type; a server URL without org works; "/"-paths are absolute', async () => {
    seen = [];
    reply = () => ({ status: 200, body: '{"a":1}' });
    const c = client('1.1', base);
    assert.deepEqual(await c.get('environments/prod', { object: 'environment prod' }), { a: 1 });
    await c.put('/file_store/abc', { object: 'file', raw: { bytes: Buffer.from('xyz'), contentType: 'application/x-binary' } });
    assert.equal(seen[0]!.url, '/environments/prod');
    assert.equal(seen[0]!.headers['content-type'], undefined);
    assert.equal(seen[0]!.body, '');
    assert.ok(verifies(seen[0]!, '1.1', publicKey));
    assert.equal(seen[1]!.url, '/file_store/abc');
    assert.equal(seen[1]!.headers['content-type'], 'application/x-binary');
    assert.ok(verifies(seen[1]!, '1.1', publicKey));
    assert.equal(client('1.1', `${base}/organizations/acme`).serverUrl, `${base}/organizations/acme`);
  });

  it('rejects a server URL that is not http(s), non-retryably', () => {
    for (const bad of ['chef.example.com', 'ftp://chef.example.com']) {
      assert.throws(() => client('1.1', bad), (e: unknown) => e instanceof ApplicationFailure && e.nonRetryable && e.type === 'ChefBadRequest');
    }
  });
});

describe('chef client: error classification', () => {
  const table: [number, string, boolean, RegExp][] = [
    [400, 'ChefBadRequest', true, /rejected the request as invalid/],
    [401, 'ChefAuth', true, /did not accept client "deployer" \(credentials from key file \/etc\/chef\/deployer\.pem\)/],
    [403, 'ChefForbidden', true, /is not permitted/],
    [404, 'ChefNotFound', true, /does not exist/],
    [405, 'ChefNotAllowed', true, /does not allow PUT/],
    [406, 'ChefBadRequest', true, /X-Ops-Server-API-Version 1/],
    [409, 'ChefConflict', false, /retried/],
    [500, 'ChefUnavailable', false, /failing or overloaded/],
    [503, 'ChefUnavailable', false, /failing or overloaded/],
  ];
  for (const [status, type, nonRetryable, message] of table) {
    it(`${status} -> ${type}, ${nonRetryable ? 'not ' : ''}retryable`, async () => {
      reply = () => ({ status, body: JSON.stringify({ error: [`server says ${status}`] }) });
      const err = await client()
        .put('environments/prod', { object: 'environment prod', body: {} })
        .then(() => assert.fail('expected a failure'), (e: unknown) => e);
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, type);
      assert.equal(err.nonRetryable, nonRetryable);
      assert.ok(err.message.startsWith(`Chef server ${base}/organizations/acme: PUT environment prod failed with ${status} (server says ${status})`), err.message);
      assert.match(err.message, message);
      assert.ok(!err.message.includes(keyPem.split('\n')[1]!));
    });
  }

  it('a server that does not answer in time: retryable ChefUnavailable', async () => {
    reply = () => ({ status: 200, body: '{}', delayMs: 2_000 });
    const err = await client('1.1', base, 300)
      .get('environments/prod', { object: 'environment prod' })
      .then(() => assert.fail('expected a failure'), (e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, 'ChefUnavailable');
    assert.equal(err.nonRetryable, false);
    assert.match(err.message, /unreachable: GET environment prod failed: no answer within 300ms/);
  });

  it('cancellation by the caller is passed through, not turned into a server failure', async () => {
    reply = () => ({ status: 200, body: '{}', delayMs: 1_000 });
    const ac = new AbortController();
    const p = client('1.1', base).get('environments/prod', { object: 'environment prod', signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    const err = await p.then(() => assert.fail('expected a failure'), (e: unknown) => e);
    assert.ok(!(err instanceof ApplicationFailure));
  });
});
