/**
 * Builds the workflow bundle ahead of time, for HR_WORKFLOW_BUNDLE (the image runs it at build):
 * the worker then starts without webpack, faster and without webpack's memory in its RSS.
 *
 *   node worker/bundle.ts /app/workflow-bundle.js
 */
import { writeFile } from 'node:fs/promises';
import { bundleWorkflowCode } from '@temporalio/worker';
import { quietLogger, workflowsPath } from './create.ts';

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: node worker/bundle.ts OUTPUT.js\n');
  process.exit(2);
}
const { code } = await bundleWorkflowCode({ workflowsPath, logger: quietLogger });
await writeFile(out, code);
process.stderr.write(`wrote the workflow bundle to ${out} (${Math.round(code.length / 1024)} KiB)\n`);
