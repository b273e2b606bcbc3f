// The workflow bundle's entry point: the worker bundles exactly what is exported here.
export { releaseV2 } from './release.ts';
// Frozen first-stage workflow: only so releases started before the upgrade can finish.
export { releaseWorkflow } from './legacy/release.ts';
// Leases on shared targets (docs/leases.md): one per target, and one keeper per release.
export { leaseKeeper, targetLease } from './lease-workflows.ts';
