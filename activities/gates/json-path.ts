/**
 * The JSON paths the spec accepts: `$`, then any of `.name` and `[index]`, e.g. `$.build.tags[0]`.
 * That is all a health endpoint's fields need, so a few lines here instead of a JSONPath library
 * (whose filter expressions would be an evaluation surface fed from release specs).
 */
const STEP = /\.([A-Za-z0-9_-]+)|\[(\d+)\]/y;

export type PathStep = string | number;

export function parseJsonPath(path: string): PathStep[] {
  if (!path.startsWith('$')) throw new Error(`JSON path ${path} must start with $`);
  const steps: PathStep[] = [];
  STEP.lastIndex = 1;
  while (STEP.lastIndex < path.length) {
    const at = STEP.lastIndex;
    const m = STEP.exec(path);
    if (!m) throw new Error(`JSON path ${path} is not understood at position ${at} (use $.name and [index])`);
    steps.push(m[1] !== undefined ? m[1] : Number(m[2]));
  }
  return steps;
}

/** The value at `path`, or `found: false` when a step does not exist (distinct from a JSON null). */
export function evalJsonPath(doc: unknown, path: string): { found: true; value: unknown } | { found: false } {
  let cur: unknown = doc;
  for (const step of parseJsonPath(path)) {
    if (typeof step === 'number') {
      if (!Array.isArray(cur) || step >= cur.length) return { found: false };
      cur = cur[step];
    } else {
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, step)) {
        return { found: false };
      }
      cur = (cur as Record<string, unknown>)[step];
    }
  }
  return { found: true, value: cur };
}
