/**
 * The worker's own checks of what reaches it from outside: a release's input when it starts,
 * and each decision a person sends to a running release. Whatever started the workflow (the
 * CLI, `temporal workflow start`, the Temporal UI), the release runs what these admit and
 * nothing else. Every export is registered as an activity.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { InvalidSpecError, validateSpec } from '../../release-spec/load.ts';
import type { ReleaseInput } from '../../release-spec/plan.ts';
import { redactUrl, urlSecretProblem } from '../../release-spec/safe.ts';
import { checkResolvedHosts, checkSpec, effectiveApprovers, type Violation } from '../../policy/check.ts';
import { DECISION_MAX_SKEW_MS, DECISION_NAMESPACE, decisionMessage } from '../../policy/decision.ts';
import { appOfWorkflowId, policyFor } from '../../policy/enforce.ts';
import { AppScope, type ValueRef } from '../../policy/scope.ts';
import { parseSignature, verifySignature, fingerprintOf } from '../../policy/sshsig.ts';
import { resolveValueFrom } from '../gates/value-from.ts';

const RELEASE_REFUSED = 'ReleaseRefused';

const refuse = (message: string) => ApplicationFailure.create({ type: RELEASE_REFUSED, nonRetryable: true, message });

const list = (problems: Violation[]) => problems.map((p) => `${p.path}: ${p.message}`).join('; ');

/**
 * Admission of a release: validates the raw input with the one schema (release-spec/schema.ts),
 * builds the plan from it (a plan sent by the caller is ignored), checks that the workflow runs as
 * release-<app>, and checks every target, credential, reference, host and approver against the
 * worker's policy for the app. Returns the input the release runs; refuses with every problem
 * and the rule behind each.
 *
 * Takes the workflow's input as sent: a ReleaseInput ({spec, …}) or a bare spec document.
 */
export async function admitRelease(request: unknown): Promise<ReleaseInput> {
  const info = Context.current().info;
  const envelope = (request && typeof request === 'object' ? request : {}) as Record<string, unknown>;
  const document = 'apiVersion' in envelope ? envelope : envelope.spec;

  let input: ReleaseInput;
  try {
    input = validateSpec(document, 'the release spec');
  } catch (err) {
    if (err instanceof InvalidSpecError) throw refuse(`the release spec is not valid (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}): ${list(err.problems)}`);
    throw err;
  }

  const app = input.spec.spec.app;
  const workflowId = info.workflowExecution?.workflowId ?? '(no workflow)';
  if (appOfWorkflowId(workflowId) !== app) {
    throw refuse(`a release of app ${app} runs as workflow release-${app}, one at a time; this workflow is ${JSON.stringify(workflowId)} (start it with \`hybrid-release start\`, or with workflow id release-${app})`);
  }

  const scope = new AppScope(policyFor(info.taskQueue), app);
  const problems = checkSpec(scope, input.spec, input.plan);
  if (!scope.unknownApp) {
    problems.push(...(await checkResolvedHosts(scope, input.spec)));
    problems.push(...(await checkWebhookHosts(scope, input.spec.spec.notifications.webhooks)));
  }
  if (problems.length) throw refuse(`refused by the worker's policy (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${list(problems)}`);

  const startedBy = typeof envelope.startedBy === 'string' && envelope.startedBy.length <= 200 ? envelope.startedBy : undefined;
  const uiUrl = typeof envelope.uiUrl === 'string' && /^https?:\/\/[^\s]+$/.test(envelope.uiUrl) && !urlSecretProblem(envelope.uiUrl) ? envelope.uiUrl : undefined;
  return {
    spec: input.spec,
    plan: input.plan,
    defaultPlan: input.defaultPlan,
    ...(startedBy ? { startedBy } : {}),
    ...(uiUrl ? { uiUrl: redactUrl(uiUrl) } : {}),
    approvers: effectiveApprovers(scope, input.spec.spec.approvals.approvers),
  };
}

