/**
 * One app's view of the policy: every question an activity or the admission asks ("may this
 * release patch HelmRelease cert-manager/cert-manager?") answered with a refusal that names the
 * rule, or undefined when it is allowed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { posix } from 'node:path';
import { anyMatch, globMatch, isGlob } from './glob.ts';
import { DestinationGuard } from './net.ts';
import type { AppRule, ChefCredentialRule, KubeKind, Policy } from './schema.ts';
import { parsePublicKey, type SshPublicKey } from './sshsig.ts';

export interface KubeObjectRef {
  kind: KubeKind;
  context?: string;
  namespace: string;
  name: string;
}

export type ValueRef = { env: string } | { file: string } | { secret: { name: string; namespace: string; key: string; context?: string } };

export type ChefCredentialsRef =
  | { keyFile: string; clientName: string }
  | { profile: string; credentialsFile?: string }
  | { secret: { name: string; namespace: string; context?: string } };

export interface ChefTargetRef {
  serverUrl: string;
  environment: string;
  cookbooks: Record<string, unknown>;
  credentials: ChefCredentialsRef;
}

const expandHome = (p: string) => (p === '~' || p.startsWith('~/') ? homedir() + p.slice(1) : p);

/** An absolute, normalized path, or undefined for a relative one (never matched). */
export function normalPath(p: string): string | undefined {
  const e = expandHome(p);
  return e.startsWith('/') ? posix.normalize(e) : undefined;
}

/** chef_server_url without a trailing slash and with the scheme's default port dropped. */
export function normalServer(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return url;
  }
}

/** The worker's own namespace (its Temporal and TLS Secrets live there). */
function ownNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  const file = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
  try {
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  } catch {
    // not in a pod
  }
  return 'hybrid-release';
}

/**
 * The worker's own credentials are never a reference, whatever a policy says: the Temporal
 * connection (TEMPORAL_* variables and the files they name), the kubeconfig, the pod's
 * ServiceAccount token and the Secrets of the worker's own namespace.
 */
