/**
 * The main job, on embedded defaults: seeds a sample app on the local stack (the storefront's
 * manifests committed to the stack's Git server, a GitRepository and a Kustomization that the
 * real source- and kustomize-controller apply, a Deployment that kube-controller-manager rolls
 * out through ReplicaSets onto kwok's nodes, a canary Ingress; a Chef environment with two
 * cookbook versions and five nodes), starts a canary release that pauses for approval, prints the
 * Temporal UI link and the exact approve / abort commands, and ends with a summary of both worlds
 * read back from the servers (the Deployment's pod-template image and ready replicas included).
 *
 *   npm run demo                  # waits for you to approve or abort from another terminal
 *   npm run demo -- --auto-approve
 *   npm run demo -- --broken      # releases 2.1.0-broken, whose pods never become Ready (kwok's
 *                                 # fault stage): the gates fail, Chef and Flux are restored, and
 *                                 # the release says RolledBack once the 2.0.0 pods are Ready again
 *   npm run demo -- --git         # Git mode: the release commits the new tag to the repository
 *                                 # Flux reads (flux bootstrap layout), and prints the commit it
 *                                 # made and the revision Flux applied (with --broken: the revert)
 *
 * Kubernetes is the real thing end to end (Git source → kustomize-controller → Deployment →
 * ReplicaSet → kwok pods). The five gateway VMs are the stack's fleet simulator: they run
 * chef-client every few seconds against the real Chef server, so the convergence gate waits for
 * their runs on the new version. Everything else is the real thing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger, makeTelemetryFilterString } from '@temporalio/worker';
import { closeChefPools } from '../activities/chef/client.ts';
import { exitCodeFor, followRelease } from '../client/follow.ts';
import { makeOutput } from '../client/output.ts';
import { sendCommand, startRelease, uiLink } from '../client/releases.ts';
import { progressLines, renderStatus } from '../client/render.ts';
import { loadSpecFile } from '../release-spec/load.ts';
import type { ReleaseStatus } from '../workflows/messages.ts';
import { TASK_QUEUE } from '../workflows/search-attributes.ts';
import { createWorker } from '../worker/create.ts';
import { adminClient, chefServerEnv, createEnvironment, fleetApi, uploadCookbook } from '../test/support/chef-fixtures.ts';
import { adminKubeConfig, createCanaryIngress, createKustomization, createNamespace, fluxGroups, getFluxObject, waitForFluxReady } from '../test/support/seed-kube.ts';
import { stackDir } from './lib/paths.ts';
import { requireEnv } from '../test/support/env.ts';
import { demoPolicy } from './lib/demo-policy.ts';
import { appManifestPath, createBootstrap, type Bootstrap } from '../test/support/bootstrap.ts';
import { gitRepoUrl } from '../test/support/sources.ts';

const { values: flags } = parseArgs({ options: { 'auto-approve': { type: 'boolean' }, broken: { type: 'boolean' }, git: { type: 'boolean' } } });
/** the tag the release ships: with --broken one whose pods never become Ready */
const NEW_TAG = flags.broken ? '2.1.0-broken' : '2.1.0';
const IMAGE = 'ghcr.io/acme/storefront-web';
const out = makeOutput('text');
const say = (s = '') => process.stdout.write(`${s}\n`);

const APP = 'storefront';
const NS = 'storefront';
const ENVIRONMENT = 'production';
const COOKBOOK = 'api_gateway';
const NODES = ['gw-eu-1', 'gw-eu-2', 'gw-us-1', 'gw-us-2', 'gw-ap-1'];
/** the gateway VMs' chef-client interval and splay while the demo runs (afterwards: chef-client's 30m + 5m) */
const DEMO_INTERVAL_MS = 4_000;
const DEMO_SPLAY_MS = 3_000;

/** --git: the storefront laid out the flux bootstrap way; the release commits to this repository. */
const GIT_LAYOUT: Bootstrap = {
  system: 'flux-system',
  repo: 'demo/fleet',
  apps: [{ kind: 'Kustomization', namespace: NS, name: 'storefront-web', image: IMAGE, tag: '2.0.0' }],
};

