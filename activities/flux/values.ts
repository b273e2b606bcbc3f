/**
 * HelmRelease `spec.values` edits at dotted paths, as JSON merge patches: a merge patch only names
 * the keys it changes, so sibling values stay as they are (arrays would be replaced whole, which is
 * why paths stop at maps).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { nullProtoMap, unsafeSegment } from '../../release-spec/safe.ts';

type Json = Record<string, unknown>;

const isMap = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The segments of a values path. `__proto__`, `prototype` and `constructor` are refused here too
 * (the spec's validation refuses them first): a path through them would reach Object.prototype of
 * the worker, which every later release shares.
 */
function segments(path: string): string[] {
  const bad = unsafeSegment(path);
  if (bad !== undefined) {
    throw ApplicationFailure.create({ type: 'UnsafeValuesPath', nonRetryable: true, message: `values path ${JSON.stringify(path)}: "${bad}" is never a key (__proto__, prototype and constructor are refused)` });
  }
  return path.split('.');
}

/** The value at a dotted path, or undefined when any part of it is absent (own keys only). */
export function valueAt(values: unknown, path: string): unknown {
  let node: unknown = values;
  for (const key of segments(path)) {
    if (!isMap(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

/** Sets `value` at `path` inside a patch object, creating maps without a prototype on the way. */
function setIn(patch: Json, path: string, value: unknown): void {
  const keys = segments(path);
  let node = patch;
  for (const key of keys.slice(0, -1)) {
    if (!isMap(node[key]) || !Object.hasOwn(node, key)) node[key] = nullProtoMap();
    node = node[key] as Json;
  }
  node[keys[keys.length - 1]!] = value;
}

/**
 * The merge patch for `spec.values` and the previous values to restore later. If a parent on the
 * path is missing (or not a map and so about to be replaced), that parent's path is recorded with
 * its old value (null = absent), so a restore removes or restores the whole parent.
 */
export function planValues(values: unknown, wanted: Array<{ path: string; value: unknown }>) {
  const patch: Json = nullProtoMap();
  // keyed by whole, checked paths ("image.tag"), never walked: a plain object is safe here
  const previous: Record<string, unknown | null> = {};
  for (const { path, value } of wanted) {
    const keys = segments(path);
    let node: unknown = values;
    for (let i = 0; i < keys.length - 1; i++) {
      const prefix = keys.slice(0, i + 1).join('.');
      const child = isMap(node) && Object.hasOwn(node, keys[i]!) ? node[keys[i]!] : undefined;
      if (!isMap(child)) {
        if (!Object.hasOwn(previous, prefix)) previous[prefix] = child === undefined ? null : structuredClone(child);
        break;
      }
      node = child;
    }
    const before = valueAt(values, path);
    previous[path] = before === undefined ? null : structuredClone(before);
    setIn(patch, path, value);
  }
  return { patch, previous };
}

/**
 * The merge patch that puts the recorded values back; null deletes. A recorded parent wins over
 * the paths below it (they are part of it).
 */
export function restoreValuesPatch(previous: Record<string, unknown | null>): Json {
  const patch: Json = nullProtoMap();
  const paths = Object.keys(previous).sort((a, b) => a.split('.').length - b.split('.').length);
  const done: string[] = [];
  for (const path of paths) {
    if (done.some((p) => path.startsWith(`${p}.`))) continue;
    setIn(patch, path, previous[path] ?? null);
    done.push(path);
  }
  return patch;
}

/** A reason the path cannot be set without replacing a non-map value, or null when it can. */
export function pathProblem(values: unknown, path: string): string | null {
  const keys = segments(path);
  let node: unknown = values;
  for (let i = 0; i < keys.length - 1; i++) {
    const child = isMap(node) && Object.hasOwn(node, keys[i]!) ? node[keys[i]!] : undefined;
    if (child === undefined) return null;
    if (!isMap(child)) {
      return `${keys.slice(0, i + 1).join('.')} is ${Array.isArray(child) ? 'a list' : `a ${child === null ? 'null' : typeof child}`}, not a map, so ${path} cannot be set inside it`;
    }
    node = child;
  }
  const leaf = valueAt(values, path);
  if (isMap(leaf) || Array.isArray(leaf)) return `${path} holds a ${isMap(leaf) ? 'map' : 'list'}, not a single value`;
  return null;
}
