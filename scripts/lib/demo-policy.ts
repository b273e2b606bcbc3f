/**
 * The policy `npm run demo` runs its worker with: exactly what the demo's release spec names
 * (policy/suggest.ts), nothing more, and two approvers — `demo` (for --auto-approve) and you, by
 * your OS user name — who sign with a key made for the demo in .stack/. A worker without a policy
 * refuses every release; this is how the demo gets one.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ReleaseSpec } from '../../release-spec/schema.ts';
import { type GitRule, type KubeRule, type Policy, policySchema } from '../../policy/schema.ts';
import { suggestPolicy } from '../../policy/suggest.ts';
import { stackDir } from './paths.ts';

export interface DemoPolicy {
  policy: Policy;
  /** where the policy was written, for people to read */
  file: string;
  /** the private key the demo's approvers sign with */
  key: string;
  /** the name `hybrid-release approve` uses for you (--as defaults to it) */
  you: string;
}

/**
 * `extra`: rules the spec cannot name, merged into the app's entry — for --git, the Kustomization
 * that applies the file and its GitRepository (in the cluster) and the repository it reads.
 */
export function demoPolicy(spec: ReleaseSpec, extra: { kubernetes?: KubeRule[]; git?: GitRule[] } = {}): DemoPolicy {
  const dir = join(stackDir, 'demo-approver');
  const key = join(dir, 'id_ed25519');
  if (!existsSync(key)) {
    mkdirSync(dir, { recursive: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'hybrid-release demo approver', '-f', key]);
  }
  const publicKey = readFileSync(`${key}.pub`, 'utf8').trim();
  const you = process.env.USER ?? userInfo().username;
  const doc = suggestPolicy([spec], { demo: publicKey, ...(you !== 'demo' ? { [you]: publicKey } : {}) });
  const entry = doc.apps[0]!;
  entry.kubernetes.push(...(extra.kubernetes ?? []));
  if (extra.git) entry.git = extra.git;
  const file = join(stackDir, 'demo-policy.yaml');
  writeFileSync(file, `# written by npm run demo: what the demo's release may touch, and who may decide\n${stringify(doc, { lineWidth: 0 })}`);
  return { policy: { ...policySchema.parse(doc), source: file }, file, key, you };
}