async function seed(): Promise<void> {
  const kc = adminKubeConfig();
  await createNamespace(NS, kc);
  // --git: committing 2.0.0 to the layout again resets a previous run
  if (flags.git) await createBootstrap(GIT_LAYOUT, kc);
  else await seedLive(kc);
  const net = kc.makeApiClient(k8s.NetworkingV1Api);
  await net.deleteNamespacedIngress({ namespace: NS, name: 'storefront-web-canary' }).catch(() => undefined);
  await createCanaryIngress({ namespace: NS, name: 'storefront-web-canary', host: 'shop.example.com', serviceName: 'storefront-web-canary' }, kc);
  await seedChef();
}

async function seedLive(kc: k8s.KubeConfig): Promise<void> {
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const existing = await getFluxObject(fluxGroups.kustomization, NS, 'storefront-web', kc).catch(() => undefined);
  if (existing) {
    // a later run starts from 2.0.0 again: Flux puts it back and rolls it out
    await custom.patchNamespacedCustomObject(
      { group: 'kustomize.toolkit.fluxcd.io', version: 'v1', namespace: NS, plural: 'kustomizations', name: 'storefront-web', body: { metadata: { annotations: { 'reconcile.fluxcd.io/requestedAt': `demo-seed-${Date.now()}` } }, spec: { images: [{ name: IMAGE, newTag: '2.0.0' }] } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await waitForFluxReady(fluxGroups.kustomization, NS, 'storefront-web', kc);
  } else {
    // the storefront's manifests (Deployment with 3 replicas and a short progress deadline, Service)
    // committed to the stack's Git server; a GitRepository and a Kustomization with wait: true
    await createKustomization({ namespace: NS, name: 'storefront-web', images: [{ name: IMAGE, newTag: '2.0.0' }], replicas: 3, progressDeadlineSeconds: 15 }, kc);
  }
}

async function seedChef(): Promise<void> {
  const chef = adminClient();
  for (const v of ['2.0.0', '2.1.0']) await uploadCookbook(chef, COOKBOOK, v);
  await chef.delete(`environments/${ENVIRONMENT}`, { object: ENVIRONMENT }).catch(() => undefined);
  await createEnvironment(chef, ENVIRONMENT, { [COOKBOOK]: '= 2.0.0' });
  // the gateway VMs (bootstrapped again on a re-run), on 2.0.0 before the release starts
  const fleet = fleetApi();
  const since = Date.now();
  await fleet.add({ environment: ENVIRONMENT, names: NODES, runList: [`recipe[${COOKBOOK}]`], intervalMs: DEMO_INTERVAL_MS, splayMs: DEMO_SPLAY_MS });
  await fleet.waitForVersion({ names: NODES }, COOKBOOK, '2.0.0', { afterMs: since, count: NODES.length, timeoutMs: 120_000 });
}

/** The release spec, written next to the stack's env so it can be validated and read. */
function writeSpec(): string {
  const chef = chefServerEnv();
  const exporterQuery = 'sum(rate(demo_http_requests_total{code="500"}[20s])) / sum(rate(demo_http_requests_total[20s]))';
  const yaml = `# written by npm run demo: a canary release of the storefront on the local stack
apiVersion: hybrid-release.dev/v1alpha1
kind: HybridRelease
metadata:
  name: storefront-2-1-0
spec:
  app: ${APP}
  version: "2.1.0"
  chef:
    - id: gateway
      serverUrl: ${chef.serverUrl}
      environment: ${ENVIRONMENT}
      cookbooks:
        ${COOKBOOK}: "= 2.1.0"
      credentials:
        keyFile: ${chef.keyFile}
        clientName: ${chef.clientName}
  flux:
    - id: web
      kind: Kustomization
      namespace: ${NS}
      name: storefront-web
      images:
        - name: ${IMAGE}
          newTag: "${NEW_TAG}"
${flags.git ? gitBlock() : ''}  canary:
    ingress: { namespace: ${NS}, name: storefront-web-canary }
  gates:
    gateway-converged:
      chefConvergence: { target: gateway, minPercent: 100 }
      timeout: 2m
      interval: 2s
    web-ready:
      fluxReady: { target: web }
      timeout: 2m
      interval: 1s
    web-rollout:
      rollout: { namespace: ${NS}, name: storefront-web }
      timeout: 2m
      interval: 1s
    error-rate:
      prometheus:
        url: ${requireEnv('PROMETHEUS_URL')}
        query: ${JSON.stringify(exporterQuery)}
        comparison: "<"
        threshold: 0.05
        onEmpty: wait
      timeout: 2m
      interval: 2s
      successes: 3
  steps:
    - chef: gateway
    - gate: gateway-converged
    - flux: web
    - gate: [web-ready, web-rollout]
    - setWeight: 20
    - pause: { duration: 5s }
    - gate: error-rate
    - pause: { deadline: 30m, onTimeout: abort }
    - setWeight: 100
`;
  const file = join(stackDir, 'demo-release.yaml');
  writeFileSync(file, yaml);
  return file;
}

/** Git mode of the Flux target: the file Flux reads, and the push token by reference (a file the worker reads). */
function gitBlock(): string {
  return `      git:
        path: ${appManifestPath(GIT_LAYOUT.apps[0]!)}
        credentials:
          username: ${requireEnv('HR_GIT_PUSH_USER')}
          passwordFrom: { file: ${requireEnv('HR_GIT_PUSH_PASSWORD_FILE')} }
`;
}

async function main(): Promise<number> {
  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } } });
  say(out.bold('hybrid-release demo: one release across Kubernetes (Flux) and Chef VMs'));
  say('seeding the sample app: storefront manifests in the stack\'s Git server, applied by kustomize-controller');
  say(flags.git
    ? `(Kustomization storefront/storefront-web at 2.0.0, itself applied from Git by ${GIT_LAYOUT.system}/flux-system, repository ${GIT_LAYOUT.repo}), a canary Ingress,`
    : '(Kustomization storefront/storefront-web at 2.0.0, 3 pods on kwok nodes), a canary Ingress,');
  say(`Chef environment ${ENVIRONMENT} with ${COOKBOOK} pinned to = 2.0.0, and ${NODES.length} gateway VMs running chef-client`);
  say(`every ${DEMO_INTERVAL_MS / 1000}-${(DEMO_INTERVAL_MS + DEMO_SPLAY_MS) / 1000}s (the stack's fleet simulator: npm run stack -- nodes list)`);
  await seed();
  const specFile = writeSpec();
  const input = await loadSpecFile(specFile);
  // the worker refuses what its policy does not allow: the demo's allows exactly this spec
  const approvals = demoPolicy(
    input.spec,
    // --git: the release also reads and asks flux-system to reconcile, and commits to its repository
    flags.git ? { kubernetes: [{ namespaces: [GIT_LAYOUT.system], kinds: ['Kustomization', 'GitRepository'], names: ['flux-system'] }], git: [{ repositories: [gitRepoUrl(GIT_LAYOUT.repo)], branches: ['main'], paths: [appManifestPath(GIT_LAYOUT.apps[0]!)] }] } : {},
  );

  const address = requireEnv('TEMPORAL_ADDRESS');
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  const native = await NativeConnection.connect({ address });
  const worker = await createWorker({ connection: native, namespace, taskQueue: TASK_QUEUE, policy: approvals.policy });
  const working = worker.run();
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });

  try {
    const handle = await startRelease(client, { ...input, startedBy: 'demo' });
    const link = uiLink(namespace, handle.workflowId);
    const env = `source ${join(stackDir, 'env')}`;
    say();
    say(`spec: ${specFile}${flags.broken ? ` (--broken: ships ${NEW_TAG}, whose pods never become Ready)` : ''}`);
    say(`policy: ${approvals.file} (what the worker lets this release touch, and who may decide)`);
    say(`started ${out.bold(handle.workflowId)}`);
    if (link) say(`Temporal UI: ${link}`);
    say();
    let prompted = false;
    let prevStatus: ReleaseStatus | undefined;
    const followed = await followRelease(handle, (s: ReleaseStatus) => {
      for (const line of progressLines(prevStatus, s, out)) say(line);
      prevStatus = s;
      if (s.phase === 'AwaitingApproval' && !prompted) {
        prompted = true;
        if (flags['auto-approve']) {
          void sendCommand(handle, 'approve', { by: 'demo', reason: '--auto-approve' }, { key: approvals.key }).catch((e) => say(out.red(e.message)));
          return;
        }
        say();
        say(out.yellow('The canary is at 20% and healthy; the release waits for a person. In another terminal:'));
        say(`  ${env} && node client/bin.ts approve ${APP} --key ${approvals.key} --reason "canary looks good"`);
        say(`  ${env} && node client/bin.ts abort ${APP} --key ${approvals.key} --reason "not today"`);
        say(`  (decisions are signed with your SSH key: the demo's policy lists you, ${approvals.you}, with the key above)`);
        say(`  (status: node client/bin.ts status ${APP}; nobody answering within 30m aborts)`);
        say();
      }
    });
    const status = followed.status;
    say();
    if (!status) {
      say(out.red(`the release ended without a status (exit code ${exitCodeFor(followed)}): see the Temporal UI`));
      return 1;
    }
    say(renderStatus(status, out));
    if (flags.git) say(gitSummary(status));
    say(await worldSummary());
    if (flags.broken) return status.phase === 'RolledBack' ? 0 : 1;
    return status.phase === 'Succeeded' ? 0 : 1;
  } finally {
    // the gateway VMs stay, at chef-client's default pace so an idle stack stays cheap
    await fleetApi().fault({ names: NODES, intervalMs: 30 * 60_000, splayMs: 5 * 60_000 }).catch(() => undefined);
    worker.shutdown();
    await working;
    await native.close();
    await connection.close();
    await closeChefPools();
    say('the stack keeps running (npm run stack -- down stops it)');
  }
}

