/**
 * Cookbook version pins in a Chef environment.
 *
 * The environments API has no ETag or If-Match and PUT replaces the whole object, so a change is a
 * read-modify-write that touches only `cookbook_versions` entries it was asked to change, keeps
 * every other field as read, and is verified by reading back.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { CHEF_BAD_REQUEST, CHEF_CONFLICT, seg, type ChefClient } from './client.ts';
import { isValidConstraint, parseConstraint } from './constraints.ts';

/** cookbook -> constraint; null = the environment has no entry for the cookbook */
export type CookbookPins = Record<string, string | null>;

export interface ChefEnvironment {
  name: string;
  description?: string;
  json_class?: string;
  chef_type?: string;
  default_attributes?: Record<string, unknown>;
  override_attributes?: Record<string, unknown>;
  cookbook_versions?: Record<string, string>;
}

export function refuseDefault(client: ChefClient, environment: string): void {
  if (environment === '_default') {
    throw ApplicationFailure.create({
      type: CHEF_BAD_REQUEST,
      nonRetryable: true,
      message: `Chef server ${client.serverUrl}: the _default environment cannot be modified; pin cookbook versions in a named environment`,
    });
  }
}

export function getEnvironment(client: ChefClient, environment: string, signal?: AbortSignal): Promise<ChefEnvironment> {
  return client.get<ChefEnvironment>(`environments/${seg(environment)}`, {
    object: `environment ${environment}`,
    notFoundHint: `create the environment (knife environment create ${environment}) or fix the environment name in the release spec`,
    ...(signal ? { signal } : {}),
  });
}

/** The current pins of the given cookbooks, "absent" kept as null. */
export function pinsOf(env: ChefEnvironment, cookbooks: Iterable<string>): CookbookPins {
  const current = env.cookbook_versions ?? {};
  const pins: CookbookPins = {};
  for (const cb of cookbooks) pins[cb] = Object.hasOwn(current, cb) ? current[cb]! : null;
  return pins;
}

const samePins = (a: CookbookPins, b: CookbookPins) => Object.keys(b).every((k) => a[k] === b[k]);

/**
 * Sets the given pins (null removes the entry) and returns what they were before. Nothing is
 * written when the environment already has them, so running it twice is the same as once.
 */
export interface ApplyOptions {
  /** looks at the environment as read, before anything is written (a guarded undo throws its conflict here) */
  guard?: (current: ChefEnvironment) => void;
  /** right before the PUT is sent: throws when the activity was cancelled (never during the PUT) */
  beforeWrite?: () => void;
}

export async function applyPins(
  client: ChefClient,
  environment: string,
  pins: CookbookPins,
  signal?: AbortSignal,
  options: ApplyOptions = {},
): Promise<{ previous: CookbookPins; changed: boolean }> {
  refuseDefault(client, environment);
  for (const [cb, constraint] of Object.entries(pins)) {
    if (constraint !== null && !isValidConstraint(constraint)) {
      throw ApplicationFailure.create({
        type: CHEF_BAD_REQUEST,
        nonRetryable: true,
        message: `environment ${environment} on ${client.serverUrl}: ${JSON.stringify(constraint)} for cookbook ${cb} is not a Chef version constraint (e.g. "= 1.5.3", "~> 1.5")`,
      });
    }
  }

  const env = await getEnvironment(client, environment, signal);
  options.guard?.(env);
  const previous = pinsOf(env, Object.keys(pins));
  if (samePins(previous, pins)) return { previous, changed: false };

  const cookbookVersions: Record<string, string> = { ...(env.cookbook_versions ?? {}) };
  for (const [cb, constraint] of Object.entries(pins)) {
    if (constraint === null) delete cookbookVersions[cb];
    else cookbookVersions[cb] = constraint;
  }
  // Only the documented fields go back (unknown keys are rejected), and `name` is the URL's name:
  // a different name would rename the environment.
  const body: ChefEnvironment = {
    name: environment,
    description: env.description ?? '',
    json_class: 'Chef::Environment',
    chef_type: 'environment',
    default_attributes: env.default_attributes ?? {},
    override_attributes: env.override_attributes ?? {},
    cookbook_versions: cookbookVersions,
  };
  options.beforeWrite?.();
  try {
    // no cancellation signal: a PUT that was sent runs to its own timeout, so no write lands after
    // the activity has ended (and the undo has started)
    await client.put(`environments/${seg(environment)}`, {
      object: `environment ${environment}`,
      body,
      notFoundHint: `the environment was deleted while it was being changed; recreate it or fix the environment name in the release spec`,
    });
  } catch (err) {
    // Chef Infra Server takes 1 to 3 version parts, but goiardi and Chef 11 want 2 or 3 ("~> 1" -> "~> 1.0")
    const short = Object.entries(pins).filter(([, c]) => c !== null && parseConstraint(c)?.parts === 1);
    if (err instanceof ApplicationFailure && err.type === CHEF_BAD_REQUEST && short.length > 0) {
      throw ApplicationFailure.create({
        type: CHEF_BAD_REQUEST,
        nonRetryable: true,
        message: `${err.message}. This server may not accept single-number versions: write ${short.map(([cb, c]) => `"${c}.0" for ${cb}`).join(', ')}`,
        details: err.details ? [...err.details] : [],
      });
    }
    throw err;
  }

  const after = pinsOf(await getEnvironment(client, environment, signal), Object.keys(pins));
  if (!samePins(after, pins)) {
    // Last writer wins on this API: someone changed the same entries between our PUT and GET.
    throw ApplicationFailure.create({
      type: CHEF_CONFLICT,
      nonRetryable: false,
      message:
        `environment ${environment} on ${client.serverUrl}: after writing ${JSON.stringify(pins)} the server has ${JSON.stringify(after)}; ` +
        'another writer (knife, another release) changed the same cookbooks concurrently. Will retry; stop the other writer if this repeats',
    });
  }
  return { previous, changed: true };
}
