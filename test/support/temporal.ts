/**
 * A worker on its own task queue against the stack's Temporal dev server, for one test file.
 * It runs the same registration the service runs (worker/create.ts), optionally with
 * activities replaced to inject failures.
 */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import type { Policy } from '../../policy/schema.ts';
import { createWorker } from '../../worker/create.ts';
import { requireEnv, uniqueName } from './env.ts';
import { openPolicy } from './policy.ts';

let runtimeInstalled = false;

export interface TestWorker {
  client: Client;
  taskQueue: string;
  namespace: string;
  worker: Worker;
  stop(): Promise<void>;
}

/**
 * `policy`: what the worker enforces (default: the open test policy of support/policy.ts);
 * `taskQueue`: a queue to serve (default: a fresh one), e.g. to bring a stopped worker back.
 */
export async function startTestWorker(options: { activities?: object; policy?: Policy; taskQueue?: string } = {}): Promise<TestWorker> {
  if (!runtimeInstalled) {
    // keep test output readable: failed releases are expected here and asserted on, not logged
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } } });
    runtimeInstalled = true;
  }
  const address = requireEnv('TEMPORAL_ADDRESS');
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  const taskQueue = options.taskQueue ?? uniqueName('hr-test');
  const nativeConnection = await NativeConnection.connect({ address });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });
  const worker = await createWorker({ connection: nativeConnection, namespace, taskQueue, policy: options.policy ?? openPolicy(), ...(options.activities ? { activities: options.activities } : {}) });
  const running = worker.run();
  return {
    client,
    taskQueue,
    namespace,
    worker,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await nativeConnection.close();
      await connection.close();
    },
  };
}
