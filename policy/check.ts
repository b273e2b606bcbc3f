/**
 * Admission of a whole release against the policy of its app: every target, credential,
 * reference, gate host and webhook, and whether someone can answer its approval pauses.
 * Each problem names the spec path and the policy rule.
 */
import { lookup } from 'node:dns/promises';
import type { PlanStep } from '../release-spec/plan.ts';
import type { ReleaseSpec } from '../release-spec/schema.ts';
import { type AppScope, type ValueRef } from './scope.ts';

export interface Violation {
  path: string;
  message: string;
}

export function checkSpec(scope: AppScope, spec: ReleaseSpec, plan: PlanStep[]): Violation[] {
  if (scope.unknownApp) return [{ path: 'spec.app', message: scope.unknownApp }];
  const out: Violation[] = [];
  const add = (path: string, why: string | undefined) => {
    if (why) out.push({ path, message: why });
  };
  const body = spec.spec;

  body.flux.forEach((t, i) => add(`spec.flux[${i}]`, scope.kube({ kind: t.kind, namespace: t.namespace, name: t.name, ...(t.context ? { context: t.context } : {}) })));
  // Git mode: the file and the push credentials now; the repository and branch (read from the cluster) when the worker commits
  body.flux.forEach((t, i) => {
    if (!t.git) return;
    add(`spec.flux[${i}].git.path`, scope.gitPath(t.git.path));
    if (t.git.credentials) add(`spec.flux[${i}].git.credentials.passwordFrom`, scope.reference(t.git.credentials.passwordFrom as ValueRef));
  });
  if (body.canary) {
    const ing = body.canary.ingress;
    add('spec.canary.ingress', scope.kube({ kind: 'Ingress', namespace: ing.namespace, name: ing.name, ...(ing.context ? { context: ing.context } : {}) }));
  }
  body.chef.forEach((t, i) => scope.chef(t).forEach((why) => add(`spec.chef[${i}]`, why)));

  for (const [name, g] of Object.entries(body.gates)) {
    const at = `spec.gates.${name}`;
    if (g.rollout) add(`${at}.rollout`, scope.kube({ kind: 'Deployment', namespace: g.rollout.namespace, name: g.rollout.name, ...(g.rollout.context ? { context: g.rollout.context } : {}) }));
    if (g.prometheus) add(`${at}.prometheus.url`, scope.destination(g.prometheus.url));
    if (g.http) {
      add(`${at}.http.url`, scope.destination(g.http.url));
      for (const [h, ref] of Object.entries(g.http.headers ?? {})) add(`${at}.http.headers.${h}`, scope.reference(ref as ValueRef));
      if (g.http.caFile) add(`${at}.http.caFile`, scope.reference({ file: g.http.caFile }));
      if (g.http.insecureSkipVerify && Object.keys(g.http.headers ?? {}).length > 0) {
        add(`${at}.http.insecureSkipVerify`, 'a gate that sends headers must verify TLS: without it the header values go to whoever answers (give caFile instead)');
      }
    }
  }
  body.notifications.webhooks.forEach((w, i) => add(`spec.notifications.webhooks[${i}].urlFrom`, scope.reference(w.urlFrom as ValueRef)));

  const policyApprovers = scope.approvers();
  const narrowed = body.approvals.approvers;
  narrowed.forEach((who, i) => {
    if (!policyApprovers.includes(who)) add(`spec.approvals.approvers[${i}]`, `${who} is not among the ${scope.rule('approvers')} (a spec can only narrow that list: ${policyApprovers.join(', ') || 'nobody'})`);
  });
  const waitsForever = plan.some((s) => s.kind === 'pause' && s.durationMs === undefined && s.deadlineMs === undefined);
  if (waitsForever && effectiveApprovers(scope, narrowed).length === 0) {
    add('spec.steps', `the plan waits for approval, but nobody may approve: the ${scope.rule('approvers')} name nobody${narrowed.length ? ' the spec allows' : ''}`);
  }
  return out;
}

/** The policy's approvers of the app, narrowed by the spec's list when it has one. */
export function effectiveApprovers(scope: AppScope, narrowed: readonly string[]): string[] {
  const all = scope.approvers();
  return narrowed.length ? all.filter((a) => narrowed.includes(a)) : all;
}

/**
 * Where the gate hosts resolve to, now: an allowed name that resolves to a special address is
 * refused before anything changes (the connection is checked again when it is made). A name that
 * does not resolve yet is not a refusal: the gate waits for it.
 */
export async function checkResolvedHosts(scope: AppScope, spec: ReleaseSpec): Promise<Violation[]> {
  const out: Violation[] = [];
  const guard = scope.guard();
  for (const [name, g] of Object.entries(spec.spec.gates)) {
    const url = g.http?.url ?? g.prometheus?.url;
    if (!url) continue;
    const u = new URL(url);
    const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
    if (guard.checkHost(u.hostname, port)) continue; // already reported by checkSpec
    let addresses: { address: string }[];
    try {
      addresses = await lookup(u.hostname.replace(/^\[|\]$/g, ''), { all: true });
    } catch {
      continue;
    }
    for (const a of addresses) {
      const why = guard.checkAddress(a.address, port, u.hostname);
      if (why) {
        out.push({ path: `spec.gates.${name}.${g.http ? 'http' : 'prometheus'}.url`, message: why });
        break;
      }
    }
  }
  return out;
}
