/**
 * Recorded histories of the main paths, replayed against the current workflow code: a change
 * that would break releases already running (a non-deterministic change without patched())
 * fails here. Re-record with test/histories/record.ts only for deliberate, patched changes.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { it } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../../worker/create.ts';

const dir = new URL('../histories/', import.meta.url);
const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));

// releaseV1 (retired, still replayable), releaseV2 before leases and guarded undo, and releaseV2 since
const sets = ['', 'v2-', 'v2-leases-'];
it('has recorded histories of the main paths', () => {
  for (const set of sets) for (const name of ['canary-approved', 'canary-aborted', 'rollback-retried', 'gate-failed']) assert.ok(files.includes(`${set}${name}.json`), `${set}${name}`);
});

for (const file of files) {
  it(`replays ${file} without non-determinism`, async () => {
    // newer files carry { workflowId, history } (child ids derive from the workflow id); older ones the bare history
    const json = JSON.parse(await readFile(new URL(file, dir), 'utf8'));
    const history = historyFromJSON(json.history ?? json);
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, json.workflowId ?? file);
  });
}
