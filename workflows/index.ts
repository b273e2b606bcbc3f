// The workflow bundle's entry point: the worker bundles exactly what is exported here.
export { releaseWorkflow } from './release.ts';
