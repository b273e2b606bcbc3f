/**
 * Long-running services started by `stack up` outlive the command, so each one is spawned
 * detached in its own process group, with output in a log file and its pid recorded. `down` then
 * signals the whole group, which also reaches anything the service forked itself.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Started {
  pid: number;
}

export function startDetached(
  cmd: string,
  args: string[],
  opts: { logFile: string; cwd?: string; env?: NodeJS.ProcessEnv },
): Started {
  const fd = openSync(opts.logFile, 'a');
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  child.unref();
  return { pid: child.pid };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie still answers kill(0) until reaped; treat it as gone
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}

/** Guards against a recycled pid: the recorded pid must still run the binary we started. */
export function runs(pid: number, binary: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => a === binary || a.endsWith(`/${binary.split('/').pop()}`));
  } catch {
    return false;
  }
}

/** SIGTERM the process group, wait for it to go, SIGKILL what is left. */
export async function stopGroup(pgid: number, graceMs = 10_000): Promise<'stopped' | 'killed' | 'absent'> {
  if (!anyInGroup(pgid)) return 'absent';
  try {
    process.kill(-pgid, 'SIGTERM');
  } catch {
    return 'absent';
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!anyInGroup(pgid)) return 'stopped';
    await sleep(100);
  }
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  for (let i = 0; i < 50 && anyInGroup(pgid); i++) await sleep(100);
  return 'killed';
}

/** kill(-pgid, 0) succeeds for zombies too; look for live members of the group in /proc. */
function anyInGroup(pgid: number): boolean {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields after comm: state ppid pgrp ...
      if (Number(rest[2]) === pgid && rest[0] !== 'Z') return true;
    } catch {
      /* raced with exit */
    }
  }
  return false;
}
