/**
 * The plan: a validated spec expanded into the ordered steps the workflow runs, each with the
 * sentence a person would write in a release plan ("pin api_gateway ~> 2.1.0 in production").
 * Pure code with type-only imports, so the workflow bundle can use it without zod.
 */
import { formatDuration, parseDuration } from './duration.ts';
import { redactUrl } from './safe.ts';
import type { ChefTarget, FluxTarget, GateSpec, ReleaseSpec, StepSpec } from './schema.ts';

export type PlanStep =
  | { kind: 'chef'; target: string; summary: string }
  | { kind: 'flux'; target: string; summary: string }
  | { kind: 'setWeight'; weight: number; summary: string }
  | { kind: 'pause'; durationMs?: number; deadlineMs?: number; onTimeout?: 'abort' | 'promote'; summary: string }
  | { kind: 'gate'; gates: string[]; summary: string };

/** What the workflow is started with: the spec (target ids filled in) and its expanded plan. */
export interface ReleaseInput {
  spec: ReleaseSpec;
  plan: PlanStep[];
  /** true when the spec had no steps and got the default plan */
  defaultPlan: boolean;
  /** who started the release (CI job, user), for the audit trail */
  startedBy?: string;
  /** base URL of the Temporal UI, for links in notifications */
  uiUrl?: string;
  /**
   * Set by the worker's admission only (never taken from the caller): who may decide on this
   * release, from the worker's policy (narrowed by spec.approvals.approvers when that is set).
   */
  approvers?: string[];
}

export function chefSummary(t: ChefTarget): string {
  const pins = Object.entries(t.cookbooks).map(([cb, c]) => `${cb} ${c}`).join(', ');
  return `pin ${pins} in ${t.environment}`;
}

export function fluxSummary(t: FluxTarget): string {
  const where = `${t.kind} ${t.namespace}/${t.name}${t.context ? ` (${t.context})` : ''}`;
  const what =
    t.kind === 'Kustomization'
      ? t.images.map((i) => (i.digest ? `${i.newName ?? i.name}@${i.digest.slice(0, 19)}…` : `${i.newName ?? i.name}:${i.newTag}`)).join(', ')
      : t.values.map((v) => `${v.path}=${v.value}`).join(', ');
  // Git mode changes the file Flux reads; live mode the object in the cluster
  return t.git ? `commit ${what} to ${t.git.path} for ${where}` : `set ${what} on ${where}`;
}

export function gateSummary(name: string, g: GateSpec): string {
  if (g.fluxReady) return `${name}: Flux Ready for ${g.fluxReady.target}`;
  if (g.rollout) return `${name}: rollout of deployment ${g.rollout.namespace}/${g.rollout.name}`;
  if (g.http) return `${name}: GET ${redactUrl(g.http.url)} answers ${g.http.expectStatus}`;
  if (g.prometheus) return `${name}: ${g.prometheus.query} ${g.prometheus.comparison} ${g.prometheus.threshold}`;
  if (g.chefConvergence) return `${name}: ${g.chefConvergence.minPercent}% of ${g.chefConvergence.target} nodes converged`;
  return name;
}

const weightText = (w: number, total: number) => (total === 100 ? `${w}%` : `${w}/${total}`);

/** Expands a validated spec into its plan; without explicit steps: apply Chef, apply Flux, gate. */
export function buildPlan(spec: ReleaseSpec): { plan: PlanStep[]; defaultPlan: boolean } {
  const body = spec.spec;
  const flux = new Map(body.flux.map((t) => [t.id, t]));
  const chef = new Map(body.chef.map((t) => [t.id, t]));
  const total = body.canary?.weightTotal ?? 100;

  const steps: StepSpec[] =
    body.steps ??
    [
      ...body.chef.map((t) => ({ chef: t.id })),
      ...body.flux.map((t) => ({ flux: t.id })),
      ...(Object.keys(body.gates).length ? [{ gate: Object.keys(body.gates) }] : []),
    ];

  let lastWeight: number | undefined;
  const plan = steps.map((s): PlanStep => {
    if (s.chef !== undefined) return { kind: 'chef', target: s.chef, summary: chefSummary(chef.get(s.chef)!) };
    if (s.flux !== undefined) return { kind: 'flux', target: s.flux, summary: fluxSummary(flux.get(s.flux)!) };
    if (s.setWeight !== undefined) {
      lastWeight = s.setWeight;
      return { kind: 'setWeight', weight: s.setWeight, summary: `canary ${weightText(s.setWeight, total)}` };
    }
    if (s.gate !== undefined) {
      const gates = Array.isArray(s.gate) ? s.gate : [s.gate];
      return { kind: 'gate', gates, summary: `check ${gates.join(', ')}` };
    }
    const p = s.pause ?? {};
    const durationMs = p.duration ? parseDuration(p.duration) : undefined;
    const deadlineMs = p.deadline ? parseDuration(p.deadline) : undefined;
    const holding = lastWeight !== undefined ? `canary ${weightText(lastWeight, total)} ` : '';
    if (durationMs !== undefined) {
      return { kind: 'pause', durationMs, summary: `${holding ? `hold ${holding}` : 'pause '}for ${formatDuration(durationMs)}` };
    }
    const summary = `${holding ? `hold ${holding}and ` : ''}wait for approval${deadlineMs !== undefined ? ` (${p.onTimeout} after ${formatDuration(deadlineMs)})` : ''}`;
    return deadlineMs !== undefined ? { kind: 'pause', deadlineMs, onTimeout: p.onTimeout!, summary } : { kind: 'pause', summary };
  });
  return { plan, defaultPlan: body.steps === undefined };
}

/** Gate timing in milliseconds, as the activities take it. */
export function gateTiming(g: GateSpec): { timeoutMs: number; intervalMs: number; successes: number } {
  return { timeoutMs: parseDuration(g.timeout)!, intervalMs: parseDuration(g.interval)!, successes: g.successes };
}
