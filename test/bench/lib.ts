/**
 * Shared by the release benchmarks: a "world" per app on the stack's real servers (a Chef
 * environment pinned to the old cookbook version, an app in the stack's Git server applied by a
 * Kustomization through the real Flux controllers, rolled out on kwok, and a canary Ingress), the
 * release spec that targets it, clean-up, and the statistics and table printing.
 */
import os from 'node:os';
import { tsToMs } from '@temporalio/common/lib/time.js';
import type { WorkflowHandle } from '@temporalio/client';
import { closeChefPools, seg } from '../../activities/chef/client.ts';
import { validateSpec } from '../../release-spec/load.ts';
import type { ReleaseInput } from '../../release-spec/plan.ts';
import { adminClient, chefServerEnv, createEnvironment, deleteEnvironment, mapLimit, uploadCookbook } from '../support/chef-fixtures.ts';
import { uniqueName } from '../support/env.ts';
import * as k8s from '@kubernetes/client-node';
import { adminKubeConfig, createCanaryIngress, createKustomization, createKustomizations, createNamespace } from '../support/seed-kube.ts';

export { mapLimit, uniqueName };

export const OLD = '2.0.0';
export const NEW = '2.1.0';
/** a third version, for a second release of the same worlds (concurrent-releases: direct OLD->NEW, then the workflow NEW->NEXT) */
export const NEXT = '2.2.0';
export const IMAGE = 'ghcr.io/acme/web';

/**
 * One benchmark's fixtures: a namespace and a cookbook with versions OLD and NEW, shared by all
 * its apps; each app gets its own Chef environment, Kustomization (one replica, from Git) and Ingress.
 */
export class Bench {
  readonly chef = adminClient();
  readonly chefEnv = chefServerEnv();
  readonly kc = adminKubeConfig();
  readonly ns: string;
  readonly cookbook: string;
  private readonly apps: string[] = [];
  private readonly environments: string[] = [];
  private readonly cookbooks: [string, string][] = [];

  constructor(prefix: string) {
    this.ns = uniqueName(prefix);
    this.cookbook = uniqueName(`${prefix}_cb`).replace(/-/g, '_');
  }

  async setUp(): Promise<void> {
    await createNamespace(this.ns, this.kc);
    await this.uploadCookbook(this.cookbook, [OLD, NEW]);
  }

  /** Uploads versions of a cookbook (deleted at tear-down). */
  async uploadCookbook(name: string, versions: string[]): Promise<void> {
    for (const v of versions) {
      await uploadCookbook(this.chef, name, v);
      this.cookbooks.push([name, v]);
    }
  }

  /** A Chef environment of its own name with these pins (deleted at tear-down). */
  async createEnvironment(name: string, pins: Record<string, string>): Promise<void> {
    await createEnvironment(this.chef, name, pins);
    this.environments.push(name);
  }

  /** Seeds one app's world (its own Git repository) and returns its name (also the app, environment and object names). */
  async seed(prefix = 'app'): Promise<string> {
    const name = uniqueName(prefix);
    this.apps.push(name);
    await createEnvironment(this.chef, name, { [this.cookbook]: `= ${OLD}` });
    await createKustomization({ namespace: this.ns, name, images: [{ name: IMAGE, newTag: OLD }], replicas: 1 }, this.kc);
    await createCanaryIngress({ namespace: this.ns, name: `${name}-canary`, host: `${name}.example`, serviceName: name }, this.kc);
    return name;
  }

  /**
   * Seeds `n` apps at once: one commit with all their manifests in one repository (one
   * GitRepository), then a Kustomization each; waits until all are Ready.
   */
  async seedMany(prefix: string, n: number, o: { environments?: boolean } = {}): Promise<string[]> {
    const names = Array.from({ length: n }, () => uniqueName(prefix));
    this.apps.push(...names);
    if (o.environments ?? true) await mapLimit(names, 16, (name) => createEnvironment(this.chef, name, { [this.cookbook]: `= ${OLD}` }));
    await createKustomizations(this.ns, names.map((name) => ({ namespace: this.ns, name, images: [{ name: IMAGE, newTag: OLD }], replicas: 1, repo: `${this.ns}/apps` })), this.kc);
    await mapLimit(names, 16, (name) => createCanaryIngress({ namespace: this.ns, name: `${name}-canary`, host: `${name}.example`, serviceName: name }, this.kc));
    return names;
  }

  /**
   * A release of `name` to NEW (or `o.version`) on both sides; `body` adds gates, steps, …
   * Its Chef target is the environment of the app's name with the bench's cookbook, unless `o` names others.
   */
  release(name: string, body: Record<string, unknown> = {}, o: { version?: string; environment?: string; cookbook?: string } = {}): ReleaseInput {
    const version = o.version ?? NEW;
    return validateSpec({
      apiVersion: 'hybrid-release.dev/v1alpha1',
      kind: 'HybridRelease',
      metadata: { name: `${name}-${version.replace(/\./g, '-')}` },
      spec: {
        app: name,
        version,
        chef: [{ id: 'vms', serverUrl: this.chefEnv.serverUrl, environment: o.environment ?? name, cookbooks: { [o.cookbook ?? this.cookbook]: `= ${version}` }, credentials: { keyFile: this.chefEnv.keyFile, clientName: this.chefEnv.clientName } }],
        flux: [{ id: 'web', kind: 'Kustomization', namespace: this.ns, name, images: [{ name: IMAGE, newTag: version }] }],
        canary: { ingress: { namespace: this.ns, name: `${name}-canary` } },
        ...body,
      },
    });
  }

