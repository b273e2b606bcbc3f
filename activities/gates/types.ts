/**
 * The gate and webhook shapes the workflow passes to these activities. They mirror the validated
 * spec (release-spec/schema.ts) with durations already turned into milliseconds, and are declared here
 * rather than imported so that activities do not depend on the spec's zod schema at run time.
 */

/** A value that must never appear inline in the spec: read from the worker's environment, a file, or a Secret. */
export type ValueFrom =
  | { env: string }
  | { file: string }
  | { secret: { name: string; namespace: string; key: string; context?: string } };

export interface HttpGateSpec {
  url: string;
  /** default 200 */
  expectStatus: number;
  /** "$.a.b[0].c" -> expected value, compared with strict equality */
  json?: Record<string, string | number | boolean>;
  headers?: Record<string, ValueFrom>;
  caFile?: string;
  insecureSkipVerify?: boolean;
  /** default false */
  followRedirects?: boolean;
  requestTimeoutMs: number;
}

export interface PrometheusGateSpec {
  /** base URL of Prometheus (or anything serving its HTTP API, with an optional path prefix) */
  url: string;
  query: string;
  comparison: '<' | '<=' | '>' | '>=';
  threshold: number;
  onEmpty: 'fail' | 'pass' | 'wait';
}

export interface WebhookRef {
  urlFrom: ValueFrom;
}

/** What every gate activity takes besides its own spec. */
export interface GateRun {
  /** the gate's name in the spec */
  gate: string;
  timeoutMs: number;
  intervalMs: number;
  successes: number;
}
