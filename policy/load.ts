/** Reading the policy file: YAML (or JSON), validated, every problem reported with its path. */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { denyAll, type Policy, policySchema } from './schema.ts';

export class InvalidPolicyError extends Error {
  constructor(source: string, problems: string[]) {
    super(`${source}: the policy is not valid (${problems.length} problem${problems.length === 1 ? '' : 's'})\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'InvalidPolicyError';
  }
}

/** A Kubernetes ConfigMap that carries the policy under `data["policy.yaml"]` is read too. */
function unwrapConfigMap(doc: unknown): unknown {
  const cm = doc as { kind?: unknown; data?: Record<string, unknown> } | null;
  if (cm?.kind === 'ConfigMap' && typeof cm.data?.['policy.yaml'] === 'string') {
    return parseDocument(cm.data['policy.yaml'] as string, { uniqueKeys: true }).toJS();
  }
  return doc;
}

export function parsePolicy(text: string, source: string): Policy {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length) throw new InvalidPolicyError(source, doc.errors.map((e) => `not valid YAML: ${e.message.split('\n')[0]}`));
  const result = policySchema.safeParse(unwrapConfigMap(doc.toJS()));
  if (!result.success) {
    throw new InvalidPolicyError(
      source,
      result.error.issues.map((i) => `${i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') || '(document)'}: ${i.message}`),
    );
  }
  return { ...result.data, source };
}

export function loadPolicyFile(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidPolicyError(file, [`cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  return parsePolicy(text, file);
}

/** The policy the worker runs with: HR_POLICY_FILE, or none (every release refused). */
export function policyFromEnv(env: NodeJS.ProcessEnv = process.env): Policy {
  return env.HR_POLICY_FILE ? loadPolicyFile(env.HR_POLICY_FILE) : denyAll();
}
