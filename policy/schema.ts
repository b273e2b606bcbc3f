/**
 * The worker's policy: what the releases of each app may touch, and who may decide on them.
 * The release spec comes from an app repository's CI and is untrusted; this file comes from the
 * people who run the worker, and bounds every spec. See README "Security model".
 *
 * Strings are exact, or globs where `*` stands for any run of characters (`team-a-*`,
 * `*.example.com`). The first entry of `apps` whose `app` matches a release's app applies; an
 * app no entry matches may do nothing.
 */
import { z } from 'zod';
import { parsePublicKey } from './sshsig.ts';

export const POLICY_API_VERSION = 'hybrid-release.dev/v1alpha1';
export const POLICY_KIND = 'ReleasePolicy';

const pattern = z.string().min(1).max(512);
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/, { error: (i) => `${JSON.stringify(i.input)} is not an approver name (letters, digits, ".", "_", "@", "-")` });

/** GitRepository: Git mode reads the source a Kustomization reads and asks it to fetch now (reconcile request). */
export const KUBE_KINDS = ['Kustomization', 'HelmRelease', 'Ingress', 'Deployment', 'GitRepository'] as const;
export type KubeKind = (typeof KUBE_KINDS)[number];

const kubeRule = z.strictObject({
  /** kube contexts (names in the worker's kubeconfig); omitted: the worker's own cluster only (targets without `context`) */
  contexts: z.array(pattern).min(1).optional(),
  namespaces: z.array(pattern).min(1),
  /** default: all of them */
  kinds: z.array(z.enum(KUBE_KINDS, { error: `kinds are ${KUBE_KINDS.join(', ')}` })).min(1).optional(),
  /** object names; default: any in these namespaces */
  names: z.array(pattern).min(1).optional(),
});

/**
 * Git mode (docs/git-mode.md): where the app's releases may commit. The repository is the URL of
 * the GitRepository Flux reads (spec.url), as written there; the push credentials are references
 * (the app's `references` rules decide those).
 */
const gitRule = z.strictObject({
  repositories: z.array(pattern).min(1),
  /** default: any branch */
  branches: z.array(pattern).min(1).optional(),
  /** files in the repository (`*` crosses `/`); default: any */
  paths: z.array(pattern).min(1).optional(),
});

const secretRef = z.strictObject({ namespace: pattern, name: pattern, key: pattern.optional(), context: pattern.optional() });

const chefCredentials = z.union(
  [
    z.strictObject({ keyFile: pattern, clientName: pattern }),
    z.strictObject({ profile: pattern, credentialsFile: pattern.optional() }),
    z.strictObject({ secret: secretRef.omit({ key: true }) }),
  ],
  { error: 'a Chef credential is {keyFile, clientName}, {profile, credentialsFile?} or {secret: {namespace, name, context?}}' },
);

const chefRule = z.strictObject({
  /** chef_server_url as the spec writes it (or a glob) */
  server: pattern,
  environments: z.array(pattern).min(1),
  cookbooks: z.array(pattern).min(1),
  credentials: z.array(chefCredentials).min(1),
});

/** Where a gate header, a webhook URL or a gate's caFile may come from. */
const reference = z.union(
  [z.strictObject({ env: pattern }), z.strictObject({ file: pattern }), z.strictObject({ secret: secretRef })],
  { error: 'a reference is {env: NAME}, {file: PATH} or {secret: {namespace, name, key?, context?}}' },
);

const appRule = z.strictObject({
  /** the app name, or a glob */
  app: pattern,
  /** names from the top-level approvers; they decide (approve, abort, pause, resume, retry, skip) */
  approvers: z.array(name).default([]),
  kubernetes: z.array(kubeRule).default([]),
  chef: z.array(chefRule).default([]),
  /**
   * Where gates (HTTP, Prometheus) and webhooks may connect: `host`, `*.domain`, `host:port`, an
   * IP address or a CIDR (`10.20.0.0/16`). Loopback, link-local, metadata, private
   * (cluster-internal) and other special addresses are refused unless an address or CIDR entry
   * lists them — also when a listed name resolves to them.
   */
  hosts: z.array(pattern).default([]),
  references: z.array(reference).default([]),
  /** Git-mode commits; none: the app's releases may not commit to any repository */
  git: z.array(gitRule).default([]),
});

const approver = z.strictObject({
  /** OpenSSH public keys (authorized_keys lines) the approver signs decisions with */
  keys: z
    .array(
      z.string().superRefine((k, ctx) => {
        try {
          parsePublicKey(k);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      }),
    )
    .min(1, { error: 'an approver needs at least one public key' }),
});

export const policySchema = z
  .strictObject({
    apiVersion: z.literal(POLICY_API_VERSION, { error: `apiVersion must be ${POLICY_API_VERSION}` }),
    kind: z.literal(POLICY_KIND, { error: `kind must be ${POLICY_KIND}` }),
    approvers: z.record(name, approver).default({}),
    apps: z.array(appRule).default([]),
  })
  .superRefine((p, ctx) => {
    p.apps.forEach((a, i) =>
      a.approvers.forEach((who, j) => {
        if (!Object.hasOwn(p.approvers, who)) {
          ctx.addIssue({ code: 'custom', path: ['apps', i, 'approvers', j], message: `${who} is not in the top-level approvers (with the keys they sign with)` });
        }
      }),
    );
  });

export type PolicyDocument = z.output<typeof policySchema>;
export type AppRule = PolicyDocument['apps'][number];
export type KubeRule = AppRule['kubernetes'][number];
export type ChefRule = AppRule['chef'][number];
export type ReferenceRule = AppRule['references'][number];
export type ChefCredentialRule = ChefRule['credentials'][number];
export type GitRule = AppRule['git'][number];

/** A loaded policy and where it came from (named in every refusal). */
export interface Policy extends PolicyDocument {
  source: string;
}

/** No file, no releases: what a worker without a policy enforces. */
export function denyAll(source = 'no policy (HR_POLICY_FILE is not set)'): Policy {
  return { apiVersion: POLICY_API_VERSION, kind: POLICY_KIND, approvers: {}, apps: [], source };
}
