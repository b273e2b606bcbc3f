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

it('has recorded histories of the main paths', () => {
  for (const name of ['canary-approved', 'canary-aborted', 'rollback-retried', 'gate-failed']) assert.ok(files.includes(`${name}.json`), name);
});

for (const file of files) {
  it(`replays ${file} without non-determinism`, async () => {
    const history = historyFromJSON(JSON.parse(await readFile(new URL(file, dir), 'utf8')));
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, file);
  });
}
