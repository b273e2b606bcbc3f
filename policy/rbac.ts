/**
 * Least privilege from the policy: the worker's Kubernetes permissions, one Role per namespace
 * the policy names, holding only the verbs the activities use on the kinds the policy allows
 * there (and only the named objects where the policy names them exactly). Nothing is granted
 * cluster-wide except asking the API server what the worker may do (SelfSubjectAccessReview).
 *
 *   npm run policy -- rbac deploy/policy.yaml [--context NAME] > deploy/rbac.yaml
 */
import { Document, isScalar, visit } from 'yaml';
import { globMatch, isGlob } from './glob.ts';
import { KUBE_KINDS, type KubeKind, type PolicyDocument } from './schema.ts';

export interface RbacOptions {
  serviceAccount?: { namespace: string; name: string };
  /** the cluster to generate for: a kube context name, or undefined for the worker's own cluster */
  context?: string;
  /** Secrets of the worker's own namespace are never granted */
  ownNamespace?: string;
}

type Obj = Record<string, unknown>;

const FLUX: Record<'Kustomization' | 'HelmRelease', { group: string; plural: string }> = {
  Kustomization: { group: 'kustomize.toolkit.fluxcd.io', plural: 'kustomizations' },
  HelmRelease: { group: 'helm.toolkit.fluxcd.io', plural: 'helmreleases' },
};

export const DEFAULT_SA = { namespace: 'hybrid-release', name: 'hybrid-release-worker' };

/** Whether a rule's contexts cover the cluster being generated for. */
function forCluster(contexts: readonly string[] | undefined, context: string | undefined): boolean {
  if (context === undefined) return contexts === undefined || contexts.includes('*');
  return (contexts ?? []).some((c) => globMatch(c, context));
}

class PatternError extends Error {}

function exact(what: string, value: string): string {
  if (isGlob(value)) throw new PatternError(`${what} ${JSON.stringify(value)} is a pattern: a Role needs the namespace itself (list the namespaces, or write that Role by hand)`);
  return value;
}

interface NamespaceGrant {
  /** kind -> exact names, or null for "any name" */
  kinds: Map<KubeKind, Set<string> | null>;
}

