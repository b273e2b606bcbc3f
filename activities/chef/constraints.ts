/**
 * Chef cookbook version constraints, with the server's exact grammar: "<op> <version>" with one
 * space, op in = > < >= <= ~>, a bare version meaning "=", and 1 to 3 integer parts.
 * Pure (no I/O, no node: imports) so the spec schema and workflow bundle can use it too.
 */
export type Operator = '=' | '>' | '<' | '>=' | '<=' | '~>';
export interface Constraint {
  op: Operator;
  version: [number, number, number];
  /** how many parts were written: "~> 1.2" and "~> 1.2.3" differ */
  parts: number;
}

const GRAMMAR = /^(?:(=|>=|<=|~>|>|<) )?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/;

export function parseConstraint(text: unknown): Constraint | null {
  if (typeof text !== 'string') return null;
  const m = GRAMMAR.exec(text);
  if (!m) return null;
  const parts = [m[2], m[3], m[4]].filter((p) => p !== undefined).length;
  return { op: (m[1] as Operator | undefined) ?? '=', version: [Number(m[2]), Number(m[3] ?? 0), Number(m[4] ?? 0)], parts };
}

export const isValidConstraint = (text: unknown): boolean => parseConstraint(text) !== null;

/** A cookbook version as the server lists it ("5.1.0"); missing parts count as 0. */
export function parseVersion(text: string): [number, number, number] | null {
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(text);
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : null;
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

export function satisfies(version: string, constraint: string | Constraint): boolean {
  const c = typeof constraint === 'string' ? parseConstraint(constraint) : constraint;
  const v = parseVersion(version);
  if (!c || !v) return false;
  const cmp = compare(v, c.version);
  switch (c.op) {
    case '=': return cmp === 0;
    case '>': return cmp > 0;
    case '<': return cmp < 0;
    case '>=': return cmp >= 0;
    case '<=': return cmp <= 0;
    case '~>':
      // "~> 1.2" allows 1.x from 1.2 on; "~> 1.2.3" allows 1.2.x from 1.2.3 on ("~> 1" acts as "~> 1.0")
      if (cmp < 0) return false;
      return c.parts <= 2 ? v[0] === c.version[0] : v[0] === c.version[0] && v[1] === c.version[1];
  }
}
