/**
 * The fleet simulator process, started by `npm run stack -- up` (scripts/stack/fleet.ts):
 *
 *   node scripts/fleet/main.ts --port P --chef-url URL --admin-name admin --admin-key FILE --dir .stack/fleet
 *
 * Serves the control API of scripts/fleet/api.ts on 127.0.0.1:P until SIGTERM (`stack down`).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { Fleet } from './fleet.ts';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'chef-url': { type: 'string' },
    'admin-name': { type: 'string', default: 'admin' },
    'admin-key': { type: 'string' },
    dir: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
  },
});
for (const k of ['port', 'chef-url', 'admin-key', 'dir'] as const) {
  if (!args[k]) {
    console.error(`fleet: --${k} is required`);
    process.exit(2);
  }
}

function log(msg: string): void {
  process.stdout.write(`${new Date().toISOString()} ${msg}\n`);
}

const fleet = new Fleet({
  chefUrl: args['chef-url']!,
  adminName: args['admin-name']!,
  adminKeyFile: args['admin-key']!,
  dir: args.dir!,
  concurrency: Number(args.concurrency),
  log,
});
const resumed = fleet.resume();
if (resumed) log(`resumed ${resumed} nodes from ${args.dir}/nodes.json`);

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function send(res: ServerResponse, status: number, data: unknown): void {
  const text = JSON.stringify(data);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://fleet');
  try {
    if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, { ok: true });
    if (req.method === 'GET' && url.pathname === '/stats') return send(res, 200, fleet.stats());
    if (req.method === 'GET' && url.pathname === '/nodes') {
      const q = url.searchParams;
      return send(res, 200, fleet.list({ prefix: q.get('prefix') ?? undefined, environment: q.get('environment') ?? undefined, names: q.get('names')?.split(',') }));
    }
    if (req.method === 'POST' && url.pathname === '/nodes') {
      const out = await fleet.add((await body(req)) as never);
      log(`added ${out.added.length} nodes: ${out.added.slice(0, 5).join(', ')}${out.added.length > 5 ? ', …' : ''}`);
      return send(res, 200, out);
    }
    if (req.method === 'POST' && url.pathname === '/nodes/fault') {
      const r = (await body(req)) as Record<string, unknown>;
      const out = fleet.fault(r as never);
      log(`fault ${JSON.stringify({ ...r, names: undefined })} on ${out.changed.length} nodes: ${out.changed.slice(0, 5).join(', ')}`);
      return send(res, 200, out);
    }
    if (req.method === 'POST' && url.pathname === '/nodes/remove') {
      const out = await fleet.remove((await body(req)) as never);
      log(`removed ${out.removed.length} nodes`);
      return send(res, 200, out);
    }
    send(res, 404, { error: `no such endpoint: ${req.method} ${url.pathname}` });
  } catch (err) {
    send(res, 400, { error: (err as Error).message });
  }
});

server.listen(Number(args.port), '127.0.0.1', () => log(`fleet simulator on http://127.0.0.1:${args.port}, Chef server ${args['chef-url']}`));

// one summary line a minute while something happens, so the log stays small with thousands of nodes
let lastRuns = 0;
setInterval(() => {
  const s = fleet.stats();
  if (s.runs === lastRuns) return;
  lastRuns = s.runs;
  log(`${s.nodes} nodes (${s.decommissioned} decommissioned), ${s.runs} runs (${s.failures} failed), ${s.requests} requests, cpu ${s.cpuSeconds.toFixed(1)}s, rss ${(s.rssBytes / 2 ** 20).toFixed(0)} MiB`);
}, 60_000).unref();

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping`);
    fleet.stop();
    server.close();
    setTimeout(() => process.exit(0), 200).unref();
  });
}
