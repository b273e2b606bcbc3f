import { ApplicationFailure } from '@temporalio/activity';
import { UNDO_CONFLICT } from '../undo-conflict.ts';
import { readModifyPatch } from '../kube/optimistic.ts';
import { planImages, restoreImages, sameJson, type ImageEntry } from './images.ts';
import type { FluxWritten } from './readiness.ts';
import { REQUESTED_AT, fluxOp, fluxRef, getFlux, lastWriter, mergePatchFlux, type FluxObject, type FluxRef } from './resource.ts';
import type { FluxPrevious, FluxTarget } from './types.ts';
import { planValues, restoreValuesPatch, valueAt } from './values.ts';

function previousOf(target: FluxTarget, obj: FluxObject): FluxPrevious {
  return target.kind === 'Kustomization'
    ? { kind: 'Kustomization', images: planImages(obj.spec?.images as ImageEntry[] | undefined, target.images).previous }
    : { kind: 'HelmRelease', values: planValues(obj.spec?.values, target.values).previous };
}

/** The target's current entries / values for what the release will change (read-only). */
export async function snapshotFlux(target: FluxTarget): Promise<FluxPrevious> {
  return previousOf(target, await getFlux(fluxRef(target)));
}

const meta = (obj: FluxObject, token: string) => ({
  resourceVersion: obj.metadata.resourceVersion,
  annotations: { [REQUESTED_AT]: token },
});

/**
 * The merge patch, sent with the resourceVersion that was read; records the object as written, so
 * the caller can say which generation the patch produced and whether it moved it.
 */
function patchRecording(ref: FluxRef) {
  const seen: { before?: FluxObject; after?: FluxObject } = {};
  return {
    seen,
    read: async () => (seen.before = await getFlux(ref)),
    write: async (patch: object) => {
      seen.after = await mergePatchFlux(ref, patch);
    },
    written(token: string): FluxWritten {
      const before = seen.before?.metadata.generation;
      const after = seen.after?.metadata.generation ?? before;
      return { token, ...(after !== undefined ? { generation: after } : {}), specChanged: after !== undefined && before !== undefined && after > before };
    },
  };
}

/**
 * Pins the images / values and asks Flux to reconcile with `token`, in one merge patch: the
 * controller cannot see the new spec without the request, or the request without the new spec.
 * Returns what the patch replaced and what it wrote (token, the generation it produced, whether
 * it changed the spec), which the fluxReady and rollout gates wait for. Running it again is a
 * no-op write that returns the new values, which is why the workflow records fluxSnapshot first.
 */
export async function applyFlux(target: FluxTarget, token: string, hooks: { afterRead?: (attempt: number) => Promise<void>; beforeWrite?: () => void } = {}) {
  const ref = fluxRef(target);
  const rec = patchRecording(ref);
  const out = await readModifyPatch({
    op: fluxOp(ref, 'patch'),
    read: rec.read,
    afterRead: hooks.afterRead,
    ...(hooks.beforeWrite ? { beforeWrite: hooks.beforeWrite } : {}),
    plan: (obj) => {
      if (target.kind === 'Kustomization') {
        const { next, previous } = planImages(obj.spec?.images as ImageEntry[] | undefined, target.images);
        return { patch: { metadata: meta(obj, token), spec: { images: next } }, result: { previous: { kind: 'Kustomization', images: previous } as FluxPrevious } };
      }
      const { patch, previous } = planValues(obj.spec?.values, target.values);
      return { patch: { metadata: meta(obj, token), spec: { values: patch } }, result: { previous: { kind: 'HelmRelease', values: previous } as FluxPrevious } };
    },
    write: rec.write,
  });
  return { ...out, written: rec.written(token) };
}

/**
 * Puts back exactly what `previous` recorded (absent entries and values removed) and requests a
 * reconcile with `token` — a token different from the apply's, or Flux sees no new request.
 * Safe to run when the apply never happened: the recorded values are then already in place.
 * Returns what it wrote, so the release can wait for Flux to apply the restored spec.
 */
