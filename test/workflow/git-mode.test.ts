/**
 * Releases in Git mode, end to end on the real stack: the release workflow on the Temporal dev
 * server with the real activities, the stack's Git server (pushes need credentials, which the
 * worker reads from a Kubernetes Secret named in the spec) and the real Flux controllers,
 * kube-controller-manager and kwok. The apps are laid out the `flux bootstrap` way
 * (test/support/bootstrap.ts): a parent Kustomization applies each app's Kustomization from Git.
 * Failures come from the real thing: a `-broken` tag kwok never makes Ready, a person's commit.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import * as k8s from '@kubernetes/client-node';
import { validateSpec } from '../../release-spec/load.ts';
import { sendCommand, startRelease } from '../../client/releases.ts';
import { type ReleaseStatus, statusQuery } from '../../workflows/messages.ts';
import { requireEnv, uniqueName } from '../support/env.ts';
import { adminKubeConfig, fluxGroups, getFluxObject } from '../support/seed-kube.ts';
import { appManifestPath, createBootstrap, reconcileParent, type Bootstrap, type BootstrapApp } from '../support/bootstrap.ts';
import { commitEdit, readRepoFile, repoLog } from '../support/sources.ts';
import { startTestWorker, type TestWorker } from '../support/temporal.ts';

const WEB = 'ghcr.io/acme/web';
const kc = adminKubeConfig();
const apps = kc.makeApiClient(k8s.AppsV1Api);
const core = kc.makeApiClient(k8s.CoreV1Api);
const suffix = uniqueName('gw');
const appNs = `${suffix}-apps`;
const names = { ok: `${suffix}-ok`, broken: `${suffix}-bad`, conflict: `${suffix}-cf`, one: `${suffix}-one`, two: `${suffix}-two`, live: `${suffix}-live` };
const layout: Bootstrap = {
  system: `${suffix}-fs`,
  repo: `${suffix}/fleet`,
  apps: Object.values(names).map((name): BootstrapApp => ({ kind: 'Kustomization', namespace: appNs, name, image: WEB, tag: '1.0.0' })),
};
const SECRET = 'git-push';

let tw: TestWorker;

before(async () => {
  await createBootstrap(layout, kc);
  // the push token, where the worker reads it: a Secret the spec names (never the value itself)
  await core.createNamespacedSecret({
    namespace: layout.system,
    body: { metadata: { name: SECRET }, stringData: { password: readFileSync(requireEnv('HR_GIT_PUSH_PASSWORD_FILE'), 'utf8').trim() } },
  });
  tw = await startTestWorker();
});
after(async () => {
  await tw?.stop();
});

function release(app: string, opts: { tag?: string; git?: boolean; steps?: unknown[]; gates?: Record<string, unknown> } = {}) {
  const tag = opts.tag ?? '1.1.0';
  return validateSpec({
    apiVersion: 'hybrid-release.dev/v1alpha1',
    kind: 'HybridRelease',
    metadata: { name: `${app}-${tag.replace(/[^a-z0-9]+/g, '-')}` },
    spec: {
      app,
      version: tag,
      flux: [
        {
          id: 'web',
          kind: 'Kustomization',
          namespace: appNs,
          name: app,
          images: [{ name: WEB, newTag: tag }],
          ...(opts.git === false
            ? {}
            : { git: { path: appManifestPath({ name: app }), credentials: { username: requireEnv('HR_GIT_PUSH_USER'), passwordFrom: { secret: { namespace: layout.system, name: SECRET, key: 'password' } } } } }),
        },
      ],
      gates: opts.gates ?? { ready: { fluxReady: { target: 'web' }, timeout: '4m', interval: '1s' } },
      ...(opts.steps ? { steps: opts.steps } : {}),
    },
  });
}

const image = async (name: string) => (await apps.readNamespacedDeployment({ namespace: appNs, name })).spec?.template.spec?.containers[0]?.image;

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 240_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs / 1000}s; last seen ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const waitForPhase = (handle: WorkflowHandle, phase: string) =>
  until(`release ${handle.workflowId} in phase ${phase}`, () => handle.query(statusQuery), (s) => {
    if (s.phase !== phase && ['Succeeded', 'RolledBack', 'Failed'].includes(s.phase)) assert.fail(`release ended ${s.phase} (${s.error ?? ''}), expected ${phase}`);
    return s.phase === phase;
  });

async function failed(handle: WorkflowHandle): Promise<{ message: string; status: ReleaseStatus }> {
  const err = await handle.result().then(
    () => assert.fail('the release succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError, String(err));
  const cause = err.cause as { message: string; details?: unknown[] };
  return { message: cause.message, status: cause.details?.[0] as ReleaseStatus };
}

/** The commit the release made, as its status records it. */
const gitOf = (s: ReleaseStatus) => (s.changes[0]!.after as { git: { commit: string; revision: string; path: string } }).git;

