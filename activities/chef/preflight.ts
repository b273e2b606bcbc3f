/**
 * Checks made before a release changes anything: the environment exists and may be changed, the
 * credentials work, and every new constraint can actually be met by a cookbook on the server.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { CHEF_BAD_REQUEST, seg, type ChefClient } from './client.ts';
import { parseConstraint, parseVersion, satisfies } from './constraints.ts';
import { getEnvironment, pinsOf, refuseDefault, type CookbookPins } from './environment.ts';

export const CHEF_NO_MATCHING_VERSION = 'ChefNoMatchingVersion';

interface CookbookListing {
  [name: string]: { url?: string; versions?: { url?: string; version: string }[] };
}

/** Newest first. */
function byVersionDesc(a: string, b: string): number {
  const va = parseVersion(a) ?? [0, 0, 0];
  const vb = parseVersion(b) ?? [0, 0, 0];
  for (let i = 0; i < 3; i++) if (va[i] !== vb[i]) return vb[i]! - va[i]!;
  return 0;
}

/** Every version of a cookbook on the server, newest first. */
export async function cookbookVersions(client: ChefClient, cookbook: string, signal?: AbortSignal): Promise<string[]> {
  const listing = await client.get<CookbookListing>(`cookbooks/${seg(cookbook)}`, {
    // Chef Infra Server lists all versions here; num_versions=all makes older servers do the same
    query: { num_versions: 'all' },
    object: `cookbook ${cookbook}`,
    notFoundHint: `no version of cookbook ${cookbook} has been uploaded to this server: upload it (knife cookbook upload ${cookbook}) before releasing`,
    ...(signal ? { signal } : {}),
  });
  return (listing?.[cookbook]?.versions ?? []).map((v) => v.version).sort(byVersionDesc);
}

export interface PreflightResult {
  environment: string;
  /** the environment's current constraints for the release's cookbooks (null = none) */
  current: CookbookPins;
  /** cookbook -> versions on the server that satisfy the new constraint, newest first */
  matching: Record<string, string[]>;
}

export async function preflight(
  client: ChefClient,
  environment: string,
  cookbooks: Record<string, string>,
  signal?: AbortSignal,
): Promise<PreflightResult> {
  refuseDefault(client, environment);
  for (const [cb, constraint] of Object.entries(cookbooks)) {
    if (!parseConstraint(constraint)) {
      throw ApplicationFailure.create({
        type: CHEF_BAD_REQUEST,
        nonRetryable: true,
        message: `environment ${environment} on ${client.serverUrl}: ${JSON.stringify(constraint)} for cookbook ${cb} is not a Chef version constraint (an operator of = > < >= <= ~>, one space, 1 to 3 numbers, e.g. "~> 1.5")`,
      });
    }
  }
  // The environment read doubles as the credentials check: it is a signed request that needs read access.
  const env = await getEnvironment(client, environment, signal);
  const matching: Record<string, string[]> = {};
  const unmet: string[] = [];
  await Promise.all(
    Object.entries(cookbooks).map(async ([cb, constraint]) => {
      const versions = await cookbookVersions(client, cb, signal);
      matching[cb] = versions.filter((v) => satisfies(v, constraint));
      if (matching[cb].length === 0) {
        unmet.push(`cookbook ${cb}: no version satisfies "${constraint}" (versions on the server: ${versions.join(', ') || 'none'})`);
      }
    }),
  );
  if (unmet.length > 0) {
    throw ApplicationFailure.create({
      type: CHEF_NO_MATCHING_VERSION,
      nonRetryable: true,
      message: `Chef server ${client.serverUrl}, environment ${environment}: ${unmet.sort().join('; ')}. Upload a matching cookbook version or change the constraint in the release spec`,
      details: [{ server: client.serverUrl, environment, unmet: unmet.length }],
    });
  }
  return { environment, current: pinsOf(env, Object.keys(cookbooks)), matching };
}
