/**
 * The worker service: runs release workflows and their activities.
 * Exits with a clear message on bad configuration; on SIGTERM/SIGINT it stops polling and lets
 * in-flight activities finish (or heartbeat out) within HR_SHUTDOWN_GRACE.
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime } from '@temporalio/worker';
import { policyFromEnv } from '../policy/load.ts';
import type { Policy } from '../policy/schema.ts';
import { loadWorkerEnv, workerTuning } from './config.ts';
import { createWorker } from './create.ts';
import { startHealthServer } from './health.ts';

/** One JSON object per line, as log collectors expect. */
function jsonLog(entry: { level: string; message: string; meta?: Record<string, unknown>; timestampNanos: bigint }): void {
  const line = { time: new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString(), level: entry.level.toLowerCase(), msg: entry.message, ...entry.meta };
  process.stderr.write(`${JSON.stringify(line, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
}

async function main(): Promise<void> {
  let env;
  let policy: Policy;
  try {
    env = loadWorkerEnv();
    policy = policyFromEnv();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  Runtime.install({
    logger: new DefaultLogger(env.HR_LOG_LEVEL, jsonLog),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      ...(env.HR_METRICS_ADDRESS ? { metrics: { prometheus: { bindAddress: env.HR_METRICS_ADDRESS } } } : {}),
    },
  });
  const config = loadClientConnectConfig();
  const namespace = config.namespace ?? 'default';
  const connection = await NativeConnection.connect(config.connectionOptions);
  const worker = await createWorker({
    connection,
    namespace,
    taskQueue: env.HR_TASK_QUEUE,
    policy,
    extra: workerTuning(env),
  });
  const health = env.HR_HEALTH_ADDRESS ? await startHealthServer(env.HR_HEALTH_ADDRESS, () => worker.getState() === 'RUNNING') : undefined;
  Runtime.instance().logger.info('worker started', {
    address: config.connectionOptions.address ?? 'localhost:7233',
    namespace,
    taskQueue: env.HR_TASK_QUEUE,
    metrics: env.HR_METRICS_ADDRESS ?? 'off',
    health: env.HR_HEALTH_ADDRESS ?? 'off',
    policy: policy.source,
    apps: policy.apps.map((a) => a.app),
  });
  if (policy.apps.length === 0) Runtime.instance().logger.warn('the policy names no app: every release will be refused (set HR_POLICY_FILE; README, Security model)', { policy: policy.source });
  try {
    await worker.run(); // resolves after a shutdown signal once in-flight work has drained
  } finally {
    health?.close();
    await connection.close();
  }
}

main().catch((err) => {
  process.stderr.write(`worker failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