export function reservedReference(ref: ValueRef | { keyFile: string }): string | undefined {
  if ('env' in ref) {
    if (/^TEMPORAL_/i.test(ref.env) || /^KUBECONFIG$/i.test(ref.env) || /^HR_/i.test(ref.env)) return `${ref.env} is the worker's own configuration and never a reference`;
    return undefined;
  }
  if ('file' in ref || 'keyFile' in ref) {
    const p = normalPath('file' in ref ? ref.file : ref.keyFile);
    if (!p) return `${'file' in ref ? ref.file : ref.keyFile} is not an absolute path`;
    const own = ['TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'KUBECONFIG']
      .flatMap((v) => (process.env[v] ?? '').split(':'))
      .filter(Boolean)
      .map((f) => normalPath(f));
    if (/^\/(var\/)?run\/secrets\/kubernetes\.io\//.test(p) || own.includes(p)) return `${p} holds the worker's own credentials and is never a reference`;
    return undefined;
  }
  if (ref.secret.namespace === ownNamespace() && !ref.secret.context) return `Secrets in the worker's own namespace ${ref.secret.namespace} are never a reference`;
  return undefined;
}

/** A URL as shown and matched: without user info (a GitRepository URL may carry a user name). */
const stripUserInfo = (url: string) => url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');

const describeRef = (ref: ValueRef) =>
  'env' in ref ? `env ${ref.env}` : 'file' in ref ? `file ${ref.file}` : `secret ${ref.secret.namespace}/${ref.secret.name} key ${ref.secret.key}${ref.secret.context ? ` (context ${ref.secret.context})` : ''}`;

function describeCredentials(c: ChefCredentialsRef): string {
  if ('keyFile' in c) return `key file ${c.keyFile} (client ${c.clientName})`;
  if ('profile' in c) return `knife profile ${c.profile}${c.credentialsFile ? ` in ${c.credentialsFile}` : ''}`;
  return `Secret ${c.secret.namespace}/${c.secret.name}${c.secret.context ? ` (context ${c.secret.context})` : ''}`;
}

/** A context pattern list: omitted covers only targets without `context` (the worker's own cluster); `*` covers all. */
const contextOk = (patterns: readonly string[] | undefined, context: string | undefined) =>
  context === undefined ? patterns === undefined || patterns.includes('*') : anyMatch(patterns, context);

const pathOk = (pattern: string, value: string) => {
  const v = normalPath(value);
  const p = isGlob(pattern) ? expandHome(pattern) : normalPath(pattern);
  return v !== undefined && p !== undefined && globMatch(p, v);
};

function credentialOk(rule: ChefCredentialRule, c: ChefCredentialsRef): boolean {
  if ('keyFile' in rule) return 'keyFile' in c && pathOk(rule.keyFile, c.keyFile) && globMatch(rule.clientName, c.clientName);
  if ('profile' in rule) {
    if (!('profile' in c) || !globMatch(rule.profile, c.profile)) return false;
    return pathOk(rule.credentialsFile ?? '~/.chef/credentials', c.credentialsFile ?? '~/.chef/credentials');
  }
  return 'secret' in c && globMatch(rule.secret.namespace, c.secret.namespace) && globMatch(rule.secret.name, c.secret.name) && contextOk(rule.secret.context ? [rule.secret.context] : undefined, c.secret.context);
}

export class AppScope {
  readonly policy: Policy;
  readonly app: string;
  readonly entry: AppRule | undefined;
  private readonly index: number;

  constructor(policy: Policy, app: string) {
    this.policy = policy;
    this.app = app;
    this.index = policy.apps.findIndex((a) => globMatch(a.app, app));
    this.entry = this.index >= 0 ? policy.apps[this.index] : undefined;
  }

  /** `kubernetes of app storefront (policy /etc/…/policy.yaml, apps[0] "storefront")` */
  rule(section: string): string {
    if (!this.entry) return `policy ${this.policy.source}`;
    return `${section} of app ${this.app} (policy ${this.policy.source}, apps[${this.index}] "${this.entry.app}")`;
  }

  /** Why the app may do nothing at all, or undefined. */
  get unknownApp(): string | undefined {
    if (this.entry) return undefined;
    return `no entry of the worker's policy (${this.policy.source}) matches app ${this.app}: a worker refuses every release of an app its policy does not name`;
  }

  kube(t: KubeObjectRef): string | undefined {
    if (this.unknownApp) return this.unknownApp;
    const ok = this.entry!.kubernetes.some(
      (r) => contextOk(r.contexts, t.context) && anyMatch(r.namespaces, t.namespace) && (r.kinds ?? [t.kind]).includes(t.kind) && (r.names === undefined || anyMatch(r.names, t.name)),
    );
    if (ok) return undefined;
    return `${t.kind} ${t.namespace}/${t.name}${t.context ? ` (context ${t.context})` : ''} is outside the ${this.rule('kubernetes targets')}`;
  }

  /** Whether the app has any Kubernetes rule covering this namespace (for reads such as an inventory lookup). */
  mayRead(namespace: string, context?: string): boolean {
    return !!this.entry?.kubernetes.some((r) => contextOk(r.contexts, context) && anyMatch(r.namespaces, namespace));
  }

  chef(t: ChefTargetRef): string[] {
    if (this.unknownApp) return [this.unknownApp];
    const server = normalServer(t.serverUrl);
    const rules = this.entry!.chef.filter((r) => globMatch(isGlob(r.server) ? r.server : normalServer(r.server), server));
    if (rules.length === 0) return [`Chef server ${server} is not among the ${this.rule('Chef servers')}`];
    const envRules = rules.filter((r) => anyMatch(r.environments, t.environment));
    if (envRules.length === 0) return [`Chef environment ${t.environment} on ${server} is not among the ${this.rule('Chef environments')}`];
    const problems: string[] = [];
    const cookbooks = Object.keys(t.cookbooks).filter((cb) => !envRules.some((r) => anyMatch(r.cookbooks, cb)));
    if (cookbooks.length) problems.push(`cookbook${cookbooks.length > 1 ? 's' : ''} ${cookbooks.join(', ')} in ${t.environment} on ${server}: not among the ${this.rule('Chef cookbooks')}`);
    const c = t.credentials;
    const reserved = 'keyFile' in c ? reservedReference({ keyFile: c.keyFile }) : 'secret' in c ? reservedReference({ secret: { ...c.secret, key: '' } }) : undefined;
    if (reserved) problems.push(`Chef credentials: ${reserved}`);
    else if (!envRules.some((r) => r.credentials.some((c) => credentialOk(c, t.credentials)))) {
      problems.push(`Chef credentials ${describeCredentials(t.credentials)} are not among the ${this.rule('Chef credentials')} for ${t.environment} on ${server}`);
    }
    return problems;
  }

  /** Git mode: may the app's releases commit to `path` on `branch` of the repository at `url`? */
  git(req: { url: string; branch: string; path: string }): string | undefined {
    if (this.unknownApp) return this.unknownApp;
    const url = stripUserInfo(req.url);
    const repos = this.entry!.git.filter((r) => anyMatch(r.repositories, url));
    if (repos.length === 0) return `repository ${url} is not among the ${this.rule('Git repositories')}`;
    const branches = repos.filter((r) => r.branches === undefined || anyMatch(r.branches, req.branch));
    if (branches.length === 0) return `branch ${req.branch} of ${url} is not among the ${this.rule('Git branches')}`;
    if (!branches.some((r) => r.paths === undefined || anyMatch(r.paths, req.path))) return `${req.path} in ${url} (branch ${req.branch}) is not among the ${this.rule('Git paths')}`;
    return undefined;
  }

  /** Admission of a Git-mode target, before the repository is known (it is read from the cluster): the file. */
  gitPath(path: string): string | undefined {
    if (this.unknownApp) return this.unknownApp;
    if (this.entry!.git.length === 0) return `the app may not commit to Git: no ${this.rule('Git repositories')}`;
    if (this.entry!.git.some((r) => r.paths === undefined || anyMatch(r.paths, path))) return undefined;
    return `${path} is not among the ${this.rule('Git paths')}`;
  }

  /** A gate header value, a webhook URL or a gate caFile may come from this reference. */
  reference(ref: ValueRef): string | undefined {
    if (this.unknownApp) return this.unknownApp;
    const reserved = reservedReference(ref);
    if (reserved) return reserved;
    const ok = this.entry!.references.some((r) => {
      if ('env' in r) return 'env' in ref && globMatch(r.env, ref.env);
      if ('file' in r) return 'file' in ref && pathOk(r.file, ref.file);
      if (!('secret' in ref)) return false;
      const s = r.secret;
      return globMatch(s.namespace, ref.secret.namespace) && globMatch(s.name, ref.secret.name) && (s.key === undefined || globMatch(s.key, ref.secret.key)) && contextOk(s.context ? [s.context] : undefined, ref.secret.context);
    });
    return ok ? undefined : `${describeRef(ref)} is not among the ${this.rule('references')}`;
  }

  guard(): DestinationGuard {
    return new DestinationGuard(this.entry?.hosts ?? [], this.rule('hosts'));
  }

  /** Name-level check of a URL a gate or webhook would call. */
  destination(url: string): string | undefined {
    if (this.unknownApp) return this.unknownApp;
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return 'not a URL';
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${u.protocol} URLs are not allowed (http and https only)`;
    const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
    return this.guard().checkHost(u.hostname, port);
  }

  /** Who may decide on this app's releases (names). */
  approvers(): string[] {
    return this.entry?.approvers ?? [];
  }

  keysOf(name: string): SshPublicKey[] {
    if (!this.approvers().includes(name) || !Object.hasOwn(this.policy.approvers, name)) return [];
    return this.policy.approvers[name]!.keys.map(parsePublicKey);
  }
}
