/**
 * Git mode and the live-mode guard against the real stack: the stack's Git server (pushes need
 * HTTP basic auth), source-, kustomize- and helm-controller, kube-controller-manager and kwok.
 * Every app is laid out the `flux bootstrap` way (test/support/bootstrap.ts): a parent
 * Kustomization applies the app's Kustomization / HelmRelease from Git, so the fields Git sets are
 * owned by kustomize-controller and a live patch of them is really put back by the parent.
 * Activities run as the worker's ServiceAccount (deploy/rbac.yaml only).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as flux from '../../activities/flux/index.ts';
import * as gitActs from '../../activities/git/index.ts';
import type { FluxTarget } from '../../activities/flux/index.ts';
import type { GitTarget } from '../../activities/git/index.ts';
import { commitChange, revertChange } from '../../activities/git/change.ts';
import { rejects, runActivity } from '../support/activity.ts';
import { requireEnv, uniqueName } from '../support/env.ts';
import { admin, grantWorker, useWorkerIdentity, waitAllowed, type Admin } from '../support/kube-worker.ts';
import { adminKubeConfig, fluxGroups, getFluxObject } from '../support/seed-kube.ts';
import { appKustomizePath, appManifestPath, createBootstrap, PARENT, reconcileParent, type Bootstrap } from '../support/bootstrap.ts';
import { commitEdit, gitRepoUrl, readRepoFile, repoLog } from '../support/sources.ts';
import { makePolicy, mockActivityEnv, MOCK_APP } from '../support/policy.ts';
import { DefaultLogger } from '@temporalio/worker';

const WEB = 'ghcr.io/acme/web';
const suffix = uniqueName('gm');
const kc = () => adminKubeConfig();
let a: Admin;
let workerKubeconfig: string;
/** a password file the worker reads (the reference in git.credentials), as a mounted Secret would be */
let passwordFile: string;

const credentials = () => ({ username: requireEnv('HR_GIT_PUSH_USER'), passwordFrom: { file: passwordFile } });

before(async () => {
  a = admin();
  passwordFile = join(mkdtempSync(join(tmpdir(), 'hr-git-cred-')), 'password');
  writeFileSync(passwordFile, `${readFileSync(requireEnv('HR_GIT_PUSH_PASSWORD_FILE'), 'utf8').trim()}\n`, { mode: 0o600 });
  workerKubeconfig = await useWorkerIdentity(a);
});

/**
 * The layout, then the worker's Roles in its namespaces as policy/rbac.ts generates them from a
 * policy naming them (Flux objects, Deployments and the GitRepository: get and patch).
 */
async function setUp(b: Bootstrap): Promise<void> {
  await createBootstrap(b, kc());
  const namespaces = [b.system, ...new Set(b.apps.map((x) => x.namespace))];
  await grantWorker(a, namespaces);
  for (const namespace of namespaces) {
    await waitAllowed(workerKubeconfig, { group: 'source.toolkit.fluxcd.io', resource: 'gitrepositories', verb: 'patch', namespace });
    await waitAllowed(workerKubeconfig, { group: 'kustomize.toolkit.fluxcd.io', resource: 'kustomizations', verb: 'patch', namespace });
  }
}

const deploymentImage = async (namespace: string, name: string) =>
  (await a.apps.readNamespacedDeployment({ namespace, name })).spec?.template.spec?.containers[0]?.image;

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 180_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs / 1000}s; last seen ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const gate = (target: GitTarget, committed: { commit: string; token: string; source: gitActs.GitCommitted['source'] }) =>
  runActivity(gitActs.fluxGitReadyGate, { gate: 'ready', target, commit: committed.commit, token: committed.token, source: committed.source, timeoutMs: 240_000, intervalMs: 1_000 });

const identity = (name: string) => ({ name: `${name}-rel`, app: name, version: '1.1.0', startedBy: 'git-mode-test' });

