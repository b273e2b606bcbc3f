/**
 * Reading a release spec from YAML or JSON text, validating it, and turning every problem into
 * one line a person can fix: `path: what is wrong (hint)`, all of them at once.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { budgetProblems } from './budget.ts';
import { buildPlan, type ReleaseInput } from './plan.ts';
import { fieldsAt } from './fields.ts';
import { isUnsafeKey } from './safe.ts';
import { chefId, fluxId, releaseSpec, type ReleaseSpec } from './schema.ts';

type Parsed = ReturnType<typeof releaseSpec.parse>;

export interface SpecProblem {
  /** e.g. spec.chef[0].cookbooks.api_gateway; "" for the document itself */
  path: string;
  message: string;
}

export class InvalidSpecError extends Error {
  readonly problems: SpecProblem[];
  constructor(source: string, problems: SpecProblem[]) {
    super(`${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'InvalidSpecError';
    this.problems = problems;
  }
}

export const formatProblem = (p: SpecProblem) => `  ${p.path || '(document)'}: ${p.message}`;

export async function loadSpecFile(file: string): Promise<ReleaseInput> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidSpecError(file, [{ path: '', message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
  return parseSpecText(text, file);
}

/** Parses YAML (JSON is YAML too), validates, fills target ids and expands the plan. */
export function parseSpecText(text: string, source = 'spec'): ReleaseInput {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new InvalidSpecError(
      source,
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        return { path: '', message: `not valid YAML${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${e.message.split('\n')[0]}` };
      }),
    );
  }
  return validateSpec(doc.toJS(), source);
}

export function validateSpec(data: unknown, source = 'spec'): ReleaseInput {
  // zod drops a "__proto__" key silently; a spec that has one is refused, not quietly changed
  const unsafe = unsafeKeys(data);
  if (unsafe.length) throw new InvalidSpecError(source, unsafe);
  const result = releaseSpec.safeParse(data);
  if (!result.success) throw new InvalidSpecError(source, result.error.issues.flatMap(toProblems));
  const spec = withIds(result.data);
  const input = { spec, ...buildPlan(spec) };
  // a plan whose history or status could approach Temporal's limits is refused before it starts (budget.ts)
  const overBudget = budgetProblems(input);
  if (overBudget.length) throw new InvalidSpecError(source, overBudget);
  return input;
}

function withIds(spec: Parsed): ReleaseSpec {
  return {
    ...spec,
    spec: {
      ...spec.spec,
      flux: spec.spec.flux.map((t) => ({ ...t, id: fluxId(t) })),
      chef: spec.spec.chef.map((t) => ({ ...t, id: chefId(t) })),
    },
  };
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^$|[.\s[\]]/.test(String(seg))) out += `[${JSON.stringify(String(seg))}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** Every `__proto__`, `prototype` or `constructor` key in a parsed document, with its path. */
function unsafeKeys(data: unknown, path: (string | number)[] = [], found: SpecProblem[] = [], depth = 0): SpecProblem[] {
  if (depth > 32 || data === null || typeof data !== 'object') return found;
  if (Array.isArray(data)) {
    data.forEach((v, i) => unsafeKeys(v, [...path, i], found, depth + 1));
    return found;
  }
  for (const key of Object.keys(data)) {
    if (isUnsafeKey(key)) found.push({ path: formatPath([...path, key]), message: `"${key}" is not allowed as a key (__proto__, prototype and constructor are refused)` });
    else unsafeKeys((data as Record<string, unknown>)[key], [...path, key], found, depth + 1);
  }
  return found;
}

function toProblems(issue: z.core.$ZodIssue): SpecProblem[] {
  const path = formatPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const near = closest(key, fieldsAt(issue.path));
        return { path: formatPath([...issue.path, key]), message: `unknown field${near ? ` (did you mean "${near}"?)` : ''}` };
      });
    case 'invalid_type':
      // zod leaves the input out of issues; its default message ends with "received <type>"
      if (/received undefined$/.test(issue.message)) return [{ path, message: 'is required' }];
      return [{ path, message: issue.message.replace(/^Invalid input: /, '') }];
    case 'invalid_key':
      return [{ path, message: issue.issues[0]?.message ?? issue.message }];
    case 'too_small':
      if (issue.origin === 'string' && issue.minimum === 1) return [{ path, message: 'must not be empty' }];
      return [{ path, message: issue.message }];
    default:
      return [{ path, message: issue.message }];
  }
}

/** The known field name nearest to a typo, if it is close enough to be a likely intent. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
