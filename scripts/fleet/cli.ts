/**
 * `npm run stack -- nodes …`: drives the fleet simulator of the running stack (FLEET_URL from
 * .stack/env, or the stack's state when the variable is not set).
 *
 *   nodes add --environment ENV --run-list 'recipe[COOKBOOK]' [--count N] [--prefix P | --name N…]
 *             [--interval 10s] [--splay 5s] [--skew 60s] [--converge-time 2s] [--no-reporting] [--wait]
 *   nodes fault NAME… [--skew 60s | --skew=-2m] [--interval 4h] [--splay 5m] [--converge-time 30s]
 *             [--decommission | --resume | --clear]
 *   nodes remove NAME… | --prefix P | --environment ENV | --all
 *   nodes list [--environment ENV] [--prefix P] [--json]
 *   nodes stats
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../../release-spec/duration.ts';
import { loadState } from '../lib/state.ts';
import { FleetApi, formatNodes, type AddNodes, type FaultNodes } from './api.ts';

export const NODES_USAGE = `usage: npm run stack -- nodes <command>
  add --environment ENV --run-list 'recipe[COOKBOOK]' [--count N] [--prefix P | --name NAME …]
      [--interval 30m] [--splay 5m] [--skew 60s] [--converge-time 0s] [--no-reporting] [--wait]
  fault NAME… [--skew 60s] [--interval 4h] [--splay 5m] [--converge-time 30s] [--decommission | --resume | --clear]
  remove NAME… | --prefix P | --environment ENV | --all
  list [--environment ENV] [--prefix P] [--json]
  stats`;

/** "10s", "4h", "-2m" (skew may be negative) -> ms */
function duration(flag: string, text: string | undefined, signed = false): number | undefined {
  if (text === undefined) return undefined;
  const negative = signed && text.startsWith('-');
  const ms = parseDuration(negative || text.startsWith('+') ? text.slice(1) : text);
  if (ms === undefined) throw new Error(`--${flag} ${JSON.stringify(text)} is not a duration (write e.g. 10s, 5m, 4h${signed ? '; behind: --skew=-60s' : ''})`);
  return negative ? -ms : ms;
}

function api(): FleetApi {
  const url = process.env.FLEET_URL ?? loadState().fleet?.env.FLEET_URL;
  if (!url) throw new Error('the fleet simulator is not running: start the stack first (npm run stack -- up)');
  return new FleetApi(url);
}

export async function nodesCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values: v, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      environment: { type: 'string' },
      'run-list': { type: 'string' },
      count: { type: 'string' },
      prefix: { type: 'string' },
      name: { type: 'string', multiple: true },
      interval: { type: 'string' },
      splay: { type: 'string' },
      skew: { type: 'string' },
      'converge-time': { type: 'string' },
      'no-reporting': { type: 'boolean' },
      wait: { type: 'boolean' },
      decommission: { type: 'boolean' },
      resume: { type: 'boolean' },
      clear: { type: 'boolean' },
      all: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  switch (sub) {
    case 'add': {
      if (!v.environment || !v['run-list']) throw new Error(`nodes add needs --environment and --run-list\n${NODES_USAGE}`);
      const req: AddNodes = {
        environment: v.environment,
        runList: v['run-list'].split(',').map((s) => s.trim()).filter(Boolean),
        ...(v.name?.length || positionals.length ? { names: [...(v.name ?? []), ...positionals] } : { count: v.count ? Number(v.count) : 1 }),
        ...(v.prefix ? { prefix: v.prefix } : {}),
        ...(v.interval ? { intervalMs: duration('interval', v.interval)! } : {}),
        ...(v.splay ? { splayMs: duration('splay', v.splay)! } : {}),
        ...(v.skew ? { skewMs: duration('skew', v.skew, true)! } : {}),
        ...(v['converge-time'] ? { convergeMs: duration('converge-time', v['converge-time'])! } : {}),
        ...(v['no-reporting'] ? { reporting: false } : {}),
      };
      const fleet = api();
      const t0 = Date.now();
      const { added } = await fleet.add(req);
      console.log(`registered ${added.length} node${added.length === 1 ? '' : 's'} in ${req.environment} (${((Date.now() - t0) / 1000).toFixed(1)}s): ${added.slice(0, 10).join(', ')}${added.length > 10 ? `, … ${added.at(-1)}` : ''}`);
      if (v.wait) {
        const nodes = await fleet.waitFor({ names: added }, 'a first run on every node', (ns) => ns.every((n) => n.runs > 0));
        console.log(formatNodes(nodes));
      }
      return 0;
    }
    case 'fault': {
      if (positionals.length === 0) throw new Error(`nodes fault needs node names\n${NODES_USAGE}`);
      const req: FaultNodes = {
        names: positionals,
        ...(v.skew !== undefined ? { skewMs: duration('skew', v.skew, true)! } : {}),
        ...(v.interval ? { intervalMs: duration('interval', v.interval)! } : {}),
        ...(v.splay ? { splayMs: duration('splay', v.splay)! } : {}),
        ...(v['converge-time'] ? { convergeMs: duration('converge-time', v['converge-time'])! } : {}),
        ...(v.decommission ? { decommission: true } : {}),
        ...(v.resume ? { resume: true } : {}),
        ...(v.clear ? { clear: true } : {}),
      };
      if (Object.keys(req).length === 1) throw new Error(`nodes fault: say which fault (--skew, --interval, --splay, --converge-time, --decommission, --resume, --clear)\n${NODES_USAGE}`);
      const { changed } = await api().fault(req);
      console.log(`changed ${changed.length} node${changed.length === 1 ? '' : 's'}`);
      return 0;
    }
    case 'remove': {
      const { removed } = await api().remove({
        ...(positionals.length ? { names: positionals } : {}),
        ...(v.prefix ? { prefix: v.prefix } : {}),
        ...(v.environment ? { environment: v.environment } : {}),
        ...(v.all ? { all: true } : {}),
      });
      console.log(`removed ${removed.length} node${removed.length === 1 ? '' : 's'} (node and client objects deleted)`);
      return 0;
    }
    case 'list': {
      const nodes = await api().list({ ...(v.prefix ? { prefix: v.prefix } : {}), ...(v.environment ? { environment: v.environment } : {}), ...(positionals.length ? { names: positionals } : {}) });
      console.log(v.json ? JSON.stringify(nodes, null, 2) : nodes.length ? formatNodes(nodes) : 'no nodes');
      return 0;
    }
    case 'stats': {
      console.log(JSON.stringify(await api().stats(), null, 2));
      return 0;
    }
    default:
      console.error(NODES_USAGE);
      return 2;
  }
}
