import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { httpGate, type GateResult, type HttpGateSpec } from '../../activities/gates/index.ts';
import { GATE_FAILED, GATE_TIMED_OUT } from '../../activities/gates/poll.ts';
import * as k8s from '@kubernetes/client-node';
import { requireEnv, uniqueName } from '../support/env.ts';
import { activityEnv, rejection } from '../support/gates-activity.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real HTTP server on a loopback port whose behaviour each test sets. */
async function serve(handler: Handler, make: (h: Handler) => Server = (h) => createServer(h)): Promise<{ url: string; server: Server; set: (h: Handler) => void }> {
  let current = handler;
  const server = make((req, res) => current(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server, set: (h) => (current = h) };
}
const close = (s: Server) => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); });

const json = (body: unknown, status = 200): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};

function run(input: { http: Partial<HttpGateSpec> & { url: string }; timeoutMs?: number; intervalMs?: number; successes?: number }): Promise<GateResult> {
  const { env } = activityEnv();
  return env.run(httpGate, {
    gate: 'probe',
    timeoutMs: input.timeoutMs ?? 2_000,
    intervalMs: input.intervalMs ?? 50,
    successes: input.successes ?? 1,
    http: { expectStatus: 200, requestTimeoutMs: 1_000, ...input.http },
  }) as Promise<GateResult>;
}

const details = (err: Record<string, unknown>) => (err.details as GateResult[])[0]!;

