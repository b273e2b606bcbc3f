/**
 * Worker settings from the environment, validated before anything connects. The connection
 * itself follows Temporal's own conventions (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API
 * key variables, and the Temporal CLI's profile file) through @temporalio/envconfig.
 */
import { z } from 'zod';
import { TASK_QUEUE } from '../workflows/search-attributes.ts';

const hostPort = z.string().regex(/^[^\s:]*:\d{1,5}$/, { error: 'must be host:port, e.g. 0.0.0.0:9464' });
const positiveInt = z.coerce.number().int().positive();

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
  HR_MAX_CONCURRENT_WORKFLOW_TASKS: positiveInt.default(40),
  /** how long in-flight activities get to finish on SIGTERM before they are cancelled */
  HR_SHUTDOWN_GRACE: z.string().regex(/^\d+(ms|s|m)$/, { error: 'must be a duration such as 30s' }).default('30s'),
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
