/**
 * One chef-client run of one simulated node, over the real Chef API, in chef-client's order
 * (lib/chef/client.rb #run, policy_builder/expand_node_object.rb, resource_reporter.rb):
 *
 *   1. run_ohai: ohai_time = the node's own clock at the start of the run
 *   2. load_node: GET nodes/NAME (find_or_create: POST when missing); run list and environment
 *      come from the server's node object, as for chef-client
 *   3. run_started: reporting POST reports/nodes/NAME/runs {action: start}; a 404/406 (or any
 *      other error) turns reporting off for this run, as chef-client does
 *   4. sync_cookbooks: POST environments/ENV/cookbook_versions with the expanded run list (bare
 *      recipe names); then every file of the solved cookbooks that the node's cache does not hold
 *      with the manifest's checksum is downloaded and its MD5 checked; cookbooks no longer in
 *      the solved set leave the cache
 *   5. compile and converge the run list's recipes (see recipes.ts: `raise` fails the run)
 *   6. save_updated_node: PUT nodes/NAME with automatic = ohai data + cookbooks.NAME.version of
 *      the solved set — ONLY when everything above succeeded
 *   7. run_completed / run_failed: reporting POST reports/nodes/NAME/runs/RUN_ID {action: end,
 *      status success|failure, data.exception on failure}
 */
import { createHash, randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { seg, type ChefClient } from '../../activities/chef/client.ts';
import { REPORTING_HEADERS } from '../../activities/chef/reporting.ts';
import type { RunRecord } from './api.ts';
import { ohaiAttributes } from './ohai.ts';
import { compileRunList, parseRecipe, RunFailure, type RecipeFacts } from './recipes.ts';


/** What a run needs from the node it runs on. */
export interface RunnableNode {
  name: string;
  /** environment to create the node in, if the server has no node object */
  environment: string;
  /** run list to create the node with */
  runList: string[];
  reporting: boolean;
  convergeMs: number;
  bootMs: number;
  /** this node's signed client (its own key and clock) */
  chef: ChefClient;
  /** the node's clock, epoch ms */
  now(): number;
  /** cookbook -> (file path -> checksum) the node holds in its file cache */
  cache: Map<string, Map<string, string>>;
}

/** Hooks the fleet gives a run: a concurrency slot around the HTTP phases, and cancellation. */
export interface RunContext {
  signal: AbortSignal;
  /** the node was removed meanwhile: save and report nothing */
  removed(): boolean;
  /** releases the slot while converging; resolves when the run may talk to the server again */
  pause(ms: number): Promise<void>;
  countRequest(): void;
}

/**
 * Recipe files parsed once per checksum, so nodes on the same cookbook version share them. A node
 * only holds a path in its cache after downloading it in this process, which parsed it here.
 */
const recipeFacts = new Map<string, RecipeFacts>();

interface ManifestFile {
  name: string;
  path: string;
  checksum: string;
  url?: string;
  specificity?: string;
}
type SolvedCookbook = { version: string; all_files?: ManifestFile[] } & Record<string, unknown>;

const SEGMENTS = ['recipes', 'attributes', 'definitions', 'libraries', 'providers', 'resources', 'templates', 'files', 'root_files'];

function manifestFiles(cb: SolvedCookbook): ManifestFile[] {
  if (Array.isArray(cb.all_files)) return cb.all_files;
  return SEGMENTS.flatMap((s) => (Array.isArray(cb[s]) ? (cb[s] as ManifestFile[]) : []));
}

/** "2026-12-02 13:53:15 +0000": the only start_time/end_time format the reporting API takes. */
export function reportTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' +0000');
}

/** run_list items as the depsolver wants them: recipe[cb::r] -> "cb::r", recipe[cb] -> "cb". */
export function expandRunList(runList: readonly string[]): string[] {
  return runList.map((item) => {
    const m = /^recipe\[([^\]]+)\]$/.exec(item.trim());
    if (m) return m[1]!.replace(/@.*$/, '');
    if (/^role\[/.test(item)) throw new RunFailure('Chef::Exceptions::UnsupportedAction', `roles are not simulated (run list item ${item}): give recipes`);
    return item.trim();
  });
}

