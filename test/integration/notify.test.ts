import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { notify, type NotifyResult, type ReleaseEvent } from '../../activities/notify/index.ts';
import type { WebhookRef } from '../../activities/gates/index.ts';
import { activityEnv, type LogEntry } from '../support/gates-activity.ts';

interface Received {
  method: string;
  path: string;
  contentType: string | undefined;
  body: unknown;
}

/** When the receiver got each request (its own clock: what the retry policy is judged by), and when the sender gave up on it (closed the connection unanswered). */
interface Arrival {
  at: number;
  /** resolves when the connection closes: true if the sender hung up before any answer */
  abandoned: Promise<boolean>;
}

/** A real webhook receiver; `answer` decides the response to the n-th request (1-based). */
async function receiver(answer: (n: number, req: IncomingMessage, res: ServerResponse) => void = (_n, _q, res) => res.writeHead(204).end()) {
  const got: Received[] = [];
  const arrivals: Arrival[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      const abandoned = new Promise<boolean>((resolve) => res.once('close', () => resolve(!res.writableFinished)));
      got.push({ method: req.method ?? '', path: req.url ?? '', contentType: req.headers['content-type'], body: JSON.parse(text || 'null') });
      arrivals.push({ at: performance.now(), abandoned });
      answer(got.length, req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, got, arrivals, server };
}
const close = (s: Server) => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); });

const event: ReleaseEvent = {
  release: 'shop-2.1.0',
  app: 'shop',
  phase: 'RollingBack',
  step: 'gate error-rate',
  summary: 'error rate 0.31 breached < 0.05; rolling back Flux and Chef',
  uiUrl: 'http://localhost:8233/namespaces/default/workflows/release-shop-2.1.0',
  at: '2026-01-02T03:04:05.000Z',
};

function run(webhooks: WebhookRef[]): { result: Promise<NotifyResult>; logs: LogEntry[] } {
  const { env, logs } = activityEnv();
  return { result: env.run(notify, { webhooks, event }) as Promise<NotifyResult>, logs };
}

let n = 0;
/** Puts a URL in a fresh environment variable, as a deployment would put a webhook URL in the worker's env. */
function envRef(url: string): WebhookRef {
  const name = `GATES_TEST_WEBHOOK_${process.pid}_${++n}`;
  process.env[name] = url;
  return { urlFrom: { env: name } };
}

describe('notify (webhooks) against real HTTP receivers', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gates-notify-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('POSTs the event as JSON to every webhook, URLs taken by reference', async () => {
    const a = await receiver();
    const b = await receiver((_n, _q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    try {
      const file = join(dir, 'hook-url');
      await writeFile(file, `${b.url}/hooks/release\n`);
      const { result } = run([envRef(`${a.url}/notify`), { urlFrom: { file } }]);
      assert.deepEqual(await result, { delivered: 2, failed: 0 });
      for (const [r, path] of [[a, '/notify'], [b, '/hooks/release']] as const) {
        assert.deepEqual(r.got, [{ method: 'POST', path, contentType: 'application/json', body: event }]);
      }
    } finally {
      await Promise.all([close(a.server), close(b.server)]);
    }
  });

  it('a dead receiver does not fail anything: counted, logged, and the others still get it', async () => {
    const live = await receiver();
    const dead = await receiver();
    await close(dead.server); // its port now refuses connections
    try {
      const { result, logs } = run([envRef(`${dead.url}/hooks/T0001/SECRETPATHTOKEN`), envRef(live.url)]);
      assert.deepEqual(await result, { delivered: 1, failed: 1 });
      assert.equal(live.got.length, 1);
      const warnings = logs.filter((l) => l.level === 'WARN');
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!.message, /^webhook not delivered: connection refused/);
      const { webhook, urlFrom, release, phase, attempts, workflowId } = warnings[0]!.meta as Record<string, unknown>;
      assert.equal(workflowId, 'release-activity-tests', 'logged through the activity logger, with the workflow ids');
      assert.deepEqual({ webhook, urlFrom, release, phase, attempts }, {
        webhook: 0,
        urlFrom: `env GATES_TEST_WEBHOOK_${process.pid}_${n - 1}`,
        release: event.release,
        phase: event.phase,
        attempts: 3,
      });
      assert.ok(!JSON.stringify(logs).includes('SECRETPATHTOKEN'), 'the URL (a credential for chat webhooks) is never logged');
    } finally {
      await close(live.server);
    }
  });

  it('retries a receiver that errors, and stops once it answers', async () => {
    const flaky = await receiver((k, _q, res) => res.writeHead(k < 3 ? 503 : 200).end());
    try {
      const { result } = run([envRef(flaky.url)]);
      assert.deepEqual(await result, { delivered: 1, failed: 0 });
      assert.equal(flaky.got.length, 3, 'three attempts: two 503s, then the 200');
      // the policy's backoff (0.5 s, then 1 s) as the receiver saw it: lower bounds, never a speed limit
      const [a, b, c] = flaky.arrivals.map((g) => g.at) as [number, number, number];
      assert.ok(b - a >= 450, `backed off ~0.5 s before the second attempt (${Math.round(b - a)} ms)`);
      assert.ok(c - b >= 950, `backed off ~1 s before the third attempt (${Math.round(c - b)} ms)`);
    } finally {
      await close(flaky.server);
    }
  });

  it('does not retry a receiver that refuses the request (4xx)', async () => {
    const gone = await receiver((_k, _q, res) => res.writeHead(404).end());
    try {
      const { result, logs } = run([envRef(gone.url)]);
      assert.deepEqual(await result, { delivered: 0, failed: 1 });
      assert.equal(gone.got.length, 1);
      assert.match(logs.find((l) => l.level === 'WARN')!.message, /receiver answered HTTP 404/);
    } finally {
      await close(gone.server);
    }
  });

  it('an unresolvable URL reference is counted and logged, not raised', async () => {
    const { result, logs } = run([{ urlFrom: { env: 'GATES_TEST_WEBHOOK_UNSET' } }, { urlFrom: { file: join(dir, 'missing') } }]);
    assert.deepEqual(await result, { delivered: 0, failed: 2 });
    const messages = logs.filter((l) => l.level === 'WARN').map((l) => l.message).sort();
    assert.deepEqual(messages, [
      `webhook not delivered: cannot resolve the URL: cannot read file ${join(dir, 'missing')} (ENOENT)`,
      'webhook not delivered: cannot resolve the URL: environment variable GATES_TEST_WEBHOOK_UNSET is not set on the worker',
    ]);
  });

  it('a receiver that never answers is given up on within a bounded time', async () => {
    const hung = await receiver(() => {});
    try {
      const { result, logs } = run([envRef(hung.url)]);
      assert.deepEqual(await result, { delivered: 0, failed: 1 });
      assert.equal(hung.got.length, 3, 'three attempts, then it gave up');
      // each attempt was abandoned by the sender, never answered; awaited, since the last hang-up can
      // reach the receiver after the result. How long it waited is the sender's clock (its 5 s timer
      // starts before the receiver sees the request), so the reason below says it, not our timing.
      for (const g of hung.arrivals) assert.equal(await g.abandoned, true, 'the sender gave up on the attempt');
      const warning = logs.find((l) => l.level === 'WARN')!;
      assert.equal((warning.meta as { attempts: number }).attempts, 3);
      assert.equal(warning.message, 'webhook not delivered: no response within 5s');
    } finally {
      await close(hung.server);
    }
  });

  it('nothing to notify is nothing delivered', async () => {
    assert.deepEqual(await run([]).result, { delivered: 0, failed: 0 });
  });
});
