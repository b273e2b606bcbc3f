/**
 * What an approver signs: one decision on one run of one release. The client builds this text,
 * signs it with `ssh-keygen -Y sign -n hybrid-release-decision`, and sends the signature with
 * the decision; the worker rebuilds the same text from the decision and from the workflow id and
 * run id the Temporal server gives the verifying activity, so a signature is good for exactly one
 * command on one run, and the release refuses a nonce it has seen (replay).
 */
export const DECISION_NAMESPACE = 'hybrid-release-decision';

/** How far the signing time may be from the worker's clock. */
export const DECISION_MAX_SKEW_MS = 5 * 60_000;

export interface DecisionFields {
  workflowId: string;
  runId: string;
  command: string;
  by: string;
  reason?: string;
  /** ISO time of signing */
  at: string;
  /** random, once per decision */
  nonce: string;
}

/** The exact bytes signed: one JSON object, keys in this order, no whitespace. */
export function decisionMessage(f: DecisionFields): string {
  return JSON.stringify({
    type: 'hybrid-release decision v1',
    workflowId: f.workflowId,
    runId: f.runId,
    command: f.command,
    by: f.by,
    reason: f.reason ?? '',
    at: f.at,
    nonce: f.nonce,
  });
}