const failureMessage = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** A Chef API error as chef-client reports it: Net::HTTPClientException / Net::HTTPFatalError with the HTTP status line. */
function httpFailure(err: unknown, title: string): RunFailure {
  if (err instanceof RunFailure) return err;
  const details = err instanceof ApplicationFailure ? (err.details?.[0] as { status?: number } | undefined) : undefined;
  const status = details?.status;
  // ChefClient's message is "Chef server URL: METHOD object failed with STATUS (what the server said): what to do"
  const says = /failed with \d+ \((.*?)\): /s.exec(failureMessage(err))?.[1] ?? failureMessage(err);
  if (status === undefined) {
    // no HTTP answer at all: what Ruby's Net::HTTP would have raised
    const msg = failureMessage(err);
    const cls = /ECONNREFUSED/.test(msg) ? 'Errno::ECONNREFUSED' : /no answer within/.test(msg) ? 'Net::ReadTimeout' : 'SocketError';
    return new RunFailure(cls, msg, { title, sections: [] });
  }
  const phrase: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 412: 'Precondition Failed', 500: 'Internal Server Error', 503: 'Service Unavailable' };
  return new RunFailure(status >= 500 ? 'Net::HTTPFatalError' : 'Net::HTTPClientException', `${status} "${phrase[status] ?? 'Error'}"`, { title, sections: [{ 'Server Response': says }] });
}

async function asRunFailure<T>(title: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw httpFailure(err, title);
  }
}

/** The text a person reads for a failed run: "RuntimeError: boom" or the HTTP error with what the server said. */
export function describeFailure(f: RunFailure): string {
  const detail = f.description?.sections.map((s) => Object.values(s).join(' ')).join('; ');
  return f.cls.startsWith('Net::') && detail ? `${f.cls}: ${f.message}: ${detail}` : `${f.cls}: ${f.message}`;
}