export function rbacObjects(policy: PolicyDocument, o: RbacOptions = {}): Obj[] {
  const sa = o.serviceAccount ?? DEFAULT_SA;
  const own = o.ownNamespace ?? sa.namespace;
  const grants = new Map<string, NamespaceGrant>();
  const secrets = new Map<string, Set<string> | null>();

  for (const app of policy.apps) {
    for (const rule of app.kubernetes) {
      if (!forCluster(rule.contexts, o.context)) continue;
      for (const nsPattern of rule.namespaces) {
        const ns = exact('namespace', nsPattern);
        const g = grants.get(ns) ?? { kinds: new Map() };
        grants.set(ns, g);
        for (const kind of rule.kinds ?? KUBE_KINDS) {
          const names = g.kinds.get(kind);
          if (names === null) continue;
          if (!rule.names || rule.names.some(isGlob)) g.kinds.set(kind, null);
          else g.kinds.set(kind, new Set([...(names ?? []), ...rule.names]));
        }
      }
    }
    const secretRefs = [
      ...app.references.flatMap((r) => ('secret' in r ? [r.secret] : [])),
      ...app.chef.flatMap((c) => c.credentials.flatMap((cr) => ('secret' in cr ? [cr.secret] : []))),
    ];
    for (const s of secretRefs) {
      if (!forCluster(s.context ? [s.context] : undefined, o.context)) continue;
      const ns = exact('Secret namespace', s.namespace);
      if (ns === own) continue; // never: the worker's own credentials live there
      const names = secrets.get(ns);
      if (names === null) continue;
      secrets.set(ns, isGlob(s.name) ? null : new Set([...(names ?? []), s.name]));
    }
  }

  const subjects = [{ kind: 'ServiceAccount', name: sa.name, namespace: sa.namespace }];
  const labels = { 'app.kubernetes.io/name': 'hybrid-release-worker', 'app.kubernetes.io/part-of': 'hybrid-release' };
  const role = (namespace: string, name: string, rules: Obj[], comment?: string): Obj[] => [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace, labels, ...(comment ? { annotations: { 'hybrid-release.dev/why': comment } } : {}) }, rules },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace, labels }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects },
  ];
  const named = (names: Set<string> | null | undefined) => (names ? { resourceNames: [...names].sort() } : {});

  const out: Obj[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: sa.namespace, labels } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa.name, namespace: sa.namespace, labels } },
    // Preflight asks the API server what the worker may do. (system:basic-user grants this too;
    // stated so the permissions are complete on clusters that trimmed the defaults.)
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'hybrid-release-worker-self-review', labels }, rules: [{ apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews'], verbs: ['create'] }] },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'hybrid-release-worker-self-review', labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'hybrid-release-worker-self-review' },
      subjects,
    },
  ];

  for (const ns of [...grants.keys()].sort()) {
    const kinds = grants.get(ns)!.kinds;
    const rules: Obj[] = [];
    for (const kind of ['Kustomization', 'HelmRelease'] as const) {
      if (!kinds.has(kind)) continue;
      const { group, plural } = FLUX[kind];
      // read, pin + request a reconcile (one merge patch), and watch one object while it reconciles
      rules.push({ apiGroups: [group], resources: [plural], verbs: ['get', 'patch'], ...named(kinds.get(kind)) });
      rules.push({ apiGroups: [group], resources: [plural], verbs: ['watch'] });
    }
    // the rollout gate reads its Deployment; a Kustomization's preflight reads the Deployments of its inventory
    if (kinds.has('Deployment') || kinds.has('Kustomization')) {
      rules.push({ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'], ...(kinds.has('Kustomization') ? {} : named(kinds.get('Deployment'))) });
    }
    // the rollout gate with an expected image lists the Deployment's pods, in this namespace only
    if (kinds.has('Deployment')) rules.push({ apiGroups: [''], resources: ['pods'], verbs: ['list'] });
    // Git mode: read the source a Kustomization reads, and ask it to fetch now (the requestedAt annotation)
    if (kinds.has('GitRepository')) rules.push({ apiGroups: ['source.toolkit.fluxcd.io'], resources: ['gitrepositories'], verbs: ['get', 'patch'], ...named(kinds.get('GitRepository')) });
    if (kinds.has('Ingress')) rules.push({ apiGroups: ['networking.k8s.io'], resources: ['ingresses'], verbs: ['get', 'patch'], ...named(kinds.get('Ingress')) });
    out.push(...role(ns, 'hybrid-release-worker', rules));
  }
  for (const ns of [...secrets.keys()].sort()) {
    // the namespace of referenced credentials is the worker's to create (apps' namespaces are not)
    out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } });
    out.push(...role(ns, 'hybrid-release-worker-references', [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], ...named(secrets.get(ns)) }], 'Secrets the policy lets releases reference (Chef keys, gate headers, webhook URLs)'));
  }
  return out;
}

export function rbacYaml(policy: PolicyDocument, o: RbacOptions & { from?: string } = {}): string {
  const header = [
    `# Generated from ${o.from ?? 'the worker policy'} by \`npm run policy -- rbac${o.from ? ` ${o.from}` : ''}${o.context ? ` --context ${o.context}` : ''}\`: do not edit by hand.`,
    '# Least privilege for the hybrid-release worker: one Role per namespace the policy names, with',
    '# only the verbs its activities use on the kinds the policy allows there; Secrets only where the',
    "# policy's references point, never in the worker's own namespace. Nothing cluster-wide but",
    '# SelfSubjectAccessReview. Regenerate after every policy change (a unit test checks this file).',
  ].join('\n');
  const yaml = (obj: Obj) => {
    const doc = new Document(obj);
    // lists of plain values on one line, as people write RBAC rules
    visit(doc, { Seq: (_k, node) => void (node.items.every(isScalar) && (node.flow = true)) });
    return doc.toString({ lineWidth: 0 });
  };
  return `${header}\n${rbacObjects(policy, o).map(yaml).join('---\n')}`;
}

export { PatternError };
