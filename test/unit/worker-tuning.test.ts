/** worker/config.ts: the tuning knobs map onto Worker.create options; unset ones keep the SDK's defaults; bad values are named. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadWorkerEnv, workerTuning } from '../../worker/config.ts';

describe('worker tuning from the environment', () => {
  it('shipped defaults: fixed slots 100/8, everything else left to the SDK', () => {
    const o = workerTuning(loadWorkerEnv({}));
    assert.deepEqual(o, { shutdownGraceTime: '30s', maxConcurrentActivityTaskExecutions: 100, maxConcurrentWorkflowTaskExecutions: 8 });
  });

  it('pollers, sticky cache, V8 context and threads', () => {
    const o = workerTuning(loadWorkerEnv({ HR_WORKFLOW_POLLERS: '4', HR_ACTIVITY_POLLERS: '8', HR_MAX_CACHED_WORKFLOWS: '0', HR_REUSE_V8_CONTEXT: 'false', HR_WORKFLOW_THREADS: '2' }));
    assert.deepEqual(o.workflowTaskPollerBehavior, { type: 'simple-maximum', maximum: 4 });
    assert.deepEqual(o.activityTaskPollerBehavior, { type: 'simple-maximum', maximum: 8 });
    assert.equal(o.maxCachedWorkflows, 0);
    assert.equal(o.reuseV8Context, false);
    assert.equal(o.workflowThreadPoolSize, 2);
  });

  it('resource-based tuner: slots between 2 and the HR_MAX_CONCURRENT_* counts, no fixed counts beside it', () => {
    const o = workerTuning(loadWorkerEnv({ HR_TUNER: 'resource-based', HR_TUNER_TARGET_CPU: '0.7', HR_MAX_CONCURRENT_ACTIVITIES: '300' }));
    assert.equal(o.maxConcurrentActivityTaskExecutions, undefined);
    const tuner = o.tuner as { tunerOptions: unknown; activityTaskSlotOptions: { maximumSlots: number } };
    assert.deepEqual(tuner.tunerOptions, { targetCpuUsage: 0.7, targetMemoryUsage: 0.8 });
    assert.equal(tuner.activityTaskSlotOptions.maximumSlots, 300);
  });

  it('bad values are refused with the variable named', () => {
    assert.throws(() => loadWorkerEnv({ HR_WORKFLOW_POLLERS: '1' }), /HR_WORKFLOW_POLLERS: must be at least 2/);
    assert.throws(() => loadWorkerEnv({ HR_TUNER_TARGET_CPU: '80' }), /HR_TUNER_TARGET_CPU: must be a fraction of 1/);
    assert.throws(() => loadWorkerEnv({ HR_REUSE_V8_CONTEXT: 'yes' }), /HR_REUSE_V8_CONTEXT/);
  });
});
