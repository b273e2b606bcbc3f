// Every activity the worker registers; the workflow imports only the types of these.
export * from './chef/index.ts';
export * from './flux/index.ts';
export * from './git/index.ts';
export * from './kube/index.ts';
export * from './gates/index.ts';
export * from './notify/index.ts';
export * from './admission/index.ts';
export * from './leases/index.ts';
