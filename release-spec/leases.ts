/**
 * The shared targets a release leases (docs/leases.md), as canonical keys. Pure code with
 * type-only imports: the workflow computes the keys, the lease activity names the workflows.
 *
 * Keys sort in one global order; every release takes its leases in that order, and only asks for
 * a key once it holds every key before it, so two releases can never wait for each other.
 */
import type { PlanStep } from './plan.ts';
import type { ReleaseSpec } from './schema.ts';

export interface LeaseTarget {
  key: string;
  /** e.g. "Chef environment production on chef.example" */
  label: string;
}

const host = (url: string) => {
  const m = /^[a-z]+:\/\/([^/?#]+)/i.exec(url);
  return (m ? m[1]! : url).replace(/^[^@]*@/, '');
};
const server = (url: string) => url.replace(/\/+$/, '');
const cluster = (context?: string) => (context ? ` in ${context}` : '');

/** Chef (server, environment); Flux object (cluster, kind, namespace, name); canary Ingress (cluster, namespace, name). Sorted, no duplicates. */
export function leaseTargets(spec: ReleaseSpec, plan: readonly PlanStep[]): LeaseTarget[] {
  const body = spec.spec;
  const out = new Map<string, LeaseTarget>();
  for (const t of body.chef) {
    out.set(`chef|${server(t.serverUrl)}|${t.environment}`, { key: `chef|${server(t.serverUrl)}|${t.environment}`, label: `Chef environment ${t.environment} on ${host(t.serverUrl)}` });
  }
  for (const t of body.flux) {
    const key = `flux|${t.context ?? ''}|${t.kind}|${t.namespace}|${t.name}`;
    out.set(key, { key, label: `${t.kind} ${t.namespace}/${t.name}${cluster(t.context)}` });
  }
  if (body.canary && plan.some((s) => s.kind === 'setWeight')) {
    const i = body.canary.ingress;
    const key = `ingress|${i.context ?? ''}|${i.namespace}|${i.name}`;
    out.set(key, { key, label: `canary Ingress ${i.namespace}/${i.name}${cluster(i.context)}` });
  }
  return [...out.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * One lease workflow per task queue and target: releases served by one worker fleet exclude each
 * other, and a lease never waits for a worker that does not exist (test queues come and go).
 */
export const leaseWorkflowId = (taskQueue: string, key: string) => `lease/${taskQueue}/${key}`;
