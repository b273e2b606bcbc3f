/**
 * Push credentials for Git mode: a reference in the spec (`git.credentials.passwordFrom`: env,
 * file or Kubernetes Secret key), resolved by the worker when it pushes. The value never enters
 * the workflow's input, result, history or logs; it reaches git only as an HTTP header in the
 * child process's environment (cli.ts).
 *
 * Which references an app may use is the worker policy's decision, not the spec's. The policy
 * (another change, policy/ on main once merged) answers that for gate headers and webhooks with
 * its `references` rules; `checkPushReference` is the one place Git mode asks it. Until the policy
 * is wired in, the hook accepts every reference, as the other reference users on main do.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { describeValueFrom, resolveValueFrom, ValueFromError } from '../gates/value-from.ts';
import type { FluxTarget, SecretRef } from '../flux/types.ts';
import type { GitAuth } from './cli.ts';

export const GIT_CREDENTIALS = 'GitCredentialsUnavailable';

/** What the policy is asked: may this release push to `url` with the password behind `ref`? */
export interface PushReferenceRequest {
  target: Pick<FluxTarget, 'kind' | 'namespace' | 'name' | 'context'>;
  url: string;
  branch: string;
  ref: SecretRef;
}

/** Returns a refusal (a sentence naming the rule) or undefined when allowed. */
export type PushReferencePolicy = (req: PushReferenceRequest) => string | undefined;

let policy: PushReferencePolicy = () => undefined;

/** The worker installs its policy's answer here (worker/create.ts once the policy lands). */
export function setPushReferencePolicy(check: PushReferencePolicy): void {
  policy = check;
}

export function checkPushReference(req: PushReferenceRequest): void {
  const why = policy(req);
  if (why) throw ApplicationFailure.create({ type: 'PolicyDenied', nonRetryable: true, message: `refused by the worker's policy: ${why}` });
}

/** The credentials for pushing to `url`, or undefined when the target names none (anonymous push). */
export async function pushAuth(target: FluxTarget, url: string, branch: string): Promise<GitAuth | undefined> {
  const c = target.git?.credentials;
  if (!c) return undefined;
  checkPushReference({ target, url, branch, ref: c.passwordFrom });
  try {
    return { url, username: c.username ?? 'git', password: await resolveValueFrom(c.passwordFrom) };
  } catch (err) {
    if (err instanceof ValueFromError) {
      throw ApplicationFailure.create({
        type: GIT_CREDENTIALS,
        nonRetryable: !err.transient,
        message: `push credentials for ${target.kind} ${target.namespace}/${target.name} (${describeValueFrom(c.passwordFrom)}): ${err.message}`,
      });
    }
    throw err;
  }
}
