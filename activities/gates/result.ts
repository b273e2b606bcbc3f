/**
 * The one shape every gate reports, whatever it checks (HTTP, Prometheus, Flux, rollout, Chef
 * convergence), so the workflow's status and the Temporal UI can show all gates the same way.
 */
export interface GateResult {
  /** the gate's name in the spec */
  gate: string;
  /** fluxReady | rollout | http | prometheus | chefConvergence */
  kind: string;
  ok: boolean;
  /** last observed value (JSON), e.g. a metric sample or converged/lagging counts */
  observed: unknown;
  /** one line a person can act on */
  reason: string;
  /** how many checks were made */
  checks: number;
  elapsedMs: number;
}

/** What one check of a gate found. `fail` is a hard failure: the gate fails at once. */
export interface CheckOutcome {
  status: 'pass' | 'wait' | 'fail';
  observed?: unknown;
  reason: string;
}

export interface GateTiming {
  /** overall deadline of the gate, from its first attempt */
  timeoutMs: number;
  /** pause between checks */
  intervalMs: number;
  /** consecutive passing checks needed */
  successes: number;
}
