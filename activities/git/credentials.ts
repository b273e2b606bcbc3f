/**
 * Push credentials for Git mode: a reference in the spec (`git.credentials.passwordFrom`: env,
 * file or Kubernetes Secret key), resolved by the worker when it pushes. The value never enters
 * the workflow's input, result, history or logs; it reaches git only as an HTTP header in the
 * child process's environment (cli.ts).
 *
 * Which references an app may use is the worker policy's decision: its `references` rules, which
 * resolveValueFrom asks before it reads anything (as for gate headers and webhook URLs), and the
 * admission checks before the release starts (policy/check.ts).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { describeValueFrom, resolveValueFrom, ValueFromError } from '../gates/value-from.ts';
import type { FluxTarget } from '../flux/types.ts';
import type { GitAuth } from './cli.ts';

export const GIT_CREDENTIALS = 'GitCredentialsUnavailable';

/** The credentials for pushing to `url`, or undefined when the target names none (anonymous push). */
export async function pushAuth(target: FluxTarget, url: string): Promise<GitAuth | undefined> {
  const c = target.git?.credentials;
  if (!c) return undefined;
  try {
    return { url, username: c.username ?? 'git', password: await resolveValueFrom(c.passwordFrom) };
  } catch (err) {
    if (err instanceof ValueFromError) {
      const refused = /refused by the worker's policy/.test(err.message);
      throw ApplicationFailure.create({
        type: refused ? 'PolicyDenied' : GIT_CREDENTIALS,
        nonRetryable: !err.transient,
        message: `push credentials for ${target.kind} ${target.namespace}/${target.name} (${describeValueFrom(c.passwordFrom)}): ${err.message}`,
      });
    }
    throw err;
  }
}
