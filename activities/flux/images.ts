import type { KustomizeImage } from './types.ts';

/** A `spec.images` entry as stored; unknown fields are carried through untouched. */
export type ImageEntry = Record<string, unknown> & { name?: unknown };

const IMAGE_FIELDS = ['name', 'newName', 'newTag', 'digest'] as const;

function entryOf(raw: ImageEntry): KustomizeImage {
  const out: Record<string, string> = {};
  for (const k of IMAGE_FIELDS) if (typeof raw[k] === 'string') out[k] = raw[k] as string;
  return out as unknown as KustomizeImage;
}

/**
 * The new `spec.images` list and the previous entry of each named image.
 * An existing entry keeps its `newName` unless the release gives one; `newTag` and `digest` are
 * exactly the release's (a stale digest left next to a new tag would win over it in kustomize).
 * Images without an entry get one appended; entries for other images are left as they are.
 */
export function planImages(current: ImageEntry[] | undefined, wanted: KustomizeImage[]) {
  const next: ImageEntry[] = (current ?? []).map((e) => ({ ...e }));
  const previous: Record<string, KustomizeImage | null> = {};
  for (const want of wanted) {
    const i = next.findIndex((e) => e.name === want.name);
    const existing = i >= 0 ? next[i]! : undefined;
    previous[want.name] = existing ? entryOf((current ?? [])[i]!) : null;
    const entry: ImageEntry = { ...(existing ?? {}), name: want.name };
    delete entry.newTag;
    delete entry.digest;
    if (want.newName !== undefined) entry.newName = want.newName;
    if (want.newTag !== undefined) entry.newTag = want.newTag;
    if (want.digest !== undefined) entry.digest = want.digest;
    if (i >= 0) next[i] = entry;
    else next.push(entry);
  }
  return { next, previous };
}

/**
 * Puts back exactly the recorded entries: a recorded entry replaces the current one (or is
 * appended if someone removed it), a recorded null removes the entry. Other images are untouched.
 * An empty result is returned as null so the field is removed rather than left as `[]`.
 */
export function restoreImages(current: ImageEntry[] | undefined, previous: Record<string, KustomizeImage | null>): ImageEntry[] | null {
  let next: ImageEntry[] = (current ?? []).map((e) => ({ ...e }));
  for (const [name, before] of Object.entries(previous)) {
    const i = next.findIndex((e) => e.name === name);
    if (before === null) {
      next = next.filter((e) => e.name !== name);
    } else if (i >= 0) {
      next[i] = { ...before };
    } else {
      next.push({ ...before });
    }
  }
  return next.length ? next : null;
}

export const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