describe('Kustomization applied by a parent (flux bootstrap layout)', () => {
  const system = `${suffix}-fs`;
  const appNs = `${suffix}-apps`;
  const app = { kind: 'Kustomization' as const, namespace: appNs, name: `${suffix}-web`, image: WEB, tag: '1.0.0' };
  const b: Bootstrap = { system, repo: `${suffix}/fleet`, apps: [app] };
  const live: FluxTarget & { kind: 'Kustomization' } = { id: 'web', kind: 'Kustomization', namespace: appNs, name: app.name, images: [{ name: WEB, newTag: '1.1.0' }] };
  const git = (tag = '1.1.0'): GitTarget => ({ ...live, images: [{ name: WEB, newTag: tag }], git: { path: appManifestPath(app), credentials: credentials() } });

  before(async () => {
    await setUp(b);
  });

  test('live mode: preflight refuses a field the parent applies from Git, recommending Git mode; a live patch is put back by the parent', async () => {
    await rejects(flux.fluxPreflight(live), (e) => {
      assert.equal(e.type, 'FluxPreflightFailed');
      assert.match(e.message, /spec\.images is applied from Git by Flux Kustomization .*\/flux-system \(server-side apply, field manager kustomize-controller\)/);
      assert.match(e.message, /Release it in Git mode \(git\.path/);
      assert.match(e.message, /acceptDrift: true/);
    });

    // the documented way round: accept the drift. Preflight passes with a warning, the patch lands…
    const accepting: FluxTarget = { ...live, acceptDrift: true };
    const pre = await flux.fluxPreflight(accepting);
    assert.ok(pre.warnings?.some((w) => /acceptDrift: spec\.images comes from Git .* next reconcile puts the Git value back/.test(w)), JSON.stringify(pre.warnings));
    const token = uniqueName('live');
    const { written } = await flux.fluxPin({ target: accepting, token });
    const applied = await runActivity(flux.fluxReadyGate, { gate: 'ready', target: accepting, ...written, timeoutMs: 180_000, intervalMs: 1_000 });
    assert.equal(applied.ok, true, applied.reason);
    await until('Deployment runs the live-patched tag', () => deploymentImage(appNs, app.name), (i) => i === `${WEB}:1.1.0`);

    // …and the parent's next reconcile (what its interval would do) puts Git's value back
    await reconcileParent(b, kc());
    const child = await until('the parent restores spec.images from Git', () => getFluxObject(fluxGroups.kustomization, appNs, app.name, kc()), (o) => o.spec.images?.[0]?.newTag === '1.0.0');
    const owner = (child.metadata.managedFields as Array<{ manager: string; operation: string; fieldsV1: any }>).find((m) => m.fieldsV1?.['f:spec']?.['f:images']);
    assert.equal(owner?.manager, 'kustomize-controller', 'spec.images is owned by the parent again');
    assert.equal(owner?.operation, 'Apply');
    await until('the Deployment is rolled back to the Git tag, with nothing recorded', () => deploymentImage(appNs, app.name), (i) => i === `${WEB}:1.0.0`);
  });

  test('Git mode: commit, Flux applies that commit and it survives a parent reconcile; the revert restores the file exactly and Flux applies it', async () => {
    const target = git();
    const pre = await flux.fluxPreflight(target);
    assert.deepEqual(pre.warnings, []);
    const fileBefore = await readRepoFile(b.repo, target.git.path);

    const token = `${uniqueName('wf')}/run/2`;
    const committed = await runActivity(gitActs.fluxGitCommit, { target, token, release: identity(app.name) });
    assert.equal(committed.changed, true);
    assert.equal(committed.attempts, 1);
    assert.equal(committed.revision, `main@sha1:${committed.commit}`);
    assert.deepEqual(committed.source.applier, { namespace: system, name: PARENT });
    assert.deepEqual(committed.lines, [{ key: `spec.images[${WEB}].newTag`, line: committed.lines[0]!.line, before: '1.0.0', after: '1.1.0' }]);

    const [head] = await repoLog(b.repo);
    assert.equal(head!.sha, committed.commit);
    assert.match(head!.subject, new RegExp(`^release ${app.name}-rel: ${app.name} 1\\.1\\.0`));
    for (const trailer of [`Release: ${app.name}-rel`, `App: ${app.name}`, 'Version: 1.1.0', `Hybrid-Release-Change: ${token}`, 'Started-By: git-mode-test']) {
      assert.ok(head!.message.includes(trailer), `commit message has "${trailer}":\n${head!.message}`);
    }
    assert.equal(head!.author, 'hybrid-release <hybrid-release@users.noreply.invalid>');
    const fileAfter = await readRepoFile(b.repo, target.git.path);
    assert.equal(fileAfter, fileBefore!.replace('newTag: 1.0.0', 'newTag: 1.1.0'), 'only the one value changed, byte for byte');

    const result = await gate(target, committed);
    assert.equal(result.ok, true, result.reason);
    assert.equal((result.observed as { lastAppliedRevision: string }).lastAppliedRevision, committed.revision);
    assert.equal(await deploymentImage(appNs, app.name), `${WEB}:1.1.0`);

    // a retried commit (lost answer) finds its commit and pushes nothing
    const again = await runActivity(gitActs.fluxGitCommit, { target, token, release: identity(app.name) });
    assert.equal(again.commit, committed.commit);
    assert.equal(again.attempts, 0);

    // the parent reconciles from source: Git says 1.1.0, so nothing moves back
    const parent = await reconcileParent(b, kc());
    assert.equal(parent.status.lastAppliedRevision, committed.revision);
    const child = await getFluxObject(fluxGroups.kustomization, appNs, app.name, kc());
    assert.equal(child.spec.images[0].newTag, '1.1.0');
    assert.equal(await deploymentImage(appNs, app.name), `${WEB}:1.1.0`);

    const reverted = await runActivity(gitActs.fluxGitRevert, { target, token, undoToken: `${token}/undo`, release: identity(app.name) });
    assert.equal(reverted.reverted, committed.commit);
    assert.deepEqual(reverted.restored, [`spec.images[${WEB}].newTag`]);
    assert.equal(await readRepoFile(b.repo, target.git.path), fileBefore, 'the file is exactly as before the release');
    const log = await repoLog(b.repo);
    assert.equal(log[0]!.sha, reverted.commit);
    assert.deepEqual(log[0]!.parents, [committed.commit], 'a new commit on top: nothing rewritten');
    assert.match(log[0]!.subject, /^Revert release /);
    assert.ok(log[0]!.message.includes(`This reverts the change of commit ${committed.commit}`));
    const back = await gate(target, reverted);
    assert.equal(back.ok, true, back.reason);
    assert.equal(await deploymentImage(appNs, app.name), `${WEB}:1.0.0`);

    // the undo is idempotent too
    const twice = await runActivity(gitActs.fluxGitRevert, { target, token, undoToken: `${token}/undo`, release: identity(app.name) });
    assert.equal(twice.commit, reverted.commit);
    assert.equal(twice.attempts, 0);
  });

  test('the push is a compare-and-swap: a commit pushed between the read and the push is kept, and the release lands on top of it', async () => {
    const target = git('1.2.0');
    const token = `${uniqueName('wf')}/run/3`;
    let theirs = '';
    const committed = await runActivity(
      (input: Parameters<typeof commitChange>[0]) =>
        commitChange(input, {
          afterRead: async (attempt) => {
            if (attempt !== 1) return;
            // someone else's commit (another file) reaches the branch first
            theirs = await commitEdit(b.repo, () => ({ 'docs/notes.md': 'someone else was here\n' }), 'notes: another team', { name: 'Other Team', email: 'other@example.com' });
          },
        }),
      { target, token, release: identity(app.name) },
    );
    assert.equal(committed.attempts, 2, 'the first push was refused by the server (branch moved), the second landed');
    const log = await repoLog(b.repo);
    assert.equal(log[0]!.sha, committed.commit);
    assert.deepEqual(log[0]!.parents, [theirs], 'the release commit sits on top of the other commit');
    assert.equal(await readRepoFile(b.repo, 'docs/notes.md'), 'someone else was here\n');
    const result = await gate(target, committed);
    assert.equal(result.ok, true, result.reason);
    // clean up for the next test: put the tag back
    await runActivity(gitActs.fluxGitRevert, { target, token, undoToken: `${token}/undo`, release: identity(app.name) });
  });

  test("the worker's policy decides where a release may commit: a repository it does not name is refused before anything is pushed", async () => {
    const strict = makePolicy({
      apiVersion: 'hybrid-release.dev/v1alpha1',
      kind: 'ReleasePolicy',
      apps: [{ app: MOCK_APP, kubernetes: [{ contexts: ['*'], namespaces: ['*'] }], references: [{ file: '*' }], git: [{ repositories: ['http://git.example.com/other/fleet.git'] }] }],
    });
    const head = (await repoLog(b.repo))[0]!.sha;
    const env = mockActivityEnv({ taskQueue: 'git-mode-strict' }, { policy: strict, logger: new DefaultLogger('ERROR') });
    await rejects(env.run(gitActs.fluxGitCommit, { target: git('1.9.0'), token: `${uniqueName('wf')}/run/9`, release: identity(app.name) }) as Promise<unknown>, (e) => {
      assert.equal(e.type, 'PolicyDenied');
      assert.match(e.message, new RegExp(`repository ${gitRepoUrl(b.repo).replace(/[.]/g, '\\.')} is not among the Git repositories of app ${MOCK_APP}`));
    });
    assert.equal((await repoLog(b.repo))[0]!.sha, head, 'nothing was pushed');
  });

  test('undo conflict: a later commit changed the line, so nothing is committed and the failure names that commit', async () => {
    const target = git('1.3.0');
    const token = `${uniqueName('wf')}/run/4`;
    const committed = await runActivity(gitActs.fluxGitCommit, { target, token, release: identity(app.name) });
    const hotfix = await commitEdit(
      b.repo,
      (read) => ({ [target.git.path]: read(target.git.path)!.replace('newTag: 1.3.0', 'newTag: 1.3.1-hotfix') }),
      'hotfix: web 1.3.1',
      { name: 'Alice Oncall', email: 'alice@example.com' },
    );
    const headBefore = (await repoLog(b.repo))[0]!.sha;
    await rejects(runActivity(gitActs.fluxGitRevert, { target, token, undoToken: `${token}/undo`, release: identity(app.name) }), (e) => {
      assert.equal(e.type, 'UndoConflict');
      assert.equal(e.nonRetryable, true);
      assert.ok(e.message.includes(`commit ${hotfix.slice(0, 12)} by Alice Oncall <alice@example.com>`), e.message);
      assert.ok(e.message.includes('"hotfix: web 1.3.1"'), e.message);
      assert.match(e.message, /is "1\.3\.1-hotfix", not "1\.3\.0"/);
      const details = e.details?.[0] as { conflicts: Array<{ commit?: { sha: string } }>; reverted: string };
      assert.equal(details.conflicts[0]!.commit?.sha, hotfix);
      assert.equal(details.reverted, committed.commit);
    });
    assert.equal((await repoLog(b.repo))[0]!.sha, headBefore, 'nothing was committed');
  });
});

describe('HelmRelease applied by a parent', () => {
  const system = `${suffix}-hfs`;
  const appNs = `${suffix}-happs`;
  const app = { kind: 'HelmRelease' as const, namespace: appNs, name: `${suffix}-chk`, tag: '1.0.0' };
  const b: Bootstrap = { system, repo: `${suffix}/helm-fleet`, apps: [app] };
  const target = (): GitTarget => ({ id: 'chk', kind: 'HelmRelease', namespace: appNs, name: app.name, values: [{ path: 'image.tag', value: '1.1.0' }], git: { path: appManifestPath(app), credentials: credentials() } });

  before(async () => {
    await setUp(b);
  });

  test('live mode is refused on values.image.tag; Git mode commits it, the parent applies it, helm-controller upgrades, and the revert brings 1.0.0 back', async () => {
    const { git: _git, ...live } = target();
    await rejects(flux.fluxPreflight(live), (e) => assert.match(e.message, /spec\.values\.image\.tag is applied from Git by Flux Kustomization/));
    const t = target();
    await flux.fluxPreflight(t);
    const token = `${uniqueName('wf')}/run/1`;
    const committed = await runActivity(gitActs.fluxGitCommit, { target: t, token, release: identity(app.name) });
    assert.deepEqual(committed.lines.map((l) => [l.key, l.before, l.after]), [['spec.values.image.tag', '1.0.0', '1.1.0']]);
    const result = await gate(t, committed);
    assert.equal(result.ok, true, result.reason);
    assert.match(result.reason, /HelmRelease .* Ready=True/);
    assert.equal(await deploymentImage(appNs, app.name), `${WEB}:1.1.0`);
    const reverted = await runActivity(gitActs.fluxGitRevert, { target: t, token, undoToken: `${token}/undo`, release: identity(app.name) });
    const back = await gate(t, reverted);
    assert.equal(back.ok, true, back.reason);
    assert.equal(await deploymentImage(appNs, app.name), `${WEB}:1.0.0`);
  });
});

describe('kustomization.yaml that the app Kustomization builds itself', () => {
  const system = `${suffix}-kfs`;
  const appNs = `${suffix}-kapps`;
  const app = { kind: 'Kustomization' as const, namespace: appNs, name: `${suffix}-kz`, image: WEB, tag: '1.0.0', tagIn: 'kustomize-file' as const };
  const b: Bootstrap = { system, repo: `${suffix}/kz-fleet`, apps: [app] };
  const target = (creds = true): GitTarget => ({
    id: 'kz',
    kind: 'Kustomization',
    namespace: appNs,
    name: app.name,
    images: [{ name: WEB, newTag: '1.1.0' }],
    git: { path: appKustomizePath(app), ...(creds ? { credentials: credentials() } : {}) },
  });

  before(async () => {
    await setUp(b);
  });

  test('the applier is the Kustomization itself; a push without credentials is refused in preflight', async () => {
    await rejects(flux.fluxPreflight(target(false)), (e) => {
      assert.equal(e.type, 'GitDenied');
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /refused the credentials/);
    });
    const t = target();
    const pre = await flux.fluxPreflight(t);
    assert.equal((pre as gitActs.GitPreflight).git.applier, `Kustomization ${appNs}/${app.name}`);
    const token = `${uniqueName('wf')}/run/1`;
    const committed = await runActivity(gitActs.fluxGitCommit, { target: t, token, release: identity(app.name) });
    assert.equal(committed.source.appliesItself, true);
    const result = await gate(t, committed);
    assert.equal(result.ok, true, result.reason);
    assert.equal(await deploymentImage(appNs, app.name), `${WEB}:1.1.0`);
    const reverted = await runActivity(gitActs.fluxGitRevert, { target: t, token, undoToken: `${token}/undo`, release: identity(app.name) });
    assert.equal((await gate(t, reverted)).ok, true);
    assert.equal(await deploymentImage(appNs, app.name), `${WEB}:1.0.0`);
  });
});
