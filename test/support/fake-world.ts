/**
 * An in-memory stand-in for Chef, Flux and the canary Ingress, with the same activity names and
 * shapes as the real ones. Used only by the workflow-logic tests, which exercise the saga, the
 * canary and human control on a real Temporal server with failures injected at will. The
 * activities themselves are tested against the real servers elsewhere.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { GateResult } from '../../activities/gates/result.ts';
import { validateSpec } from '../../release-spec/load.ts';
import type { ReleaseInput } from '../../release-spec/plan.ts';

type Pins = Record<string, string | null>;
interface Image { name: string; newTag?: string; digest?: string }

export interface World {
  chef: Record<string, Pins>; // environment -> cookbook -> constraint
  images: Record<string, Image[]>; // kustomization name -> images
  weight: number | null;
  calls: string[];
  /** activity name -> how many more calls fail (non-retryable unless `retryable`) */
  failures: Record<string, { times: number; message: string; retryable?: boolean }>;
  /** gate name -> outcome */
  gateOutcome: Record<string, 'pass' | 'fail'>;
  /** the Kustomization's generation, moved by every pin and unpin */
  generation: number;
  /** the canary Ingress's annotations beyond the weight (null = absent) */
  canaryFlag: string | null;
  weightTotal: string | null;
  /** activity name -> ms a write takes (it heartbeats meanwhile and lands at the end, even when cancelled) */
  slow: Record<string, number>;
  /** the events the notify activity was asked to send */
  events: Array<{ phase: string; summary: string }>;
}

export function newWorld(): World {
  return {
    chef: { production: { api_gateway: '= 2.0.0' } },
    images: { storefront: [{ name: 'ghcr.io/acme/web', newTag: '2.0.0' }] },
    weight: null,
    calls: [],
    failures: {},
    gateOutcome: {},
    generation: 1,
    canaryFlag: null,
    weightTotal: null,
    slow: {},
    events: [],
  };
}

