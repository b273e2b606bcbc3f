/**
 * Mirrors of the spec types (release-spec/schema.ts) that these activities take. Kept structural and local
 * so the activities do not pull zod schemas in; the spec's inferred types are assignable to these.
 */
export interface KustomizeImage {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

/** A reference the worker resolves to a secret value (release-spec's valueFrom). */
export type SecretRef = { env: string } | { file: string } | { secret: { name: string; namespace: string; key: string; context?: string } };

/** Git mode of a Flux target (release-spec's gitMode): the file the release commits to. */
export interface GitMode {
  /** path of the YAML file in the repository the Flux source reads */
  path: string;
  /** push credentials: user name (default "git") and a reference to the password or token */
  credentials?: { username?: string; passwordFrom: SecretRef };
}

/** What both kinds share: where the object is, and how the release changes it. */
interface FluxTargetBase {
  id: string;
  namespace: string;
  name: string;
  context?: string;
  /** Git mode: commit the change to Git instead of patching the live object */
  git?: GitMode;
  /** live mode: patch even where a parent Kustomization applies the field from Git (it will revert it) */
  acceptDrift?: boolean;
}

export type FluxTarget =
  | (FluxTargetBase & { kind: 'Kustomization'; images: KustomizeImage[] })
  | (FluxTargetBase & {
      kind: 'HelmRelease';
      /** path: dotted, e.g. image.tag */
      values: Array<{ path: string; value: string | number | boolean }>;
    });

/**
 * What a target looked like before a change, enough to put it back exactly.
 * Kustomization: the previous `spec.images` entry per image name (null = no entry).
 * HelmRelease: the previous value per values path (null = absent). When applying a path had to
 * create a missing parent map (`image` for `image.tag`), the parent path is recorded too, as null,
 * so the restore removes what the apply created instead of leaving `image: {}` behind.
 */
export type FluxPrevious =
  | { kind: 'Kustomization'; images: Record<string, KustomizeImage | null> }
  | { kind: 'HelmRelease'; values: Record<string, unknown | null> };