export async function restoreFlux(
  target: FluxTarget,
  previous: FluxPrevious,
  token: string,
  hooks: { afterRead?: (attempt: number) => Promise<void>; guard?: boolean } = {},
): Promise<FluxWritten> {
  if (previous.kind !== target.kind) {
    throw ApplicationFailure.create({
      type: 'FluxRestoreMismatch',
      nonRetryable: true,
      message: `cannot restore ${target.kind} ${target.namespace}/${target.name} from a ${previous.kind} snapshot`,
    });
  }
  const ref = fluxRef(target);
  const rec = patchRecording(ref);
  await readModifyPatch({
    op: fluxOp(ref, 'patch'),
    read: rec.read,
    afterRead: hooks.afterRead,
    plan: (obj) => {
      if (hooks.guard) refuseForeignChanges(target, previous, obj);
      const spec =
        previous.kind === 'Kustomization'
          ? { images: restoreImages(obj.spec?.images as ImageEntry[] | undefined, previous.images) }
          : { values: restoreValuesPatch(previous.values) };
      return { patch: { metadata: meta(obj, token), spec }, result: {} };
    },
    write: rec.write,
  });
  return rec.written(token);
}

const show = (v: unknown) => (v === null || v === undefined ? '(absent)' : JSON.stringify(v));
const FIELDS = ['name', 'newName', 'newTag', 'digest'] as const;
const normal = (e: Record<string, unknown>) => Object.fromEntries(FIELDS.filter((k) => typeof e[k] === 'string').map((k) => [k, e[k] as string])) as Partial<Record<(typeof FIELDS)[number], string>>;
const imageOf = (obj: FluxObject, name: string) => {
  const e = ((obj.spec?.images ?? []) as ImageEntry[]).find((i) => i.name === name);
  return e ? normal(e) : null;
};

/**
 * Guarded undo: every key the release changed must still hold what it wrote (or already what it
 * restores). A key someone else changed since is a conflict: nothing is written, and the failure
 * names the key, the value found and the last writer of the field as the API server recorded it
 * (metadata.managedFields: field manager, operation, time).
 */
function refuseForeignChanges(target: FluxTarget, previous: FluxPrevious, obj: FluxObject): void {
  const where = `${target.kind} ${target.namespace}/${target.name}`;
  const conflicts: { key: string; found: unknown; wrote: unknown }[] = [];
  if (target.kind === 'Kustomization' && previous.kind === 'Kustomization') {
    for (const want of target.images) {
      const cur = imageOf(obj, want.name);
      const ours = cur !== null && cur.newTag === want.newTag && cur.digest === want.digest && (want.newName === undefined || cur.newName === want.newName);
      const before = previous.images[want.name] ?? null;
      const restored = before === null ? cur === null : cur !== null && sameJson(cur, normal(before as unknown as Record<string, unknown>));
      if (!ours && !restored) conflicts.push({ key: `spec.images[name=${want.name}]`, found: cur, wrote: want });
    }
  } else if (target.kind === 'HelmRelease' && previous.kind === 'HelmRelease') {
    for (const want of target.values) {
      const cur = valueAt(obj.spec?.values, want.path);
      const before = previous.values[want.path] ?? null;
      if (!sameJson(cur, want.value) && !sameJson(cur ?? null, before)) conflicts.push({ key: `spec.values.${want.path}`, found: cur ?? null, wrote: want.value });
    }
  }
  if (conflicts.length === 0) return;
  const field = target.kind === 'Kustomization' ? ['f:spec', 'f:images'] : ['f:spec', 'f:values'];
  const who = lastWriter(obj.metadata.managedFields, field);
  throw ApplicationFailure.create({
    type: UNDO_CONFLICT,
    nonRetryable: true,
    message:
      `${where}: ${conflicts.map((c) => `${c.key} is ${show(c.found)}, not ${show(c.wrote)} as this release wrote`).join('; ')}` +
      ` — changed by ${who && !who.startsWith('hybrid-release ') ? who : 'someone outside this release (the API server names no other writer)'}. ` +
      'Not restored: retry after putting it back yourself, or skip to keep what is there',
    details: [{ conflicts, changedBy: who ?? null }],
  });
}
