/**
 * The stack's source server: what GitHub and a chart repository are to a real cluster.
 *
 *   node scripts/source-server.ts --port P --root DIR
 *
 * - Git over smart HTTP at http://127.0.0.1:P/git/<name>.git: a CGI bridge to git's own
 *   `git-http-backend`, so clone, fetch (source-controller's GitRepository) and push all speak
 *   the real protocol. Repositories live in DIR/git/<name>.git. A push to a repository that does
 *   not exist yet creates it (bare, branch main), so test seeding and later issues only need the URL.
 *   Reading needs no credentials (source-controller fetches anonymously, as from a public
 *   repository). Pushing does when `--push-credentials FILE` is given (lines `user:password`): a
 *   push without HTTP basic auth matching a line gets 401, as a Git host answers a push without a
 *   token; without the option anyone on loopback may push.
 * - A static Helm repository at http://127.0.0.1:P/charts/<repo>/: `index.yaml` and the chart
 *   archives, from DIR/charts/<repo>/. `PUT /charts/<repo>/<name>-<version>.tgz` stores a packed
 *   chart and rewrites that repository's index.yaml (each chart's Chart.yaml read from its archive
 *   with tar, digests sha256), the way `helm repo index` would.
 * - GET /healthz answers 200.
 */
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';

const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';
const run = promisify(execFile);

const { values: args } = parseArgs({ options: { port: { type: 'string' }, root: { type: 'string' }, 'push-credentials': { type: 'string' } } });
if (!args.port || !args.root) {
  console.error('usage: node scripts/source-server.ts --port P --root DIR');
  process.exit(2);
}
const root = resolve(args.root);
const gitRoot = join(root, 'git');
const chartsRoot = join(root, 'charts');
mkdirSync(gitRoot, { recursive: true });
mkdirSync(chartsRoot, { recursive: true });

const log = (msg: string) => console.log(`${new Date().toISOString()} ${msg}`);

/** user -> password of who may push; undefined: anyone may. Read at each push, so rotation needs no restart. */
function pushUsers(): Map<string, string> | undefined {
  if (!args['push-credentials']) return undefined;
  const users = new Map<string, string>();
  for (const line of readFileSync(args['push-credentials'], 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) users.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return users;
}

/** The authenticated pusher, or undefined when the request's basic auth matches no line. */
function pusher(req: IncomingMessage, users: Map<string, string>): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  const [user, password] = i < 0 ? [decoded, ''] : [decoded.slice(0, i), decoded.slice(i + 1)];
  return users.get(user) !== undefined && users.get(user) === password ? user : undefined;
}

/** `<name>.git` with name made of lower-case letters, digits, `-`, `_`, `.` and `/` (no `..`). */
const REPO = /^\/git\/((?:[a-z0-9][a-z0-9._-]*\/)*[a-z0-9][a-z0-9._-]*\.git)(\/.*)$/;
/** `/charts/<repo>/<file>` */
const CHART = /^\/charts\/([a-z0-9][a-z0-9._-]*)\/([A-Za-z0-9][A-Za-z0-9._+-]*)$/;

function fail(res: ServerResponse, code: number, message: string): void {
  res.writeHead(code, { 'content-type': 'text/plain' });
  res.end(`${message}\n`);
}

async function git(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const m = REPO.exec(url.pathname);
  if (!m || m[1]!.split('/').includes('..')) return fail(res, 404, 'not a repository path: /git/<name>.git/...');
  const repo = m[1]!;
  const dir = join(gitRoot, repo);
  const pushing = url.searchParams.get('service') === 'git-receive-pack' || m[2] === '/git-receive-pack';
  let user = 'anonymous';
  const users = pushing ? pushUsers() : undefined;
  if (users) {
    const who = pusher(req, users);
    if (!who) {
      log(`${req.method} ${url.pathname}: push refused, no valid credentials`);
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Basic realm="hybrid-release git"' });
      res.end('pushing needs credentials\n');
      return;
    }
    user = who;
  }
  if (!existsSync(dir)) {
    if (!pushing) return fail(res, 404, `repository ${repo} does not exist (push to it to create it)`);
    mkdirSync(dir, { recursive: true });
    await run('git', ['init', '--quiet', '--bare', '--initial-branch=main', dir]);
    log(`created ${repo}`);
  }
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_METHOD: req.method,
    PATH_INFO: `/${repo}${m[2]}`,
    QUERY_STRING: url.search.slice(1),
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    // receive-pack (push) is enabled by git-http-backend only for an authenticated user
    REMOTE_USER: user,
    GIT_PROJECT_ROOT: gitRoot,
    GIT_HTTP_EXPORT_ALL: '1',
  };
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
  if (req.headers['git-protocol']) env.HTTP_GIT_PROTOCOL = String(req.headers['git-protocol']);

  const cgi = spawn(GIT_HTTP_BACKEND, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  req.pipe(cgi.stdin);
  let stderr = '';
  cgi.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // CGI output: header lines, a blank line, then the body
  let head = Buffer.alloc(0);
  let headersDone = false;
  cgi.stdout.on('data', (chunk: Buffer) => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const text = head.toString('latin1');
    const crlf = text.indexOf('\r\n\r\n');
    const lf = text.indexOf('\n\n');
    const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
    if (end < 0) return;
    headersDone = true;
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of text.slice(0, end).split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const name = line.slice(0, i).trim();
      const value = line.slice(i + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 200;
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    const body = head.subarray(end + (end === crlf ? 4 : 2));
    if (body.length) res.write(body);
  });
  cgi.once('close', (code) => {
    if (!headersDone) fail(res, 502, `git-http-backend exited ${code} without a response: ${stderr.trim()}`);
    else res.end();
    if (code !== 0 || stderr.trim()) log(`${req.method} ${url.pathname}${url.search}: git-http-backend exit ${code} ${stderr.trim()}`);
  });
  cgi.once('error', (err) => fail(res, 502, `git-http-backend: ${err.message}`));
}

