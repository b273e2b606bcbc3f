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

export type FluxTarget =
  | { id: string; kind: 'Kustomization'; namespace: string; name: string; context?: string; images: KustomizeImage[] }
  | {
      id: string;
      kind: 'HelmRelease';
      namespace: string;
      name: string;
      context?: string;
      /** path: dotted, e.g. image.tag */
      values: Array<{ path: string; value: string | number | boolean }>;
    };

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