  /**
   * Deletes every app's Chef environment, the cookbook and the namespace (kube-controller-manager's
   * namespace controller deletes its content; kustomize-controller prunes what it applied).
   */
  async tearDown(): Promise<void> {
    await mapLimit([...this.apps, ...this.environments], 16, (name) => deleteEnvironment(this.chef, name));
    await mapLimit(this.cookbooks, 8, ([cb, v]) => this.chef.delete(`cookbooks/${seg(cb)}/${seg(v)}`, { object: `cookbook ${cb} ${v}` }).catch(() => undefined));
    await this.kc.makeApiClient(k8s.CoreV1Api).deleteNamespace({ name: this.ns }).catch(() => undefined);
  }
}

// ------------------------------------------------------------------------------------ statistics

export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export const median = (xs: readonly number[]) => quantile(xs, 0.5);

/** Prints a table: numbers right-aligned, text left-aligned. */
export function printTable(header: string[], rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const numeric = header.map((_, i) => rows.every((r) => typeof r[i] === 'number' || /^-?[\d.]+( ?[a-zA-Z%]+)?$/.test(String(r[i]))));
  const line = (cs: string[]) => cs.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
}

export const ms = (x: number) => x.toFixed(0);
export const mib = (bytes: number) => (bytes / (1 << 20)).toFixed(1);

/** Samples process.memoryUsage() every `everyMs` and keeps the peaks. */
export function sampleMemory(everyMs = 100) {
  const peak = { rss: 0, heapUsed: 0, samples: 0 };
  const take = () => {
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    peak.samples++;
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    peak,
    stop() {
      clearInterval(timer);
      take();
      return peak;
    },
  };
}

/** For MockActivityEnvironment: the worker's quiet logger. */
export { quietLogger } from '../../worker/create.ts';

/**
 * Stops everything a release benchmark started: the worker, the seeded objects and the Chef
 * connection pools. A timer keeps the event loop alive meanwhile: clean-up awaits things that
 * hold only unref'd timers, and without it Node exits early with "unsettled top-level await".
 */
export async function tearDownAll(parts: { worker: { stop(): Promise<void> }; bench: Bench }): Promise<void> {
  const timer = setInterval(() => {}, 1_000);
  try {
    await parts.worker.stop();
    await parts.bench.tearDown();
    await closeChefPools();
  } finally {
    clearInterval(timer);
  }
}

/** Load average, printed with the figures: the stack shares its machine with whatever else runs. */
export function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

/** Progress on stderr, so stdout keeps only the figures. */
export const note = (msg: string) => process.stderr.write(`${msg}\n`);

// --------------------------------------------------------------------------------- history figures

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

/**
 * Where a workflow's time went, from its event history: time inside workflow tasks (the worker
 * running workflow code, started -> completed) and time tasks waited to be picked up (scheduled ->
 * started, workflow and activity tasks), both summed over the run.
 */
export function historyTimings(events: readonly HistoryEvent[]) {
  const at = new Map<number, number>();
  let workflowTasks = 0;
  let inWorkflowTasksMs = 0;
  let dispatchMs = 0;
  for (const e of events) {
    const id = Number(e.eventId);
    const t = tsToMs(e.eventTime);
    at.set(id, t);
    if (e.workflowTaskStartedEventAttributes) dispatchMs += t - at.get(Number(e.workflowTaskStartedEventAttributes.scheduledEventId))!;
    if (e.activityTaskStartedEventAttributes) dispatchMs += t - at.get(Number(e.activityTaskStartedEventAttributes.scheduledEventId))!;
    if (e.workflowTaskCompletedEventAttributes) {
      workflowTasks++;
      inWorkflowTasksMs += t - at.get(Number(e.workflowTaskCompletedEventAttributes.startedEventId))!;
    }
  }
  return { events: events.length, workflowTasks, inWorkflowTasksMs, dispatchMs };
}

/** Event counts by type, e.g. { ActivityTaskScheduled: 9, TimerStarted: 2 }. */
export function eventCounts(events: readonly HistoryEvent[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of events) {
    // exactly one *EventAttributes field is set per event; its name is the event's type
    const key = Object.keys(e).find((k) => k.endsWith('EventAttributes') && (e as Record<string, unknown>)[k] != null) ?? 'unknownEventAttributes';
    const name = key[0]!.toUpperCase() + key.slice(1, -'EventAttributes'.length);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

export interface ActivityTiming {
  type: string;
  /** scheduled -> started: waiting for a worker slot / poll */
  queuedMs: number;
  /** started -> closed (completed, failed, timed out) */
  runMs: number;
  /** attempt that closed it (1 = no retry) */
  attempt: number;
  ok: boolean;
}

/** One entry per activity in a history: how long it waited for the worker, ran, and on which attempt. */
export function activityTimings(events: readonly HistoryEvent[]): ActivityTiming[] {
  const scheduled = new Map<number, { type: string; at: number }>();
  const started = new Map<number, { at: number; attempt: number }>();
  const out: ActivityTiming[] = [];
  for (const e of events) {
    const id = Number(e.eventId);
    const t = tsToMs(e.eventTime);
    if (e.activityTaskScheduledEventAttributes) scheduled.set(id, { type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '?', at: t });
    if (e.activityTaskStartedEventAttributes) started.set(Number(e.activityTaskStartedEventAttributes.scheduledEventId), { at: t, attempt: e.activityTaskStartedEventAttributes.attempt ?? 1 });
    const closed = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes;
    if (closed) {
      const sid = Number(closed.scheduledEventId);
      const s = scheduled.get(sid)!;
      const st = started.get(sid) ?? { at: t, attempt: 1 };
      out.push({ type: s.type, queuedMs: st.at - s.at, runMs: t - st.at, attempt: st.attempt, ok: !!e.activityTaskCompletedEventAttributes });
    }
  }
  return out;
}
