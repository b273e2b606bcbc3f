/**
 * Gate activities, registered with the worker by name. Only activity functions are exported as
 * values here; shared helpers live in their modules.
 */
export { httpGate } from './http.ts';
export { prometheusGate } from './prometheus.ts';
export type { GateResult, CheckOutcome, GateTiming } from './result.ts';
export type { HttpGateSpec, PrometheusGateSpec, ValueFrom, WebhookRef, GateRun } from './types.ts';
