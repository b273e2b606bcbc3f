/**
 * For `validate`: reads the spec's Flux targets with the local kubeconfig (read-only, a few
 * seconds at most) and reports what would make their gates weaker than they look — the same
 * warnings the release's preflight records in its status. Without a reachable cluster it says
 * the targets were not checked; it never changes the exit code.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fluxWarnings } from '../activities/flux/preflight.ts';
import { gitOwnership } from '../activities/flux/ownership.ts';
import { fluxRef, getFlux } from '../activities/flux/resource.ts';
import type { FluxTarget } from '../activities/flux/types.ts';

export interface TargetCheck {
  /** warnings about targets that could be read */
  warnings: string[];
  /** targets that could not be read, with why (no kubeconfig, unreachable, 404, 403) */
  notChecked: string[];
}

const TIMEOUT_MS = 5_000;

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${TIMEOUT_MS / 1000}s`)), TIMEOUT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer)).catch((err: Error) => {
    throw new Error(`${what}: ${err.message.split('\n')[0]}`);
  });
}

export async function checkFluxTargets(targets: FluxTarget[]): Promise<TargetCheck> {
  const out: TargetCheck = { warnings: [], notChecked: [] };
  if (targets.length === 0) return out;
  if (!process.env.KUBECONFIG && !existsSync(join(homedir(), '.kube', 'config'))) {
    out.notChecked.push('Flux targets not checked: no kubeconfig (set KUBECONFIG to check them)');
    return out;
  }
  await Promise.all(
    targets.map(async (t) => {
      const what = `${t.kind} ${t.namespace}/${t.name}${t.context ? ` (context ${t.context})` : ''}`;
      try {
        const obj = await withTimeout(getFlux(fluxRef(t)), what);
        out.warnings.push(...fluxWarnings(t, obj));
        // live mode on a field a parent applies from Git: the release's preflight will refuse it
        const own = t.git || t.acceptDrift ? undefined : gitOwnership(t, obj);
        if (own?.owned.length && !own.exempt) {
          out.warnings.push(`${what}: ${own.owned.join(', ')} is applied from Git by Flux Kustomization ${own.parent ?? '(a parent)'}, so preflight will refuse a live patch: release it in Git mode (git.path), or set acceptDrift: true`);
        }
      } catch (err) {
        out.notChecked.push(`${what} not checked: ${(err as Error).message}`);
      }
    }),
  );
  return out;
}
