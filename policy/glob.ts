/** Policy patterns: exact strings, or `*` for any run of characters. Nothing else is special. */
const cache = new Map<string, RegExp>();

export const isGlob = (pattern: string) => pattern.includes('*');

export function globMatch(pattern: string, value: string): boolean {
  if (!isGlob(pattern)) return pattern === value;
  let re = cache.get(pattern);
  if (!re) {
    re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&')).join('.*')}$`, 's');
    cache.set(pattern, re);
  }
  return re.test(value);
}

export const anyMatch = (patterns: readonly string[] | undefined, value: string) => (patterns ?? []).some((p) => globMatch(p, value));
