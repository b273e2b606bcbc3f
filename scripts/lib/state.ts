/**
 * .stack/state.json records what `up` started (pid = process group, binary, ports, service
 * details), so a later `up` reuses it and `down` stops exactly that and nothing else.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stackDir } from './paths.ts';

export interface ServiceRecord {
  pid: number;
  binary: string;
  ports: Record<string, number>;
  env: Record<string, string>;
  startedAt: string;
}

export type StackState = Record<string, ServiceRecord>;

const stateFile = join(stackDir, 'state.json');

export function loadState(): StackState {
  if (!existsSync(stateFile)) return {};
  return JSON.parse(readFileSync(stateFile, 'utf8')) as StackState;
}

export function saveState(state: StackState): void {
  mkdirSync(stackDir, { recursive: true });
  writeFileSync(`${stateFile}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${stateFile}.tmp`, stateFile);
}

const portsFile = join(stackDir, 'last-ports.json');

/**
 * Ports each service last had, kept across `down`: a restarted stack comes back on the same
 * addresses, so a .stack/env sourced earlier (and the kubeconfig) stays valid.
 */
export function loadLastPorts(): Record<string, Record<string, number>> {
  if (!existsSync(portsFile)) return {};
  return JSON.parse(readFileSync(portsFile, 'utf8')) as Record<string, Record<string, number>>;
}

export function rememberPorts(service: string, ports: Record<string, number>): void {
  const all = loadLastPorts();
  all[service] = ports;
  mkdirSync(stackDir, { recursive: true });
  writeFileSync(portsFile, JSON.stringify(all, null, 2) + '\n');
}

/** .stack/env: one `export` line per variable, quoted for the shell; `extra` wins over the services' own. */
export function writeEnvFile(state: StackState, extra: Record<string, string> = {}): string {
  const vars: Record<string, string> = {};
  for (const rec of Object.values(state)) Object.assign(vars, rec.env);
  Object.assign(vars, extra);
  const lines = Object.keys(vars)
    .sort()
    .map((k) => `export ${k}='${vars[k]!.replace(/'/g, `'\\''`)}'`);
  const file = join(stackDir, 'env');
  mkdirSync(stackDir, { recursive: true });
  writeFileSync(file, `# written by \`npm run stack -- up\`; source it: . .stack/env\n${lines.join('\n')}\n`);
  return file;
}
