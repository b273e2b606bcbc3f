import type { ServiceRecord, StackState } from '../lib/state.ts';

/**
 * One long-running process of the stack. `start` spawns it (preferring the ports it had last time,
 * `previous`), `ready` resolves once it really answers, `env` gives its .stack/env lines.
 */
export interface Service {
  name: string;
  /** the `--only` group it belongs to */
  group: 'temporal' | 'chef' | 'sources' | 'kube' | 'kube-b' | 'prometheus';
  start(previous: Record<string, number> | undefined, state: StackState): Promise<ServiceRecord>;
  ready(rec: ServiceRecord, timeoutMs: number): Promise<void>;
  /** a running instance that no longer fits the rest of the stack (e.g. its dependency moved) */
  stale?(rec: ServiceRecord, state: StackState): boolean;
  /** work after the process answers (e.g. installing CRDs); must be idempotent */
  afterReady?(rec: ServiceRecord): Promise<void>;
}