describe('releases in Git mode', () => {
  it('succeeds: commits to the branch Flux reads, the gate sees Flux apply that commit, and it survives a reconcile of the parent from source', async () => {
    const app = names.ok;
    const path = appManifestPath({ name: app });
    const before = await readRepoFile(layout.repo, path);
    const handle = await startRelease(tw.client, release(app, { gates: { ready: { fluxReady: { target: 'web' }, timeout: '4m', interval: '1s' }, rollout: { rollout: { namespace: appNs, name: app, image: `${WEB}:1.1.0` }, timeout: '2m', interval: '1s' } } }), { taskQueue: tw.taskQueue });
    const status = (await handle.result()) as ReleaseStatus;
    assert.equal(status.phase, 'Succeeded', status.error);
    const git = gitOf(status);
    const commit = (await repoLog(layout.repo)).find((c) => c.sha === git.commit);
    assert.ok(commit, `commit ${git.commit} is on main`);
    assert.ok(commit.message.includes(`Workflow-Id: ${handle.workflowId}`), commit.message);
    assert.ok(commit.message.includes(`Release: ${app}-1-1-0`) && commit.message.includes('Version: 1.1.0'), commit.message);
    assert.equal(await readRepoFile(layout.repo, path, git.commit), before!.replace('newTag: 1.0.0', 'newTag: 1.1.0'));
    const ready = status.gates.find((g) => g.gate === 'ready')!;
    assert.equal(ready.ok, true);
    // Flux applied that commit (or a later one holding it, if another test pushed since)
    assert.match(String((ready.observed as { lastAppliedRevision: string }).lastAppliedRevision), /^main@sha1:[0-9a-f]{40}$/);
    assert.equal(await image(app), `${WEB}:1.1.0`);

    const parent = await reconcileParent(layout, kc);
    assert.ok((await repoLog(layout.repo)).some((c) => `main@sha1:${c.sha}` === parent.status.lastAppliedRevision));
    const child = await getFluxObject(fluxGroups.kustomization, appNs, app, kc);
    assert.deepEqual(child.spec.images, [{ name: WEB, newTag: '1.1.0' }], 'the parent applies what Git says, and Git says 1.1.0');
    assert.equal(await image(app), `${WEB}:1.1.0`);

    // the next release of the same app (same workflow id, a run started within the minute) makes its own commit
    const next = (await (await startRelease(tw.client, release(app, { tag: '1.1.1' }), { taskQueue: tw.taskQueue })).result()) as ReleaseStatus;
    assert.equal(next.phase, 'Succeeded', next.error);
    assert.notEqual(gitOf(next).commit, git.commit);
    assert.equal((await repoLog(layout.repo)).find((c) => c.sha === gitOf(next).commit)?.parents.length, 1);
    assert.match((await readRepoFile(layout.repo, path, gitOf(next).commit))!, /newTag: 1\.1\.1/);
    assert.equal(await image(app), `${WEB}:1.1.1`);
  });

  it('rolls back with a revert commit: the repository content is as before and Flux applies it', async () => {
    const app = names.broken;
    const path = appManifestPath({ name: app });
    const before = await readRepoFile(layout.repo, path);
    const gates = { ready: { fluxReady: { target: 'web' }, timeout: '4m', interval: '1s' }, rollout: { rollout: { namespace: appNs, name: app }, timeout: '4m', interval: '1s' } };
    const handle = await startRelease(tw.client, release(app, { tag: '1.1.0-broken', gates }), { taskQueue: tw.taskQueue });
    const { message, status } = await failed(handle);
    assert.equal(status.phase, 'RolledBack', status.error);
    assert.match(message, /gate (ready \(fluxReady\) failed: .*HealthCheckFailed|rollout \(rollout\) failed: .*exceeded its progress deadline)/);
    const released = gitOf(status).commit;
    const log = await repoLog(layout.repo);
    const revert = log.find((c) => c.parents[0] === released && /^Revert release /.test(c.subject));
    assert.ok(revert, `a revert commit on top of ${released}`);
    assert.ok(revert.message.includes(`This reverts the change of commit ${released}`));
    assert.ok(log.some((c) => c.sha === released), 'the release commit stays in history: nothing rewritten');
    assert.equal(await readRepoFile(layout.repo, path, revert.sha), before, 'the file is byte for byte what it was');
    const wait = status.gates.find((g) => g.gate === 'rollback/ready');
    assert.equal(wait?.ok, true, `the rollback waited for Flux to apply the revert: ${JSON.stringify(wait)}`);
    const back = status.gates.find((g) => g.gate === 'rollback/rollout');
    assert.equal(back?.ok, true, `and for the rollout back to the restored template: ${JSON.stringify(back)}`);
    assert.equal(await image(app), `${WEB}:1.0.0`);
    const child = await getFluxObject(fluxGroups.kustomization, appNs, app, kc);
    assert.deepEqual(child.spec.images, [{ name: WEB, newTag: '1.0.0' }]);
  });

  it('two releases of different apps in one repository at once: both commits land and Flux applies both', async () => {
    const [h1, h2] = await Promise.all([names.one, names.two].map((app) => startRelease(tw.client, release(app, { tag: '1.2.0' }), { taskQueue: tw.taskQueue })));
    const [s1, s2] = (await Promise.all([h1!.result(), h2!.result()])) as ReleaseStatus[];
    assert.equal(s1!.phase, 'Succeeded', s1!.error);
    assert.equal(s2!.phase, 'Succeeded', s2!.error);
    const log = await repoLog(layout.repo);
    for (const [app, s] of [[names.one, s1!], [names.two, s2!]] as const) {
      assert.ok(log.some((c) => c.sha === gitOf(s).commit), `${app}'s commit is on main`);
      assert.match((await readRepoFile(layout.repo, appManifestPath({ name: app })))!, /newTag: 1\.2\.0/);
      assert.equal(await image(app), `${WEB}:1.2.0`);
    }
    assert.notEqual(gitOf(s1!).commit, gitOf(s2!).commit);
  });

  it('live mode on a field Git owns is refused in preflight, recommending Git mode, and changes nothing', async () => {
    const app = names.live;
    const head = (await repoLog(layout.repo))[0]!.sha;
    const handle = await startRelease(tw.client, release(app, { git: false }), { taskQueue: tw.taskQueue });
    const { message, status } = await failed(handle);
    assert.equal(status.phase, 'Failed');
    assert.match(message, /spec\.images is applied from Git by Flux Kustomization .*\/flux-system/);
    assert.match(message, /Release it in Git mode/);
    assert.equal(status.changes.length, 0);
    const child = await getFluxObject(fluxGroups.kustomization, appNs, app, kc);
    assert.deepEqual(child.spec.images, [{ name: WEB, newTag: '1.0.0' }]);
    assert.equal((await repoLog(layout.repo))[0]!.sha, head);
  });

  it('a conflicting manual commit during the pause: the undo stops in RollbackFailed naming the commit, and never overwrites it', async () => {
    const app = names.conflict;
    const path = appManifestPath({ name: app });
    const handle = await startRelease(tw.client, release(app, { steps: [{ flux: 'web' }, { gate: 'ready' }, { pause: {} }] }), { taskQueue: tw.taskQueue });
    await waitForPhase(handle, 'AwaitingApproval');
    const hotfix = await commitEdit(layout.repo, (read) => ({ [path]: read(path)!.replace('newTag: 1.1.0', 'newTag: 1.1.1-hotfix') }), `hotfix ${app} 1.1.1`, { name: 'Alice Oncall', email: 'alice@example.com' });
    await sendCommand(handle, 'abort', { by: 'bob', reason: 'canary errors' });
    const stuck = await waitForPhase(handle, 'RollbackFailed');
    const change = stuck.changes[0]!;
    assert.equal(change.state, 'restore-failed');
    assert.ok(change.error?.includes(`commit ${hotfix.slice(0, 12)} by Alice Oncall <alice@example.com>`), change.error);
    assert.match(change.error!, /is "1\.1\.1-hotfix", not "1\.1\.0"/);
    assert.match(change.error!, /nothing was committed/);
    assert.equal((await repoLog(layout.repo))[0]!.sha, hotfix, 'no commit after the hotfix');

    await sendCommand(handle, 'skip', { by: 'bob', reason: 'the hotfix stays' });
    await failed(handle);
    assert.match((await readRepoFile(layout.repo, path))!, /newTag: 1\.1\.1-hotfix/);
  });
});