export async function chefClientRun(node: RunnableNode, ctx: RunContext, record: (r: RunRecord) => void): Promise<RunRecord> {
  const { chef } = node;
  const { signal } = ctx;
  const startedAt = node.now();
  const run: RunRecord = { runId: randomUUID(), startedAt, status: 'running' };
  record(run);
  let reporting = node.reporting;
  let started = false;
  let runList = node.runList;
  const req = <T>(method: 'get' | 'post' | 'put', path: string, object: string, body?: unknown, headers?: Record<string, string>) => {
    ctx.countRequest();
    return chef[method]<T>(path, { object, signal, ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}) });
  };

  try {
    // 2. load_node
    type NodeObject = { name: string; chef_environment?: string; run_list?: string[]; normal?: unknown };
    const nodePath = `nodes/${seg(node.name)}`;
    let obj: NodeObject;
    try {
      obj = await req<NodeObject>('get', nodePath, `node ${node.name}`);
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === 'ChefNotFound')) throw httpFailure(err, 'Error loading the node:');
      obj = { name: node.name, chef_environment: node.environment, run_list: node.runList, normal: {} };
      await asRunFailure('Error creating the node:', () =>
        req('post', 'nodes', `node ${node.name}`, { ...obj, json_class: 'Chef::Node', chef_type: 'node', default: {}, override: {}, automatic: {} }),
      );
    }
    const environment = obj.chef_environment ?? '_default';
    runList = obj.run_list ?? [];

    // 3. run_started
    if (reporting) {
      try {
        await req('post', `reports/nodes/${seg(node.name)}/runs`, `run report of ${node.name}`, { action: 'start', run_id: run.runId, start_time: reportTime(startedAt) }, REPORTING_HEADERS);
        started = true;
      } catch {
        reporting = false; // "Reporting error starting run ... Disabling reporting for run."
      }
    }

    // 4. sync_cookbooks
    const expanded = expandRunList(runList);
    const solved = await asRunFailure('Error Resolving Cookbooks for Run List:', () =>
      req<Record<string, SolvedCookbook>>('post', `environments/${seg(environment)}/cookbook_versions`, `cookbook versions for ${node.name} in environment ${environment}`, { run_list: expanded }),
    );
    run.versions = Object.fromEntries(Object.entries(solved).map(([cb, v]) => [cb, v.version]));
    const recipesByCookbook = new Map<string, Map<string, string>>();
    for (const [cbName, cb] of Object.entries(solved)) {
      const cached = node.cache.get(cbName) ?? new Map<string, string>();
      const kept = new Map<string, string>();
      const recipes = new Map<string, string>();
      for (const file of manifestFiles(cb)) {
        const path = file.path ?? file.name;
        if (path.startsWith('recipes/') && path.endsWith('.rb')) recipes.set(path.slice('recipes/'.length, -3), file.checksum);
        // cached_copy_up_to_date?: the cache holds this path with the manifest's checksum
        if (cached.get(path) === file.checksum) {
          kept.set(path, file.checksum);
          continue;
        }
        if (!file.url) throw new RunFailure('Chef::Exceptions::CookbookChefVersionMismatch', `cookbook ${cbName} ${cb.version}: no URL for ${path}`);
        const bytes = await asRunFailure(`Error Syncing Cookbooks:`, () => {
          ctx.countRequest();
          // the server builds file URLs from its own host name; the path is what to ask for
          return chef.getBytes(new URL(file.url!).pathname, { object: `file ${path} of cookbook ${cbName} ${cb.version}`, signal });
        });
        const md5 = createHash('md5').update(bytes).digest('hex');
        if (md5 !== file.checksum) {
          throw new RunFailure('Chef::Exceptions::ChecksumMismatch', `Checksum mismatch on ${cbName}/${path}: expected ${file.checksum}, got ${md5}`);
        }
        if (path.startsWith('recipes/') && path.endsWith('.rb') && !recipeFacts.has(md5)) recipeFacts.set(md5, parseRecipe(bytes.toString('utf8')));
        kept.set(path, file.checksum);
      }
      node.cache.set(cbName, kept);
      recipesByCookbook.set(cbName, recipes);
    }
    for (const cbName of [...node.cache.keys()]) if (!(cbName in solved)) node.cache.delete(cbName); // remove_old_cookbooks

    // 5. compile and converge
    const compiled = compileRunList(expanded, new Set(Object.keys(solved)), (cb, recipe) => {
      const sum = recipesByCookbook.get(cb)?.get(recipe);
      return sum === undefined ? undefined : recipeFacts.get(sum);
    });
    const convergeMs = node.convergeMs + compiled.sleepSeconds * 1000;
    if (convergeMs > 0) await ctx.pause(convergeMs);
    if (ctx.removed()) throw new RunFailure('SignalException', 'SIGTERM (the node was removed)');

    // 6. save_updated_node: only a successful run gets here
    const cookbooks = Object.fromEntries(Object.entries(solved).map(([cb, v]) => [cb, { version: v.version }]));
    const saved = {
      name: node.name,
      chef_environment: environment,
      json_class: 'Chef::Node',
      chef_type: 'node',
      run_list: runList,
      normal: obj.normal ?? {},
      default: {},
      override: {},
      automatic: { ...ohaiAttributes({ name: node.name, nowMs: startedAt, bootMs: node.bootMs }), cookbooks },
    };
    try {
      await req('put', nodePath, `node ${node.name}`, saved);
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === 'ChefNotFound')) throw httpFailure(err, 'Error saving the node:');
      await asRunFailure('Error saving the node:', () => req('post', 'nodes', `node ${node.name}`, saved));
    }
    run.status = 'success';
    run.endedAt = node.now();
    if (reporting && started) {
      run.reported = await postEnd(req, node.name, run, { status: 'success', resources: compiled.resources, runList });
    }
    return run;
  } catch (err) {
    const failure = err instanceof RunFailure ? err : httpFailure(err, 'Unexpected error:');
    run.status = 'failure';
    run.error = describeFailure(failure);
    run.endedAt = node.now();
    if (reporting && started && !ctx.removed()) {
      run.reported = await postEnd(req, node.name, run, { status: 'failure', resources: 0, runList, failure });
    }
    return run;
  } finally {
    record(run);
  }
}

async function postEnd(
  req: (method: 'post', path: string, object: string, body: unknown, headers: Record<string, string>) => Promise<unknown>,
  name: string,
  run: RunRecord,
  o: { status: 'success' | 'failure'; resources: number; runList: string[]; failure?: RunFailure },
): Promise<boolean> {
  const data: Record<string, unknown> = {};
  if (o.failure) {
    data.exception = {
      class: `#<${o.failure.cls}: ${o.failure.message}>`,
      message: o.failure.message,
      backtrace: '[]',
      description: o.failure.description ?? { title: `${o.failure.cls}: ${o.failure.message}`, sections: [] },
    };
  }
  try {
    await req('post', `reports/nodes/${seg(name)}/runs/${run.runId}`, `run report of ${name}`, {
      action: 'end',
      status: o.status,
      resources: [],
      run_list: JSON.stringify(o.runList),
      total_res_count: String(o.resources),
      data,
      start_time: reportTime(run.startedAt),
      end_time: reportTime(run.endedAt!),
    }, REPORTING_HEADERS);
    return true;
  } catch {
    return false; // chef-client logs "Failed to post reporting data to server" and goes on
  }
}
