/**
 * Worker settings from the environment, validated before anything connects. The connection
 * itself follows Temporal's own conventions (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API
 * key variables, and the Temporal CLI's profile file) through @temporalio/envconfig.
 */
import type { WorkerOptions } from '@temporalio/worker';
import { z } from 'zod';
import { TASK_QUEUE } from '../workflows/search-attributes.ts';

const hostPort = z.string().regex(/^[^\s:]*:\d{1,5}$/, { error: 'must be host:port, e.g. 0.0.0.0:9464' });
const positiveInt = z.coerce.number().int().positive();
const fraction = z.coerce.number().gt(0, { error: 'must be a fraction of 1, e.g. 0.8' }).lte(1, { error: 'must be a fraction of 1, e.g. 0.8' });
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

export const workerEnv = z.object({
  HR_TASK_QUEUE: z.string().min(1).default(TASK_QUEUE),
  /**
   * The policy file (YAML): what each app's releases may touch and who approves them. Without it
   * the worker refuses every release (README, Security model).
   */
  HR_POLICY_FILE: z.string().min(1).optional(),
  /** Prometheus scrape endpoint for the SDK's metrics; off when unset */
  HR_METRICS_ADDRESS: hostPort.optional(),
  /** /healthz (alive) and /readyz (polling Temporal) */
  HR_HEALTH_ADDRESS: hostPort.optional(),
  HR_LOG_LEVEL: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  HR_MAX_CONCURRENT_ACTIVITIES: positiveInt.default(100),
  /**
   * workflow tasks accepted at once. They are CPU work on one thread (reuseV8Context): accepting more
   * than the CPU finishes within the 10 s workflow-task timeout makes them time out inside the worker
   * (test/bench/README.md: 40 gave ~1 timeout per release at n=50 on 2 cores, 8 gave none)
   */
  HR_MAX_CONCURRENT_WORKFLOW_TASKS: positiveInt.default(8),
  /** concurrent polls of the workflow task queue (SDK default: min(10, HR_MAX_CONCURRENT_WORKFLOW_TASKS)) */
  HR_WORKFLOW_POLLERS: positiveInt.min(2, { error: 'must be at least 2 (one sticky, one normal poll)' }).optional(),
  /** concurrent polls of the activity task queue (SDK default: min(10, HR_MAX_CONCURRENT_ACTIVITIES)) */
  HR_ACTIVITY_POLLERS: positiveInt.optional(),
  /** workflows kept in the sticky cache (SDK default: from the heap size, ~600 per GiB); 0 replays every task from history */
  HR_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).optional(),
  /** one V8 context for all workflows (SDK default true); false only to debug a sandbox leak */
  HR_REUSE_V8_CONTEXT: bool.optional(),
  /** threads running workflow code (SDK default 1 with a reused V8 context) */
  HR_WORKFLOW_THREADS: positiveInt.optional(),
  /**
   * `fixed` (default): the HR_MAX_CONCURRENT_* slot counts. `resource-based`: slots follow the
   * machine's CPU and memory use (HR_TUNER_TARGET_CPU / _MEMORY), between 2 and the HR_MAX_CONCURRENT_*
   * counts. Resource-based tuning reads the whole machine's use: on a shared node other
   * tenants' load throttles this worker too.
   */
  HR_TUNER: z.enum(['fixed', 'resource-based']).default('fixed'),
  HR_TUNER_TARGET_CPU: fraction.default(0.8),
  HR_TUNER_TARGET_MEMORY: fraction.default(0.8),
  /** how long in-flight activities get to finish on SIGTERM before they are cancelled */
  HR_SHUTDOWN_GRACE: z.string().regex(/^\d+(ms|s|m)$/, { error: 'must be a duration such as 30s' }).default('30s'),
  /** a workflow bundle built ahead of time (node worker/bundle.ts FILE; the image sets it): no webpack at start */
  HR_WORKFLOW_BUNDLE: z.string().startsWith('/', { error: 'must be an absolute path' }).optional(),
  /** Git mode: author and committer of the release's commits (activities/git/change.ts reads it) */
  HR_GIT_AUTHOR: z.string().regex(/^[^<>\n]+ <[^<>\s]+@[^<>\s]+>$/, { error: 'must be "Name <email>", e.g. "hybrid-release <releases@example.com>"' }).optional(),
  /** Git mode: where the worker keeps its bare copies of the repositories it commits to (default: the temp dir) */
  HR_GIT_CACHE_DIR: z.string().startsWith('/', { error: 'must be an absolute path' }).optional(),
});
export type WorkerEnv = z.output<typeof workerEnv>;

export function loadWorkerEnv(env: NodeJS.ProcessEnv = process.env): WorkerEnv {
  const result = workerEnv.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid worker configuration:\n${lines.join('\n')}`);
  }
  return result.data;
}

/**
 * The Worker.create options the environment sets: slots, pollers, sticky cache, V8 context.
 * Unset knobs keep the SDK's defaults, which are what the benchmarks measure as "shipped defaults".
 */
export function workerTuning(env: WorkerEnv): Partial<WorkerOptions> {
  const o: Partial<WorkerOptions> = { shutdownGraceTime: env.HR_SHUTDOWN_GRACE as `${number}s` };
  if (env.HR_TUNER === 'resource-based') {
    const tunerOptions = { targetCpuUsage: env.HR_TUNER_TARGET_CPU, targetMemoryUsage: env.HR_TUNER_TARGET_MEMORY };
    o.tuner = {
      tunerOptions,
      workflowTaskSlotOptions: { minimumSlots: 2, maximumSlots: env.HR_MAX_CONCURRENT_WORKFLOW_TASKS },
      activityTaskSlotOptions: { minimumSlots: 2, maximumSlots: env.HR_MAX_CONCURRENT_ACTIVITIES },
      localActivityTaskSlotOptions: { minimumSlots: 2, maximumSlots: env.HR_MAX_CONCURRENT_ACTIVITIES },
    };
  } else {
    o.maxConcurrentActivityTaskExecutions = env.HR_MAX_CONCURRENT_ACTIVITIES;
    o.maxConcurrentWorkflowTaskExecutions = env.HR_MAX_CONCURRENT_WORKFLOW_TASKS;
  }
  if (env.HR_WORKFLOW_POLLERS !== undefined) o.workflowTaskPollerBehavior = { type: 'simple-maximum', maximum: env.HR_WORKFLOW_POLLERS };
  if (env.HR_ACTIVITY_POLLERS !== undefined) o.activityTaskPollerBehavior = { type: 'simple-maximum', maximum: env.HR_ACTIVITY_POLLERS };
  if (env.HR_MAX_CACHED_WORKFLOWS !== undefined) o.maxCachedWorkflows = env.HR_MAX_CACHED_WORKFLOWS;
  if (env.HR_REUSE_V8_CONTEXT !== undefined) o.reuseV8Context = env.HR_REUSE_V8_CONTEXT;
  if (env.HR_WORKFLOW_THREADS !== undefined) o.workflowThreadPoolSize = env.HR_WORKFLOW_THREADS;
  return o;
}