export function fakeActivities(world: World) {
  const enter = (name: string) => {
    world.calls.push(name);
    const f = world.failures[name];
    if (f && f.times > 0) {
      f.times--;
      throw ApplicationFailure.create({ message: f.message, type: 'Injected', nonRetryable: !f.retryable });
    }
  };
  const gate = (name: string, kind: string): GateResult => {
    enter(`${kind}:${name}`);
    const ok = world.gateOutcome[name] !== 'fail';
    const result = { gate: name, kind, ok, observed: ok ? 1 : 0, reason: ok ? 'healthy' : 'error rate 0.2 is not < 0.01', checks: 1, elapsedMs: 1 };
    if (!ok) throw ApplicationFailure.create({ type: 'GateFailed', message: `gate ${name} (${kind}) failed: ${result.reason}`, nonRetryable: true, details: [result] });
    return result;
  };
  /** a write that takes a while: heartbeats, and once sent it lands, cancelled or not (as the real writes) */
  const slowly = async (name: string) => {
    const ms = world.slow[name];
    if (!ms) return;
    const ctx = Context.current();
    const end = Date.now() + ms;
    while (Date.now() < end) {
      ctx.heartbeat();
      await new Promise((r) => setTimeout(r, Math.min(100, end - Date.now())));
    }
  };
  const conflict = (message: string) => ApplicationFailure.create({ type: 'UndoConflict', message, nonRetryable: true });
  const pins = (env: string, names: string[]): Pins => Object.fromEntries(names.map((n) => [n, world.chef[env]?.[n] ?? null]));

  return {
    async chefPreflight(t: { environment: string; cookbooks: Pins }) {
      enter('chefPreflight');
      if (!world.chef[t.environment]) throw ApplicationFailure.create({ type: 'ChefNotFound', message: `environment ${t.environment} not found`, nonRetryable: true });
      return { environment: t.environment, current: pins(t.environment, Object.keys(t.cookbooks)), matching: {} };
    },
    async chefSnapshot(t: { environment: string; cookbooks: Pins }) {
      enter('chefSnapshot');
      return pins(t.environment, Object.keys(t.cookbooks));
    },
    async chefPin(t: { environment: string; cookbooks: Record<string, string> }) {
      const before = pins(t.environment, Object.keys(t.cookbooks));
      enter('chefPin');
      await slowly('chefPin');
      Object.assign(world.chef[t.environment]!, t.cookbooks);
      return { previous: before, landedAt: Date.now() };
    },
    async chefRestore(i: { target: { environment: string }; previous: Pins; written?: Record<string, string> }) {
      enter('chefRestore');
      const env = world.chef[i.target.environment]!;
      for (const [cb, c] of Object.entries(i.previous)) {
        const now = env[cb] ?? null;
        if (i.written && now !== (i.written[cb] ?? null) && now !== c) throw conflict(`cookbook_versions.${cb} in environment ${i.target.environment} is ${JSON.stringify(now)}, not ${JSON.stringify(i.written[cb])} as this release wrote: changed outside this release`);
      }
      for (const [cb, c] of Object.entries(i.previous)) {
        if (c === null) delete env[cb];
        else env[cb] = c;
      }
    },
    async chefConvergenceGate(i: { gate: string }) {
      return gate(i.gate, 'chefConvergence');
    },
    async fluxPreflight(t: { name: string }) {
      enter('fluxPreflight');
      if (!world.images[t.name]) throw ApplicationFailure.create({ type: 'NotFound', message: `Kustomization ${t.name} not found`, nonRetryable: true });
      return { generation: 1, suspended: false as const };
    },
    async fluxSnapshot(t: { name: string; images: Image[] }) {
      enter('fluxSnapshot');
      const current = world.images[t.name]!;
      return { kind: 'Kustomization' as const, images: Object.fromEntries(t.images.map((i) => [i.name, current.find((c) => c.name === i.name) ?? null])) };
    },
    async fluxApply(i: { target: { name: string; images: Image[] }; token: string }) {
      enter('fluxApply');
      const current = world.images[i.target.name]!;
      const before = Object.fromEntries(i.target.images.map((img) => [img.name, current.find((c) => c.name === img.name) ?? null]));
      world.images[i.target.name] = [...current.filter((c) => !i.target.images.some((n) => n.name === c.name)), ...i.target.images];
      return { kind: 'Kustomization' as const, images: before };
    },
    async fluxPin(i: { target: { name: string; images: Image[] }; token: string }) {
      enter('fluxPin');
      await slowly('fluxPin');
      const current = world.images[i.target.name]!;
      const before = Object.fromEntries(i.target.images.map((img) => [img.name, current.find((c) => c.name === img.name) ?? null]));
      world.images[i.target.name] = [...current.filter((c) => !i.target.images.some((n) => n.name === c.name)), ...i.target.images];
      world.generation++;
      return { previous: { kind: 'Kustomization' as const, images: before }, written: { token: i.token, generation: world.generation, specChanged: true } };
    },
    async fluxUnpin(i: { target: { name: string; images: Image[] }; previous: { images: Record<string, Image | null> }; token: string; guard?: boolean }) {
      enter('fluxUnpin');
      let current = world.images[i.target.name]!;
      for (const want of i.guard ? i.target.images : []) {
        const now = current.find((c) => c.name === want.name);
        const before = i.previous.images[want.name] ?? null;
        if (now?.newTag !== want.newTag && now?.newTag !== before?.newTag) throw conflict(`spec.images[name=${want.name}] is ${JSON.stringify(now ?? null)}, not ${JSON.stringify(want)} as this release wrote — changed by kubectl-edit (Update)`);
      }
      for (const [name, prev] of Object.entries(i.previous.images)) {
        current = current.filter((c) => c.name !== name);
        if (prev) current.push(prev);
      }
      world.images[i.target.name] = current;
      world.generation++;
      return { token: i.token, generation: world.generation, specChanged: true };
    },
    async fluxRestore(i: { target: { name: string }; previous: { images: Record<string, Image | null> } }) {
      enter('fluxRestore');
      let current = world.images[i.target.name]!;
      for (const [name, prev] of Object.entries(i.previous.images)) {
        current = current.filter((c) => c.name !== name);
        if (prev) current.push(prev);
      }
      world.images[i.target.name] = current;
    },
    async fluxReadyGate(i: { gate: string }) {
      return gate(i.gate, 'fluxReady');
    },
    async rolloutGate(i: { gate: string }) {
      return gate(i.gate, 'rollout');
    },
    async httpGate(i: { gate: string }) {
      return gate(i.gate, 'http');
    },
    async prometheusGate(i: { gate: string; timeoutMs: number }) {
      // behaves like a real gate that is slow to decide: it heartbeats and honours cancellation
      if (world.gateOutcome[i.gate] === undefined) {
        for (;;) {
          Context.current().heartbeat();
          await Context.current().sleep(200);
        }
      }
      return gate(i.gate, 'prometheus');
    },
    async canaryPreflight() {
      enter('canaryPreflight');
    },
    async canaryPreflightExact() {
      enter('canaryPreflight');
    },
    async canaryAnnotations() {
      enter('canaryAnnotations');
      return { canary: world.canaryFlag, weight: world.weight === null ? null : String(world.weight), weightTotal: world.weightTotal };
    },
    async canaryRestore(i: { before: { canary: string | null; weight: string | null; weightTotal: string | null }; written: number[] }) {
      enter('canaryRestore');
      const ours = world.weight !== null && i.written.includes(world.weight);
      const restored = String(world.weight) === String(i.before.weight) && world.canaryFlag === i.before.canary;
      if (!ours && !restored) throw conflict(`canary-weight is ${world.weight}, not a weight this release set`);
      world.weight = i.before.weight === null ? null : Number(i.before.weight);
      world.canaryFlag = i.before.canary;
      world.weightTotal = i.before.weightTotal;
    },
    async canarySnapshot() {
      enter('canarySnapshot');
      return { weight: world.weight };
    },
    async setCanaryWeight(i: { weight: number | null; weightTotal?: number }) {
      enter('setCanaryWeight');
      await slowly('setCanaryWeight');
      const previous = world.weight;
      world.weight = i.weight;
      world.canaryFlag = 'true';
      if (i.weightTotal !== undefined && i.weightTotal !== 100) world.weightTotal = String(i.weightTotal);
      return { previous };
    },
    async notify(i: { event: { phase: string; summary: string } }) {
      enter('notify');
      world.events.push({ phase: i.event.phase, summary: i.event.summary });
      return { delivered: 1, failed: 0 };
    },
  };
}

/** A release of `app` against the in-memory world: Chef environment production, Kustomization storefront. */
export function worldRelease(app: string, extra: Record<string, unknown> = {}): ReleaseInput {
  return validateSpec({
    apiVersion: 'hybrid-release.dev/v1alpha1',
    kind: 'HybridRelease',
    metadata: { name: `${app}-2-1-0` },
    spec: {
      app,
      version: '2.1.0',
      chef: [{ serverUrl: 'https://chef.example', environment: 'production', cookbooks: { api_gateway: '= 2.1.0' }, credentials: { keyFile: '/k.pem', clientName: 'ci' } }],
      flux: [{ kind: 'Kustomization', namespace: 'web', name: 'storefront', images: [{ name: 'ghcr.io/acme/web', newTag: '2.1.0' }] }],
      ...extra,
    },
  });
}
