/**
 * The field names the schema allows at a given path, read from the schema itself, so the
 * "did you mean" hint for an unknown field never drifts from the schema.
 */
import type { z } from 'zod';
import { releaseSpec } from './schema.ts';

type Def = Record<string, unknown> & { type: string };
const defOf = (s: z.core.$ZodType) => s._zod.def as unknown as Def;

/** Strips wrappers (optional, default, pipe, …) down to the schemas that hold data. */
function unwrap(schema: z.core.$ZodType): z.core.$ZodType[] {
  const def = defOf(schema);
  if (def.type === 'union') return (def.options as z.core.$ZodType[]).flatMap(unwrap);
  if (def.type === 'pipe') return unwrap(def.in as z.core.$ZodType);
  if (def.innerType) return unwrap(def.innerType as z.core.$ZodType);
  return [schema];
}

function child(schema: z.core.$ZodType, key: PropertyKey): z.core.$ZodType[] {
  const def = defOf(schema);
  if (def.type === 'object') {
    const next = (def.shape as Record<string, z.core.$ZodType>)[String(key)];
    return next ? unwrap(next) : [];
  }
  if (def.type === 'array') return unwrap(def.element as z.core.$ZodType);
  if (def.type === 'record') return unwrap(def.valueType as z.core.$ZodType);
  return [];
}

export function fieldsAt(path: readonly PropertyKey[]): string[] {
  let level = unwrap(releaseSpec);
  for (const key of path) level = level.flatMap((s) => child(s, key));
  const keys = new Set<string>();
  for (const s of level) {
    const def = defOf(s);
    if (def.type === 'object') for (const k of Object.keys(def.shape as object)) keys.add(k);
  }
  return [...keys];
}
