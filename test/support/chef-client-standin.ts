/**
 * Plays chef-client on a set of nodes, for tests and the demo (no VMs run here): once the
 * environment pins the cookbook to a version, each node "runs" and reports, through the real
 * Chef server, an `ohai_time` after the pin and the cookbook version it converged to — as a
 * chef-client run would. Nodes listed in `lagging` never run.
 */
import type { ChefClient } from '../../activities/chef/client.ts';
import { registerNodes } from './chef-fixtures.ts';

export interface ConvergeOptions {
  environment: string;
  cookbook: string;
  version: string;
  nodes: string[];
  lagging?: string[];
  timeoutMs?: number;
  signal?: AbortSignal;
}

export async function convergeWhenPinned(chef: ChefClient, o: ConvergeOptions): Promise<void> {
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  const pinned = async () =>
    (await chef.get<{ cookbook_versions: Record<string, string> }>(`environments/${o.environment}`, { object: `environment ${o.environment}` })).cookbook_versions[o.cookbook];
  while ((await pinned()) !== `= ${o.version}`) {
    if (Date.now() > deadline) throw new Error(`${o.cookbook} was never pinned to ${o.version} in ${o.environment}`);
    if (o.signal?.aborted) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  const running = o.nodes.filter((n) => !o.lagging?.includes(n));
  await registerNodes(chef, running.map((name) => ({ name, environment: o.environment, ohaiTime: Date.now() / 1000 + 1, cookbooks: { [o.cookbook]: o.version } })));
}
