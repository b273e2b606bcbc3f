/**
 * Human output honours NO_COLOR and non-TTY stdout; --output json is for scripts.
 */
export interface Output {
  json: boolean;
  tty: boolean;
  bold(s: string): string;
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  dim(s: string): string;
}

export function makeOutput(format: string | undefined): Output {
  const json = format === 'json';
  const tty = Boolean(process.stdout.isTTY);
  const color = tty && !json && !process.env.NO_COLOR;
  const paint = (code: number, reset: number) => (s: string) => (color ? `\x1b[${code}m${s}\x1b[${reset}m` : s);
  return { json, tty, bold: paint(1, 22), green: paint(32, 39), red: paint(31, 39), yellow: paint(33, 39), dim: paint(2, 22) };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
