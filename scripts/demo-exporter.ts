/**
 * A tiny Prometheus exporter whose error rate tests set on demand, so a Prometheus gate can be
 * driven to pass or fail against a real Prometheus. It simulates `requestsPerSecond` requests a
 * second, a fraction `errorRate` of them answered 500.
 *
 *   GET  /metrics   demo_http_requests_total{code="200"|"500"}, demo_error_rate, demo_version_info
 *   GET  /control   current settings
 *   POST /control   {"errorRate":0.5, "requestsPerSecond":50, "version":"2.1.0"} (any subset)
 *
 * Usage: node scripts/demo-exporter.ts --port N (the stack starts it; see scripts/stack/prometheus.ts)
 */
import { createServer } from 'node:http';

interface Settings {
  errorRate: number;
  requestsPerSecond: number;
  version: string;
}

const settings: Settings = { errorRate: 0, requestsPerSecond: 20, version: '1.0.0' };
const counts = { ok: 0, error: 0 };
// fractional requests carry over between ticks so low rates still count exactly
let carryOk = 0;
let carryError = 0;

const tickMs = 100;
setInterval(() => {
  const n = (settings.requestsPerSecond * tickMs) / 1000;
  carryError += n * settings.errorRate;
  carryOk += n * (1 - settings.errorRate);
  const e = Math.floor(carryError);
  const o = Math.floor(carryOk);
  counts.error += e;
  counts.ok += o;
  carryError -= e;
  carryOk -= o;
}, tickMs).unref();

function metrics(): string {
  return [
    '# HELP demo_http_requests_total Simulated HTTP requests by status code.',
    '# TYPE demo_http_requests_total counter',
    `demo_http_requests_total{code="200"} ${counts.ok}`,
    `demo_http_requests_total{code="500"} ${counts.error}`,
    '# HELP demo_error_rate The error rate currently configured through /control.',
    '# TYPE demo_error_rate gauge',
    `demo_error_rate ${settings.errorRate}`,
    '# HELP demo_version_info The version currently configured through /control.',
    '# TYPE demo_version_info gauge',
    `demo_version_info{version="${settings.version.replace(/["\\\n]/g, '')}"} 1`,
    '',
  ].join('\n');
}

function applyControl(input: unknown): string | undefined {
  if (typeof input !== 'object' || input === null) return 'body must be a JSON object';
  const b = input as Record<string, unknown>;
  if (b.errorRate !== undefined) {
    if (typeof b.errorRate !== 'number' || b.errorRate < 0 || b.errorRate > 1) return 'errorRate must be a number in [0, 1]';
  }
  if (b.requestsPerSecond !== undefined) {
    if (typeof b.requestsPerSecond !== 'number' || b.requestsPerSecond < 0) return 'requestsPerSecond must be a number >= 0';
  }
  if (b.version !== undefined && typeof b.version !== 'string') return 'version must be a string';
  if (typeof b.errorRate === 'number') settings.errorRate = b.errorRate;
  if (typeof b.requestsPerSecond === 'number') settings.requestsPerSecond = b.requestsPerSecond;
  if (typeof b.version === 'string') settings.version = b.version;
  return undefined;
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/metrics' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics());
  } else if (url.pathname === '/control' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(settings));
  } else if (url.pathname === '/control' && req.method === 'POST') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      let error: string | undefined;
      try {
        error = applyControl(JSON.parse(body || '{}'));
      } catch {
        error = 'body is not JSON';
      }
      if (error) res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error }));
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(settings));
    });
  } else if (url.pathname === '/healthz') {
    res.writeHead(200).end('ok\n');
  } else {
    res.writeHead(404).end('not found\n');
  }
});

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
server.listen(port, '127.0.0.1', () => {
  const addr = server.address();
  console.log(`demo exporter listening on http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : port}`);
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => server.close(() => process.exit(0)));