/** A webhook URL is a secret (it is read only here, never shown); its host must be allowed like a gate's. */
async function checkWebhookHosts(scope: AppScope, webhooks: { urlFrom: unknown }[]): Promise<Violation[]> {
  const out: Violation[] = [];
  for (const [i, w] of webhooks.entries()) {
    const ref = w.urlFrom as ValueRef;
    if (scope.reference(ref)) continue; // reported by checkSpec
    let url: string;
    try {
      url = await resolveValueFrom(ref);
    } catch {
      continue; // not resolvable now: the notification will say so, and a webhook never fails a release
    }
    const why = scope.destination(url);
    if (why) out.push({ path: `spec.notifications.webhooks[${i}].urlFrom`, message: `the URL it holds: ${why}` });
  }
  return out;
}

export interface DecisionProof {
  /** ISO time the decision was signed */
  at: string;
  nonce: string;
  /** armored SSH signature (ssh-keygen -Y sign) over decisionMessage(...) */
  signature: string;
}

export interface VerifyDecisionInput {
  command: string;
  decision: { by: string; reason?: string; proof?: DecisionProof };
  /** who may decide on this release, as admitted */
  approvers: string[];
}

export type VerifyDecisionResult = { verified: true; key: string } | { verified: false; reason: string };

/**
 * Checks that a decision was made by who it claims: `by` is an approver of the app in the
 * worker's policy (and of this release), and the signature verifies with one of their public keys
 * over this command on this run (workflow id and run id as the server reports them), signed
 * within DECISION_MAX_SKEW_MS of now. Refusals are results, so the release records them.
 */
export async function verifyDecision(input: VerifyDecisionInput): Promise<VerifyDecisionResult> {
  const info = Context.current().info;
  const { workflowId, runId } = info.workflowExecution ?? { workflowId: '(no workflow)', runId: '' };
  const app = appOfWorkflowId(workflowId);
  const { command, decision } = input;
  const no = (reason: string): VerifyDecisionResult => ({ verified: false, reason });
  if (!app) return no(`workflow ${workflowId} is not a release`);
  const scope = new AppScope(policyFor(info.taskQueue), app);
  if (scope.unknownApp) return no(scope.unknownApp);
  if (!scope.approvers().includes(decision.by) || !input.approvers.includes(decision.by)) {
    return no(`${decision.by} is not an approver of ${app} (approvers: ${input.approvers.filter((a) => scope.approvers().includes(a)).join(', ') || 'nobody'})`);
  }
  const proof = decision.proof;
  if (!proof || typeof proof.signature !== 'string' || typeof proof.at !== 'string' || typeof proof.nonce !== 'string') {
    return no(`unsigned: a decision counts only when signed with the approver's SSH key (hybrid-release ${command} signs with HR_SIGNING_KEY or --key)`);
  }
  const at = Date.parse(proof.at);
  if (!Number.isFinite(at) || Math.abs(Date.now() - at) > DECISION_MAX_SKEW_MS) {
    return no(`signed at ${proof.at}, more than ${DECISION_MAX_SKEW_MS / 60_000} minutes from the worker's clock (a decision is signed when it is sent)`);
  }
  let sig;
  try {
    sig = parseSignature(proof.signature);
  } catch (err) {
    return no(`the signature cannot be read: ${(err as Error).message}`);
  }
  const keys = scope.keysOf(decision.by);
  const key = keys.find((k) => k.blob.equals(sig.publicKey));
  if (!key) return no(`signed with key ${fingerprintOf(sig.publicKey)}, which is not a key of ${decision.by} in the worker's policy`);
  const message = decisionMessage({ workflowId, runId, command, by: decision.by, ...(decision.reason ? { reason: decision.reason } : {}), at: proof.at, nonce: proof.nonce });
  let ok = false;
  try {
    ok = verifySignature(sig, key, DECISION_NAMESPACE, message);
  } catch (err) {
    return no(`the signature cannot be checked: ${(err as Error).message}`);
  }
  if (!ok) return no(`the signature of ${key.fingerprint} does not match this decision (signed for another release, run, command or reason?)`);
  return { verified: true, key: key.fingerprint };
}
