/**
 * The narrowest policy that admits the given release specs: every target, credential, reference
 * and host exactly as the specs name them, and nothing else. A starting point for a policy entry
 * (`npm run policy -- suggest -f release.yaml`), and how `npm run demo` makes the policy its
 * worker runs with.
 */
import { isIP } from 'node:net';
import type { ReleaseSpec } from '../release-spec/schema.ts';
import { POLICY_API_VERSION, POLICY_KIND, type PolicyDocument } from './schema.ts';

type AppEntry = PolicyDocument['apps'][number];

const hostOf = (url: string) => {
  const u = new URL(url);
  const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
  const host = u.hostname;
  return isIP(host.replace(/^\[|\]$/g, '')) === 6 ? `${host.startsWith('[') ? host : `[${host}]`}:${port}` : `${host}:${port}`;
};

const uniq = <T>(items: T[]) => {
  const seen = new Set<string>();
  return items.filter((i) => {
    const k = JSON.stringify(i);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
};

export function suggestEntry(specs: ReleaseSpec[], approvers: string[] = []): AppEntry {
  const app = specs[0]!.spec.app;
  const kubernetes: AppEntry['kubernetes'] = [];
  const chef: AppEntry['chef'] = [];
  const hosts: string[] = [];
  const references: AppEntry['references'] = [];
  const git: AppEntry['git'] = [];
  const kube = (kind: 'Kustomization' | 'HelmRelease' | 'Ingress' | 'Deployment', t: { namespace: string; name: string; context?: string }) =>
    kubernetes.push({ ...(t.context ? { contexts: [t.context] } : {}), namespaces: [t.namespace], kinds: [kind], names: [t.name] });
  for (const spec of specs) {
    const body = spec.spec;
    if (body.app !== app) throw new Error(`suggestEntry: specs of two apps (${app}, ${body.app})`);
    for (const t of body.flux) {
      kube(t.kind, t);
      if (!t.git) continue;
      // the repository and the Kustomization that applies the file are in the cluster, not in the spec: narrow them by hand
      git.push({ repositories: ['*'], paths: [t.git.path] });
      if (t.git.credentials) references.push(t.git.credentials.passwordFrom as AppEntry['references'][number]);
    }
    if (body.canary) kube('Ingress', body.canary.ingress);
    for (const t of body.chef) chef.push({ server: t.serverUrl, environments: [t.environment], cookbooks: Object.keys(t.cookbooks), credentials: [t.credentials as AppEntry['chef'][number]['credentials'][number]] });
    for (const g of Object.values(body.gates)) {
      if (g.rollout) kube('Deployment', g.rollout);
      if (g.prometheus) hosts.push(hostOf(g.prometheus.url));
      if (g.http) {
        hosts.push(hostOf(g.http.url));
        for (const ref of Object.values(g.http.headers ?? {})) references.push(ref as AppEntry['references'][number]);
        if (g.http.caFile) references.push({ file: g.http.caFile });
      }
    }
    for (const w of body.notifications.webhooks) references.push(w.urlFrom as AppEntry['references'][number]);
  }
  return { app, approvers, kubernetes: uniq(kubernetes), chef: uniq(chef), hosts: uniq(hosts), references: uniq(references), git: uniq(git) };
}

/** A whole policy document for the specs, with the approvers' public keys (name -> authorized_keys line). */
export function suggestPolicy(specs: ReleaseSpec[], approvers: Record<string, string> = {}): PolicyDocument {
  const byApp = new Map<string, ReleaseSpec[]>();
  for (const s of specs) byApp.set(s.spec.app, [...(byApp.get(s.spec.app) ?? []), s]);
  return {
    apiVersion: POLICY_API_VERSION,
    kind: POLICY_KIND,
    approvers: Object.fromEntries(Object.entries(approvers).map(([name, key]) => [name, { keys: [key] }])),
    apps: [...byApp.values()].map((group) => suggestEntry(group, Object.keys(approvers))),
  };
}
