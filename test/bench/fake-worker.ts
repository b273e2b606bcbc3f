/**
 * A worker process like worker/main.ts (same registration, same HR_* tuning from the environment,
 * same workflow bundle) whose activities are the in-memory world of test/support/fake-world.ts,
 * each call taking BENCH_LATENCY_MS (default 20 ms). What it costs to run a release is then
 * Temporal's and this worker's alone: the orchestration ceiling (test/bench/orchestration-ceiling.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime } from '@temporalio/worker';
import { policyFromEnv } from '../../policy/load.ts';
import { loadWorkerEnv, workerTuning } from '../../worker/config.ts';
import { createWorker } from '../../worker/create.ts';
import { fakeActivities, newWorld } from '../support/fake-world.ts';

const latencyMs = Number(process.env.BENCH_LATENCY_MS ?? 20);
const env = loadWorkerEnv();
Runtime.install({
  logger: new DefaultLogger('WARN'),
  telemetryOptions: {
    logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
    ...(env.HR_METRICS_ADDRESS ? { metrics: { prometheus: { bindAddress: env.HR_METRICS_ADDRESS } } } : {}),
  },
});
const world = newWorld();
const fake = fakeActivities(world) as Record<string, (...args: unknown[]) => Promise<unknown>>;
const activities = Object.fromEntries(
  Object.entries(fake).map(([name, fn]) => [
    name,
    async (...args: unknown[]) => {
      await sleep(latencyMs);
      if (world.calls.length > 10_000) world.calls.length = 0; // the log of calls is for tests; keep memory flat
      return fn(...args);
    },
  ]),
);
const config = loadClientConnectConfig();
const connection = await NativeConnection.connect(config.connectionOptions);
const worker = await createWorker({ connection, namespace: config.namespace ?? 'default', taskQueue: env.HR_TASK_QUEUE, policy: policyFromEnv(), activities, extra: workerTuning(env) });
process.stderr.write(`worker started (fake world, ${latencyMs} ms per call) on ${env.HR_TASK_QUEUE}\n`);
// SIGTERM / SIGINT: the SDK's Runtime shuts the worker down (its default shutdownSignals)
await worker.run();
await connection.close();