/** One index rewrite at a time per repository. */
const indexing = new Map<string, Promise<void>>();

async function writeIndex(repoDir: string): Promise<void> {
  const entries: Record<string, Record<string, unknown>[]> = {};
  for (const file of readdirSync(repoDir).filter((f) => f.endsWith('.tgz')).sort()) {
    const path = join(repoDir, file);
    // the archive's top-level directory is the chart's name: <name>/Chart.yaml
    const { stdout: list } = await run('tar', ['-tzf', path]);
    const chartYaml = list.split('\n').find((l) => /^[^/]+\/Chart\.yaml$/.test(l));
    if (!chartYaml) throw new Error(`${file}: no <chart>/Chart.yaml inside`);
    const { stdout } = await run('tar', ['-xzOf', path, chartYaml]);
    const chart = parse(stdout) as Record<string, unknown> & { name: string; version: string };
    const digest = createHash('sha256').update(readFileSync(path)).digest('hex');
    (entries[chart.name] ??= []).push({ ...chart, created: statSync(path).mtime.toISOString(), digest, urls: [file] });
  }
  const tmp = join(repoDir, `.index.yaml.${process.pid}`);
  writeFileSync(tmp, stringify({ apiVersion: 'v1', entries, generated: new Date().toISOString() }));
  renameSync(tmp, join(repoDir, 'index.yaml'));
}

async function charts(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const m = CHART.exec(url.pathname);
  if (!m) return fail(res, 404, 'not a chart repository path: /charts/<repo>/<file>');
  const [, repo, file] = m as unknown as [string, string, string];
  const repoDir = join(chartsRoot, repo);
  const path = join(repoDir, file);
  if (!path.startsWith(repoDir + sep)) return fail(res, 404, 'bad path');
  if (req.method === 'PUT') {
    if (!file.endsWith('.tgz')) return fail(res, 400, 'only <name>-<version>.tgz archives can be uploaded');
    mkdirSync(repoDir, { recursive: true });
    const body: Buffer[] = [];
    for await (const chunk of req) body.push(chunk as Buffer);
    const tmp = `${path}.upload-${process.pid}-${Date.now()}`;
    writeFileSync(tmp, Buffer.concat(body));
    renameSync(tmp, path);
    const previous = indexing.get(repo) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => writeIndex(repoDir));
    indexing.set(repo, next);
    try {
      await next;
    } catch (err) {
      return fail(res, 400, `stored ${file} but cannot index it: ${(err as Error).message}`);
    }
    log(`published charts/${repo}/${file}`);
    res.writeHead(201, { 'content-type': 'text/plain' });
    res.end(`stored ${file}; index.yaml rewritten\n`);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return fail(res, 405, 'GET, HEAD or PUT');
  if (!existsSync(path)) return fail(res, 404, `${repo}/${file} not found`);
  res.writeHead(200, {
    'content-type': file.endsWith('.yaml') ? 'application/x-yaml' : file.endsWith('.tgz') ? 'application/gzip' : 'application/octet-stream',
    'content-length': statSync(path).size,
  });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(path).pipe(res);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const handle = url.pathname === '/healthz'
    ? Promise.resolve(void res.end('ok\n'))
    : url.pathname.startsWith('/git/')
      ? git(req, res, url)
      : url.pathname.startsWith('/charts/')
        ? charts(req, res, url)
        : Promise.resolve(fail(res, 404, 'paths: /git/<name>.git, /charts/<repo>/<file>, /healthz'));
  handle.catch((err: Error) => {
    log(`${req.method} ${url.pathname}: ${err.stack ?? err.message}`);
    if (!res.headersSent) fail(res, 500, err.message);
    else res.destroy(err);
  });
});
server.listen(Number(args.port), '127.0.0.1', () => log(`source server on http://127.0.0.1:${args.port} (git: ${gitRoot}, charts: ${chartsRoot})`));
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
