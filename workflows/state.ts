/**
 * The release's live state: the status people query, mirrored into search attributes, the
 * workflow's current details in the Temporal UI, and webhook notifications on phase changes.
 */
import { CancellationScope, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { GateResult } from '../activities/gates/result.ts';
import type { ReleaseInput } from '../release-spec/plan.ts';
import type { Change, DecisionRecord, Phase, ReleaseStatus } from './messages.ts';
import { notifications } from './activities.ts';
import { SA } from './search-attributes.ts';
import { now } from './clock.ts';

export class ReleaseState {
  readonly input: ReleaseInput;
  readonly status: ReleaseStatus;
  /** a person asked to hold the release at the next step boundary */
  held = false;
  approved = false;
  abortRequested = false;
  /** answer to a failing compensation: retry it or skip it */
  compensationAnswer: 'retry' | 'skip' | undefined;
  /** the last webhook notification scheduled, so the end can wait for it */
  private lastNotification: Promise<unknown> | undefined;

  constructor(input: ReleaseInput) {
    this.input = input;
    const { metadata, spec } = input.spec;
    this.status = {
      release: metadata.name,
      app: spec.app,
      ...(spec.version ? { version: spec.version } : {}),
      ...(input.startedBy ? { startedBy: input.startedBy } : {}),
      phase: 'Pending',
      startedAt: now(),
      steps: input.plan.map((s, index) => ({ index, kind: s.kind, summary: s.summary, state: 'pending' })),
      changes: [],
      gates: [],
      decisions: [],
    };
  }

  get phase(): Phase {
    return this.status.phase;
  }

  setPhase(phase: Phase, summary?: string): void {
    if (this.status.phase === phase) return;
    this.status.phase = phase;
    upsertSearchAttributes([{ key: SA.phase, value: phase }]);
    this.publish();
    this.notify(summary ?? `${this.status.release} is ${phase}`);
  }

  startStep(index: number): void {
    this.status.currentStep = index;
    const step = this.status.steps[index]!;
    step.state = 'running';
    step.startedAt = now();
    this.publish();
  }

  endStep(index: number, state: 'done' | 'failed' | 'cancelled'): void {
    const step = this.status.steps[index]!;
    step.state = state;
    step.endedAt = now();
    this.publish();
  }

  addChange(change: Omit<Change, 'state'>): number {
    this.status.changes.push({ ...change, state: 'applying' });
    this.publish();
    return this.status.changes.length - 1;
  }

  updateChange(index: number, patch: Partial<Change>): void {
    Object.assign(this.status.changes[index]!, patch);
    this.publish();
  }

  recordGate(step: number, result: GateResult): void {
    this.status.gates.push({ ...result, step });
    this.publish();
  }

  addWarning(warning: string): void {
    (this.status.warnings ??= []).push(warning);
    this.publish();
  }

  recordDecision(decision: Omit<DecisionRecord, 'at'>): void {
    this.status.decisions.push({ ...decision, at: now() });
    this.publish();
  }

  /** While Queued: what the release waits for (shown in status and the UI). */
  setWaiting(waiting: string | undefined): void {
    if (waiting === undefined) delete this.status.waiting;
    else this.status.waiting = waiting;
    this.publish();
  }

  finish(phase: Phase, error?: string): void {
    if (error) this.status.error = error;
    this.status.endedAt = now();
    delete this.status.currentStep;
    this.setPhase(phase, error ? `${this.status.release} is ${phase}: ${error}` : undefined);
  }

  /**
   * finish() whose notification is awaited before the release completes: the event must be sent
   * before the workflow closes (a notification scheduled in the completing task is never sent).
   * Bounded: the notify activity retries each webhook itself and never fails; a failure here is
   * swallowed — a webhook never changes the outcome.
   */
  async finishNotified(phase: Phase, error?: string): Promise<void> {
    this.finish(phase, error);
    await this.lastNotification?.catch(() => undefined);
  }

  /** The markdown shown as "current details" in the Temporal UI. */
  private publish(): void {
    const s = this.status;
    const current = s.currentStep !== undefined ? s.steps[s.currentStep] : undefined;
    const lines = [
      `**${s.release}** (${s.app}${s.version ? ` ${s.version}` : ''}): **${s.phase}**${s.heldBy ? ` — held by ${s.heldBy}` : ''}`,
      current ? `step ${current.index + 1} of ${s.steps.length}: ${current.summary}` : '',
      s.waiting ? `${s.waiting}` : '',
      s.error ? `error: ${s.error}` : '',
      s.skipped?.length ? `left in place (undo skipped): ${s.skipped.join('; ')}` : '',
    ].filter(Boolean);
    // markdown: a list needs a blank line before it, or the UI runs it into the paragraph
    const changes = s.changes.map((c) => `- ${c.summary}: ${c.state}${c.error ? ` (${c.error})` : ''}`);
    setCurrentDetails([lines.join('\n\n'), changes.join('\n')].filter(Boolean).join('\n\n'));
  }

  /**
   * Tells the spec's webhooks. Fire and forget in a non-cancellable scope, so an aborted release
   * still announces its rollback, and a failing webhook never blocks or fails the release.
   */
  private notify(summary: string): void {
    const webhooks = this.input.spec.spec.notifications.webhooks;
    if (webhooks.length === 0) return;
    const step = this.status.currentStep !== undefined ? this.status.steps[this.status.currentStep]?.summary : undefined;
    const event = {
      release: this.status.release,
      app: this.status.app,
      phase: this.status.phase,
      ...(step ? { step } : {}),
      summary,
      ...(this.input.uiUrl ? { uiUrl: `${this.input.uiUrl}/namespaces/${workflowInfo().namespace}/workflows/${workflowInfo().workflowId}` } : {}),
      at: now(),
    };
    const sent = CancellationScope.nonCancellable(() =>
      notifications.notify.executeWithOptions({ summary: `notify: ${this.status.phase}` }, [{ webhooks, event }]),
    ).catch(() => undefined);
    this.lastNotification = sent;
  }
}