/** --git: the commit the release made (and its revert) and the revision Flux applied, from the release's record. */
function gitSummary(status: ReleaseStatus): string {
  const change = status.changes.find((c) => c.system === 'flux');
  const git = (change?.after as { git?: { commit: string; revision: string; path: string } } | undefined)?.git;
  const applied = (name: string) => (status.gates.find((g) => g.gate === name)?.observed as { lastAppliedRevision?: string } | undefined)?.lastAppliedRevision;
  return [
    out.bold('Git:'),
    `  commit      ${git ? `${git.commit} to ${git.path} (${GIT_LAYOUT.repo}, branch main)` : 'none (the release stopped before it)'}`,
    `  Flux        ${applied('web-ready') ? `applied ${applied('web-ready')}` : 'did not report the commit applied (the release failed first)'}`,
    ...(applied('rollback/web-ready') ? [`  rollback    Flux applied the revert: ${applied('rollback/web-ready')}`] : []),
  ].join('\n');
}

/** Both worlds as they are now, read back from the servers. */
async function worldSummary(): Promise<string> {
  const kc = adminKubeConfig();
  const k = (await getFluxObject(fluxGroups.kustomization, NS, 'storefront-web', kc)) as { spec: { images: { name: string; newTag?: string }[] }; status: { conditions?: { type: string; status: string; reason: string }[]; lastAppliedRevision?: string } };
  const ready = k.status.conditions?.find((c) => c.type === 'Ready');
  const d = await kc.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({ namespace: NS, name: 'storefront-web' });
  const pods = (await kc.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace: NS, labelSelector: 'app=storefront-web' })).items.filter((p) => !p.metadata?.deletionTimestamp);
  const podLine = pods
    .map((p) => `${p.metadata?.name} ${p.spec?.containers[0]?.image?.split(':').pop()} ${p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? 'Ready' : 'not Ready'} on ${p.spec?.nodeName}`)
    .sort();
  const ing = await kc.makeApiClient(k8s.NetworkingV1Api).readNamespacedIngress({ namespace: NS, name: 'storefront-web-canary' });
  const env = await adminClient().get<{ cookbook_versions: Record<string, string> }>(`environments/${ENVIRONMENT}`, { object: ENVIRONMENT });
  return [
    out.bold('both worlds now:'),
    `  Kubernetes  Kustomization ${NS}/storefront-web images: ${k.spec.images.map((i) => `${i.name}:${i.newTag}`).join(', ')} — Ready=${ready?.status} ${ready?.reason ?? ''} at ${k.status.lastAppliedRevision ?? '?'}`,
    `              Deployment pod template: ${d.spec?.template.spec?.containers.map((c) => c.image).join(', ')}; ready replicas ${d.status?.readyReplicas ?? 0}/${d.spec?.replicas} (updated ${d.status?.updatedReplicas ?? 0})`,
    ...podLine.map((l) => `              pod ${l}`),
    `              canary weight: ${ing.metadata?.annotations?.['nginx.ingress.kubernetes.io/canary-weight'] ?? 'none'}`,
    `  Chef        environment ${ENVIRONMENT}: ${Object.entries(env.cookbook_versions).map(([c, v]) => `${c} ${v}`).join(', ')}`,
    `              gateway VMs, last chef-client run: ${(await fleetApi().list({ names: NODES })).map((n) => `${n.name} ${n.lastRun?.status ?? 'none'} on ${n.lastRun?.versions?.[COOKBOOK] ?? '?'}`).join(', ')}`,
  ].join('\n');
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
