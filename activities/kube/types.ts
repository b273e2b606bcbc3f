/** Mirrors of the spec types (release-spec/schema.ts); the spec's inferred types are assignable to these. */
export interface IngressRef {
  namespace: string;
  name: string;
  context?: string;
}

export interface DeploymentRef {
  namespace: string;
  name: string;
  context?: string;
  /** container whose image is checked; default: any container */
  container?: string;
  /** expected image including tag (or digest); when set, the gate also checks template and pods */
  image?: string;
}
