/**
 * Durations in the spec are strings people write in YAML: "90s", "10m", "1h30m", "1d", "500ms".
 * Temporal's own parser ("ms") takes only one unit, so specs are turned into milliseconds once,
 * at validation, and the original text is kept for display.
 */
const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/;

export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m || text.trim() === '') return undefined;
  const [, d, h, min, s, ms] = m;
  return (
    Number(d ?? 0) * UNIT_MS.d +
    Number(h ?? 0) * UNIT_MS.h +
    Number(min ?? 0) * UNIT_MS.m +
    Number(s ?? 0) * UNIT_MS.s +
    Number(ms ?? 0)
  );
}

/** "1h30m" style, for summaries and the UI. */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, size] of Object.entries(UNIT_MS)) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
