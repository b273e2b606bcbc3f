/**
 * Validates the Kubernetes manifests in deploy/ against a real API server without changing it:
 * every object goes through a server-side apply with dryRun=All and fieldValidation=Strict, so the
 * server's schema (unknown or misspelt fields are errors, not warnings), defaulting and admission
 * run exactly as for `kubectl apply --server-side --dry-run=server`. Nothing is persisted.
 *
 *   set -a; . .stack/env; set +a        # or any KUBECONFIG
 *   node scripts/deploy-dry-run.ts [deploy/kustomization.yaml] [--create-namespaces]
 *
 * Reads the kustomization's `resources` (plain files) and applies its `images` overrides; any
 * other kustomize feature is refused rather than silently ignored.
 * Namespaced objects can only be dry-run into a namespace that exists: when one is missing, the
 * run says so and fails, unless --create-namespaces is given, which creates (for real) the
 * Namespace objects found in the manifests first.
 *
 * Exit code 0 when the server accepted every object, 1 otherwise.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

interface Obj extends k8s.KubernetesObject {
  metadata: k8s.V1ObjectMeta & { name: string };
}
interface Container {
  image?: string;
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'images']);
const FIELD_MANAGER = 'hybrid-release-dry-run';

function loadKustomization(path: string): Obj[] {
  const k = parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const unsupported = Object.keys(k).filter((key) => !SUPPORTED.has(key));
  if (unsupported.length) throw new Error(`${path}: this check does not implement ${unsupported.join(', ')}; use kustomize build`);
  const dir = dirname(path);
  const objects: Obj[] = [];
  for (const file of (k.resources as string[] | undefined) ?? []) {
    const docs = parseAllDocuments(readFileSync(resolve(dir, file), 'utf8'));
    for (const doc of docs) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const o = doc.toJS() as Obj | null;
      if (o) objects.push(o);
    }
  }
  const images = (k.images as { name: string; newName?: string; newTag?: string; digest?: string }[] | undefined) ?? [];
  for (const o of objects) {
    const pod = (o as { spec?: { template?: { spec?: { containers?: Container[]; initContainers?: Container[] } } } }).spec?.template?.spec;
    for (const c of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
      if (!c.image) continue;
      const [name, tag] = splitImage(c.image);
      const rule = images.find((i) => i.name === name);
      if (!rule) continue;
      c.image = `${rule.newName ?? name}${rule.digest ? `@${rule.digest}` : `:${rule.newTag ?? tag ?? 'latest'}`}`;
    }
  }
  return objects;
}

function splitImage(image: string): [string, string | undefined] {
  const at = image.indexOf('@');
  if (at >= 0) return [image.slice(0, at), undefined];
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? [image.slice(0, colon), image.slice(colon + 1)] : [image, undefined];
}

const describe = (o: Obj) => `${o.kind}/${o.metadata.name}${o.metadata.namespace ? ` (namespace ${o.metadata.namespace})` : ''}`;

function errorText(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    try {
      const status = JSON.parse(err.body as string) as { message?: string };
      return `${err.code}: ${status.message ?? err.body}`;
    } catch {
      return `${err.code}: ${String(err.body)}`;
    }
  }
  return (err as Error).message ?? String(err);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const createNamespaces = args.includes('--create-namespaces');
  const path = resolve(args.find((a) => !a.startsWith('--')) ?? new URL('../deploy/kustomization.yaml', import.meta.url).pathname);
  const objects = loadKustomization(path);

  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster: set KUBECONFIG (e.g. `set -a; . .stack/env; set +a`)');

  // Strict field validation on every write, and the server's warnings (deprecations, PodSecurity)
  // collected. The client serializes a body through its typed models, which silently drops fields
  // it does not know (a misspelt field would never reach the server): the body sent is the
  // manifest exactly as written instead.
  const warnings: string[] = [];
  let body: Obj | undefined;
  const config = k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [
      {
        pre: async (ctx) => {
          if (ctx.getHttpMethod() !== k8s.HttpMethod.GET) {
            ctx.setQueryParam('fieldValidation', 'Strict');
            if (body) ctx.setBody(JSON.stringify(body));
          }
          return ctx;
        },
        post: async (res) => {
          const w = res.headers.warning;
          if (w) warnings.push(w);
          return res;
        },
      },
    ],
  });
  const client = new k8s.KubernetesObjectApi(config);
  const core = kc.makeApiClient(k8s.CoreV1Api);

  console.log(`server ${cluster.server}: server-side apply, dryRun=All, fieldValidation=Strict — ${path}`);
  const namespaces = new Set(objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name));
  const missing = new Set<string>();
  for (const ns of namespaces) {
    try {
      await core.readNamespace({ name: ns });
    } catch (err) {
      if (!(err instanceof k8s.ApiException && err.code === 404)) throw err;
      if (createNamespaces) {
        await core.createNamespace({ body: { metadata: { name: ns } } });
        console.log(`  created namespace ${ns} (--create-namespaces)`);
      } else missing.add(ns);
    }
  }

  let failed = 0;
  for (const o of objects) {
    const ns = o.metadata.namespace;
    if (ns && missing.has(ns)) {
      console.log(`  SKIP ${describe(o)}: namespace ${ns} does not exist yet (rerun with --create-namespaces)`);
      failed++;
      continue;
    }
    warnings.length = 0;
    try {
      body = o;
      await client.patch(o, undefined, 'All', FIELD_MANAGER, true, k8s.PatchStrategy.ServerSideApply);
      console.log(`  ok   ${describe(o)}`);
    } catch (err) {
      console.log(`  FAIL ${describe(o)}: ${errorText(err)}`);
      failed++;
    } finally {
      body = undefined;
    }
    for (const w of warnings) console.log(`       warning: ${w}`);
  }
  console.log(failed ? `${objects.length - failed} passed, ${failed} failed` : `${objects.length} passed, 0 failed`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`deploy-dry-run: ${(err as Error).message ?? err}`);
    process.exit(1);
  },
);
