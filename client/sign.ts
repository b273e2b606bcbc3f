/**
 * Signing decisions with the approver's own SSH key, as `ssh-keygen -Y sign` does (so an
 * ssh-agent, a passphrase prompt or a key on a hardware token all work as they do for git).
 * The key: --key, else HR_SIGNING_KEY, else the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
 * Give the public key (…pub) to sign with the key held by ssh-agent.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DECISION_NAMESPACE, decisionMessage } from '../policy/decision.ts';
import type { Command, Decision } from '../workflows/messages.ts';

export function signingKey(explicit?: string): string | undefined {
  if (explicit) return explicit;
  if (process.env.HR_SIGNING_KEY) return process.env.HR_SIGNING_KEY;
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => join(homedir(), '.ssh', f)).find((f) => existsSync(f));
}

export class SigningError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SigningError';
  }
}

/** An armored SSH signature of `message` made with the key at `keyPath` (private key, or public key held by ssh-agent). */
export async function sshSign(keyPath: string, message: string, namespace = DECISION_NAMESPACE): Promise<string> {
  if (!existsSync(keyPath)) throw new SigningError(`signing key ${keyPath} does not exist (set HR_SIGNING_KEY or --key to your SSH key)`);
  const dir = mkdtempSync(join(tmpdir(), 'hr-sign-'));
  const file = join(dir, 'decision');
  try {
    writeFileSync(file, message, { mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      // stdin stays the terminal, so a passphrase prompt works
      execFile('ssh-keygen', ['-Y', 'sign', '-q', '-f', keyPath, '-n', namespace, file], { timeout: 120_000 }, (err, _stdout, stderr) => {
        if (!err) return resolve();
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ssh-keygen is not installed (OpenSSH 8.0 or later signs decisions)' : stderr.trim().split('\n').pop() || err.message;
        reject(new SigningError(`cannot sign with ${keyPath}: ${why}`));
      });
    });
    return readFileSync(`${file}.sig`, 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The decision with its proof: signed over this command on this run of this release. */
export async function signDecision(
  target: { workflowId: string; runId: string },
  command: Command,
  decision: Decision,
  keyPath: string | undefined = signingKey(),
): Promise<Decision> {
  if (!keyPath) {
    throw new SigningError(`${command} must be signed with your SSH key, and none was found: set HR_SIGNING_KEY (or --key) to it, e.g. ~/.ssh/id_ed25519 (ssh-keygen -t ed25519 makes one; its .pub line goes into the worker's policy)`);
  }
  const at = new Date().toISOString();
  const nonce = randomBytes(16).toString('hex');
  const message = decisionMessage({ ...target, command, by: decision.by, ...(decision.reason ? { reason: decision.reason } : {}), at, nonce });
  return { by: decision.by, ...(decision.reason ? { reason: decision.reason } : {}), proof: { at, nonce, signature: await sshSign(keyPath, message) } };
}