describe('httpGate against a real HTTP server', () => {
  let app: Awaited<ReturnType<typeof serve>>;
  let dir: string;
  before(async () => {
    app = await serve(json({}));
    dir = await mkdtemp(join(tmpdir(), 'gates-http-'));
  });
  after(async () => {
    await close(app.server);
    await rm(dir, { recursive: true, force: true });
  });

  it('passes when the status and every JSON field match', async () => {
    app.set(json({ version: '2.1.0', build: { tags: ['stable', 'web'], number: 42, release: true } }));
    const result = await run({
      http: { url: `${app.url}/version.json`, json: { '$.version': '2.1.0', '$.build.tags[1]': 'web', '$.build.number': 42, '$.build.release': true } },
    });
    assert.equal(result.ok, true);
    assert.equal(result.kind, 'http');
    // whether each field matched, never what the endpoint answered
    assert.deepEqual(result.observed, {
      status: 200,
      json: { '$.version': 'matched', '$.build.tags[1]': 'matched', '$.build.number': 'matched', '$.build.release': 'matched' },
    });
  });

  it('waits for the new version, then passes after N consecutive successes', async () => {
    let served = 0;
    app.set((req, res) => json({ version: ++served >= 3 ? '2.1.0' : '2.0.9' })(req, res));
    const result = await run({ http: { url: app.url, json: { '$.version': '2.1.0' } }, successes: 3 });
    assert.equal(result.ok, true);
    assert.equal(result.checks, 5, 'two old answers, then three good ones in a row');
  });

  it('fails at the deadline saying which JSON field stays wrong, without the value the endpoint answered', async () => {
    app.set(json({ version: '2.0.9', build: {} }));
    const err = await rejection(run({ http: { url: app.url, json: { '$.version': '2.1.0', '$.build.tags[0]': 'web' } }, timeoutMs: 300 }));
    assert.equal(err.type, GATE_TIMED_OUT);
    const r = details(err);
    assert.equal(r.reason, '$.version is not "2.1.0" (found a string of 5 characters); $.build.tags[0] is missing, expected "web"');
    assert.deepEqual(r.observed, { status: 200, json: { '$.version': 'different', '$.build.tags[0]': 'missing' } });
    assert.ok(!JSON.stringify(err).includes('2.0.9'), 'the foreign value is not recorded');
  });

  it('does not take a number for the same string (strict equality)', async () => {
    app.set(json({ replicas: '3' }));
    const err = await rejection(run({ http: { url: app.url, json: { '$.replicas': 3 } }, timeoutMs: 150 }));
    assert.equal(details(err).reason, '$.replicas is not 3 (found a string of 1 character)');
  });

  it('reports a wrong status, and passes once the expected one comes', async () => {
    app.set((_req, res) => res.writeHead(503).end('starting'));
    const err = await rejection(run({ http: { url: app.url }, timeoutMs: 200 }));
    assert.equal(details(err).reason, 'expected status 200, got 503');
    assert.deepEqual(details(err).observed, { status: 503 });

    let n = 0;
    app.set((_req, res) => res.writeHead(++n > 2 ? 204 : 503).end());
    const result = await run({ http: { url: app.url, expectStatus: 204 } });
    assert.equal(result.ok, true);
    assert.equal(result.checks, 3);
  });

  it('says plainly when the response is not JSON', async () => {
    app.set((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>'));
    const err = await rejection(run({ http: { url: app.url, json: { '$.version': '1' } }, timeoutMs: 150 }));
    assert.equal(details(err).reason, 'status 200 but response is not JSON');
  });

  describe('headers by reference', () => {
    const token = `tok-${Math.random().toString(36).slice(2)}-secret`;
    const needsToken: Handler = (req, res) =>
      req.headers['x-api-key'] === token ? json({ ok: true })(req, res) : res.writeHead(401).end();

    it('sends a header value taken from an environment variable, and never shows it', async () => {
      app.set(needsToken);
      process.env.GATES_TEST_TOKEN = token;
      try {
        const result = await run({ http: { url: app.url, headers: { 'X-Api-Key': { env: 'GATES_TEST_TOKEN' } }, json: { '$.ok': true } } });
        assert.equal(result.ok, true);
        assert.ok(!JSON.stringify(result).includes(token));
      } finally {
        delete process.env.GATES_TEST_TOKEN;
      }
    });

    it('sends a header value taken from a file (one trailing newline dropped)', async () => {
      app.set(needsToken);
      const file = join(dir, 'token');
      await writeFile(file, `${token}\n`);
      const result = await run({ http: { url: app.url, headers: { 'X-Api-Key': { file } } } });
      assert.equal(result.ok, true);
    });

    it('fails at once, naming the reference, when the variable is not set', async () => {
      app.set(needsToken);
      // a deadline far beyond the run: the first check found it
      const err = await rejection(run({ http: { url: app.url, headers: { 'X-Api-Key': { env: 'GATES_TEST_UNSET_TOKEN' } } }, timeoutMs: 30 * 60_000 }));
      assert.equal(err.type, GATE_FAILED);
      assert.equal(details(err).reason, 'header X-Api-Key: environment variable GATES_TEST_UNSET_TOKEN is not set on the worker');
      assert.equal(details(err).checks, 1);
    });

    it('with a wrong value, reports the status without echoing the value', async () => {
      app.set(needsToken);
      process.env.GATES_TEST_TOKEN = `${token}-wrong`;
      try {
        const err = await rejection(run({ http: { url: app.url, headers: { 'X-Api-Key': { env: 'GATES_TEST_TOKEN' } } }, timeoutMs: 150 }));
        assert.equal(details(err).reason, 'expected status 200, got 401');
        assert.ok(!JSON.stringify({ m: err.message, d: err.details }).includes(token));
      } finally {
        delete process.env.GATES_TEST_TOKEN;
      }
    });
  });

  describe('a header value from a Kubernetes Secret (the stack\'s kube-apiserver)', () => {
    const token = `sec-${Math.random().toString(36).slice(2)}-ret`;
    const name = uniqueName('gates-probe-token');
    const namespace = 'default';
    let core: k8s.CoreV1Api;
    before(async () => {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(requireEnv('KUBECONFIG')); // the activity finds it the same way, through $KUBECONFIG
      core = kc.makeApiClient(k8s.CoreV1Api);
      // written the way `kubectl create secret --from-file` would, trailing newline included
      await core.createNamespacedSecret({ namespace, body: { metadata: { name }, data: { token: Buffer.from(`${token}\n`).toString('base64') } } });
    });
    after(() => core.deleteNamespacedSecret({ name, namespace }));

    it('is read by the activity and sent, never shown', async () => {
      app.set((req, res) => (req.headers.authorization === `Bearer ${token}` ? json({ ok: true })(req, res) : res.writeHead(401).end()));
      // the Secret holds the whole header value here; a reference names one key
      await core.patchNamespacedSecret(
        { name, namespace, body: { data: { authorization: Buffer.from(`Bearer ${token}`).toString('base64') } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      const result = await run({ http: { url: app.url, headers: { Authorization: { secret: { name, namespace, key: 'authorization' } } } } });
      assert.equal(result.ok, true);
      assert.ok(!JSON.stringify(result).includes(token));

      app.set((req, res) => (req.headers['x-api-key'] === token ? json({ ok: true })(req, res) : res.writeHead(401).end()));
      const fromFileStyle = await run({ http: { url: app.url, headers: { 'X-Api-Key': { secret: { name, namespace, key: 'token' } } } } });
      assert.equal(fromFileStyle.ok, true, 'one trailing newline dropped');
    });

    it('a missing key or Secret fails the gate at once, naming it', async () => {
      const err = await rejection(run({ http: { url: app.url, headers: { 'X-Api-Key': { secret: { name, namespace, key: 'nope' } } } }, timeoutMs: 5_000 }));
      assert.equal(err.type, GATE_FAILED);
      assert.equal(details(err).reason, `header X-Api-Key: Secret default/${name} has no key nope`);

      const gone = await rejection(run({ http: { url: app.url, headers: { 'X-Api-Key': { secret: { name: `${name}-absent`, namespace, key: 'token' } } } }, timeoutMs: 5_000 }));
      assert.equal(details(gone).reason, `header X-Api-Key: Secret default/${name}-absent not found`);
    });
  });

  describe('redirects', () => {
    it('are not followed unless asked, and the reason says where they lead', async () => {
      app.set((req, res) => (req.url === '/health' ? res.writeHead(302, { location: '/login?next=%2Fhealth' }).end() : json({ ok: true })(req, res)));
      const err = await rejection(run({ http: { url: `${app.url}/health` }, timeoutMs: 150 }));
      // where it leads, without the path (the endpoint's data)
      assert.equal(details(err).reason, `expected status 200, got 302 (redirect to ${app.url}/…, not followed: set followRedirects to follow it)`);
      assert.deepEqual(details(err).observed, { status: 302, location: `${app.url}/…` });

      const result = await run({ http: { url: `${app.url}/health`, followRedirects: true, json: { '$.ok': true } } });
      assert.equal(result.ok, true);
    });

    it('followed to another origin, do not carry the spec\'s headers there', async () => {
      const seen: (string | undefined)[] = [];
      const other = await serve((req, res) => {
        seen.push(req.headers['x-api-key'] as string | undefined);
        json({ ok: true })(req, res);
      });
      try {
        app.set((_req, res) => res.writeHead(307, { location: `${other.url}/elsewhere` }).end());
        process.env.GATES_TEST_TOKEN = 'a-header-value-for-this-origin-only';
        const result = await run({ http: { url: app.url, followRedirects: true, headers: { 'X-Api-Key': { env: 'GATES_TEST_TOKEN' } } } });
        assert.equal(result.ok, true);
        assert.deepEqual(seen, [undefined]);
      } finally {
        delete process.env.GATES_TEST_TOKEN;
        await close(other.server);
      }
    });
  });

  describe('transport problems are "not yet", with a plain reason', () => {
    it('a request timeout', async () => {
      app.set(() => {}); // accepts the request, never answers
      const err = await rejection(run({ http: { url: app.url, requestTimeoutMs: 150 }, timeoutMs: 400, intervalMs: 20 }));
      assert.equal(err.type, GATE_TIMED_OUT);
      assert.equal(details(err).reason, `GET ${app.url}/: no response within 150ms`);
    });

    it('a refused connection', async () => {
      const gone = await serve(json({}));
      const url = gone.url;
      await close(gone.server);
      const err = await rejection(run({ http: { url }, timeoutMs: 200 }));
      assert.equal(err.type, GATE_TIMED_OUT);
      assert.match(details(err).reason, new RegExp(`^GET ${url}/: connection refused \\(.*ECONNREFUSED.*\\)$`));
      assert.ok(details(err).checks > 1, 'kept trying until the deadline');
    });

    it('a server that comes up during the gate', async () => {
      const later = await serve(json({ ok: true }));
      const { port } = later.server.address() as AddressInfo;
      await close(later.server);
      setTimeout(() => later.server.listen(port, '127.0.0.1'), 200);
      try {
        const result = await run({ http: { url: later.url }, timeoutMs: 3_000 });
        assert.equal(result.ok, true);
        assert.ok(result.checks > 1);
      } finally {
        await close(later.server);
      }
    });
  });

  describe('TLS settings by reference', () => {
    let tls: Awaited<ReturnType<typeof serve>>;
    let caFile: string;
    before(async () => {
      const key = join(dir, 'tls.key');
      caFile = join(dir, 'tls.crt');
      await promisify(execFile)('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', caFile,
      ]);
      const [k, c] = await Promise.all([readFile(key), readFile(caFile)]);
      tls = await serve(json({ version: 'tls' }), (h) => createHttpsServer({ key: k, cert: c }, h));
    });
    after(() => close(tls.server));
    const httpsUrl = () => tls.url.replace('http:', 'https:');

    it('an unknown CA is reported, not trusted', async () => {
      const err = await rejection(run({ http: { url: httpsUrl() }, timeoutMs: 200 }));
      assert.match(details(err).reason, /^GET https:\/\/127\.0\.0\.1:\d+\/: TLS: self-signed certificate/);
    });

    it('a CA file makes it trusted', async () => {
      const result = await run({ http: { url: httpsUrl(), caFile, json: { '$.version': 'tls' } } });
      assert.equal(result.ok, true);
    });

    it('insecureSkipVerify skips verification', async () => {
      const result = await run({ http: { url: httpsUrl(), insecureSkipVerify: true } });
      assert.equal(result.ok, true);
    });

    it('a missing CA file is a configuration error, not a wait', async () => {
      const err = await rejection(run({ http: { url: httpsUrl(), caFile: join(dir, 'nope.crt') } }));
      assert.equal(err.type, 'GateConfigError');
      assert.equal(err.nonRetryable, true);
    });
  });
});
