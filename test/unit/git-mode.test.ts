/**
 * Git mode without servers: finding and editing the lines a release changes (byte-exact), the
 * scalar quoting, what counts as owned by a parent Kustomization, and the spec's fields.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fieldsCover, gitOwnership } from '../../activities/flux/ownership.ts';
import type { FluxObject } from '../../activities/flux/resource.ts';
import type { FluxTarget, KustomizeImage } from '../../activities/flux/types.ts';
import { commitOfRevision, revisionOf, underPath } from '../../activities/git/source.ts';
import { FieldProblem, fileKindOf, locateFields, scalarText, spliceFields } from '../../activities/git/yaml-fields.ts';
import { redactGit } from '../../activities/git/cli.ts';
import { InvalidSpecError, validateSpec } from '../../release-spec/load.ts';
import { checkSpec } from '../../policy/check.ts';
import { rbacObjects } from '../../policy/rbac.ts';
import { AppScope } from '../../policy/scope.ts';
import { suggestPolicy } from '../../policy/suggest.ts';
import { makePolicy } from '../support/policy.ts';

const WEB = 'ghcr.io/acme/web';
const ks = (images: KustomizeImage[]): FluxTarget & { kind: 'Kustomization' } => ({ id: 'web', kind: 'Kustomization', namespace: 'shop', name: 'web', images });
const hr = (values: Array<{ path: string; value: string | number | boolean }>): FluxTarget => ({ id: 'chk', kind: 'HelmRelease', namespace: 'shop', name: 'checkout', values });

const FLUX_FILE = `# applied by flux-system
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: other, namespace: shop}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: web
  namespace: shop
spec:
  path: ./apps/web
  images:
    - name: ghcr.io/acme/other
      newTag: 9.9.9
    - name: ${WEB}
      newTag: "1.0.0"   # {"$imagepolicy": "flux-system:web:tag"}
`;

describe('locating the lines a release changes', () => {
  it('a Flux Kustomization manifest: the spec.images entry, among other documents and entries', () => {
    const { kind, fields } = locateFields(FLUX_FILE, ks([{ name: WEB, newTag: '1.1.0' }]), 'clusters/local/web.yaml');
    assert.equal(kind, 'flux-kustomization');
    assert.equal(fields.length, 1);
    const f = fields[0]!;
    assert.equal(f.key, `spec.images[${WEB}].newTag`);
    assert.equal(f.text, '"1.0.0"');
    assert.equal(f.value, '1.0.0');
    assert.equal(f.line, 17);
    const next = spliceFields(FLUX_FILE, [{ start: f.start, end: f.end, text: scalarText('1.1.0', f.style) }]);
    assert.equal(next, FLUX_FILE.replace('newTag: "1.0.0"', 'newTag: "1.1.0"'), 'only the value changes; quoting and the comment stay');
  });

  it('a kustomization.yaml: the images: entry', () => {
    const text = 'resources: [deployment.yaml]\nimages:\n- name: ghcr.io/acme/web\n  newTag: 1.0.0\n  newName: registry.acme.dev/web\n';
    const { kind, fields } = locateFields(text, ks([{ name: WEB, newTag: '2.0.0', newName: 'mirror.acme.dev/web' }]), 'apps/web/kustomization.yaml');
    assert.equal(kind, 'kustomize');
    assert.deepEqual(fields.map((f) => [f.key, f.text, f.line]), [
      [`images[${WEB}].newName`, 'registry.acme.dev/web', 5],
      [`images[${WEB}].newTag`, '1.0.0', 4],
    ]);
  });

  it('a HelmRelease manifest: values by path', () => {
    const text = 'apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: checkout}\nspec:\n  values:\n    image:\n      tag: \'1.0.0\'\n    replicas: 2\n';
    const { kind, fields } = locateFields(text, hr([{ path: 'image.tag', value: "1.1.0's" }, { path: 'replicas', value: 3 }]), 'clusters/local/checkout.yaml');
    assert.equal(kind, 'helmrelease');
    const next = spliceFields(text, fields.map((f) => ({ start: f.start, end: f.end, text: scalarText(f.want, f.style) })));
    assert.equal(next, text.replace("tag: '1.0.0'", "tag: '1.1.0''s'").replace('replicas: 2', 'replicas: 3'));
  });

  it('refuses what it cannot change as one existing line, saying what to do', () => {
    const cases: Array<[string, FluxTarget, string, RegExp]> = [
      ['images:\n- name: x/y\n  newTag: "1"\n', ks([{ name: WEB, newTag: '2' }]), 'a/kustomization.yaml', /no images entry for ghcr\.io\/acme\/web \(entries: x\/y\): add it in Git first/],
      [`images:\n- name: ${WEB}\n  newName: a/b\n`, ks([{ name: WEB, newTag: '2' }]), 'a/kustomization.yaml', /has no newTag line: Git mode changes existing lines only/],
      [`images:\n- name: ${WEB}\n  newTag: "1"\n  digest: sha256:${'a'.repeat(64)}\n`, ks([{ name: WEB, newTag: '2' }]), 'a/kustomization.yaml', /has a digest, which kustomize uses over newTag/],
      [FLUX_FILE, { ...ks([{ name: WEB, newTag: '2' }]), name: 'api' }, 'clusters/x.yaml', /holds no Kustomization shop\/api .* it has: GitRepository other, Kustomization web/],
      ['apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: checkout}\nspec:\n  values:\n    image: {repository: x}\n', hr([{ path: 'image.tag', value: '2' }]), 'c.yaml', /spec\.values\.image\.tag in c\.yaml is absent/],
      ['apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: checkout}\nspec:\n  values:\n    note: |\n      multi\n', hr([{ path: 'note', value: '2' }]), 'c.yaml', /block scalar/],
      ['a: [b\n', ks([{ name: WEB, newTag: '2' }]), 'a/kustomization.yaml', /is not valid YAML/],
      ['images: []\n', hr([{ path: 'image.tag', value: '2' }]), 'a/kustomization.yaml', /is a kustomize file: a HelmRelease's values live in the HelmRelease manifest/],
    ];
    for (const [text, target, path, message] of cases) {
      assert.throws(() => locateFields(text, target as never, path), (e: unknown) => e instanceof FieldProblem && message.test(e.message), `${path}: ${message}`);
    }
  });

  it('tells the kind of file by its name, as kustomize does', () => {
    assert.equal(fileKindOf({ kind: 'Kustomization' }, 'apps/web/kustomization.yaml'), 'kustomize');
    assert.equal(fileKindOf({ kind: 'Kustomization' }, 'apps/web/Kustomization'), 'kustomize');
    assert.equal(fileKindOf({ kind: 'Kustomization' }, 'clusters/local/web.yaml'), 'flux-kustomization');
    assert.equal(fileKindOf({ kind: 'HelmRelease' }, 'clusters/local/web.yaml'), 'helmrelease');
  });
});

describe('scalar text', () => {
  it('keeps the file\'s quoting and quotes where YAML 1.1 or 1.2 would misread a plain value', () => {
    assert.equal(scalarText('2.1.0', 'PLAIN'), '2.1.0');
    assert.equal(scalarText('2.1', 'PLAIN'), '"2.1"', 'a float otherwise');
    assert.equal(scalarText('yes', 'PLAIN'), '"yes"', 'a boolean for Helm (YAML 1.1)');
    assert.equal(scalarText('1e3', 'PLAIN'), '"1e3"');
    assert.equal(scalarText('a: b', 'PLAIN'), '"a: b"');
    assert.equal(scalarText('v2', 'QUOTE_DOUBLE'), '"v2"');
    assert.equal(scalarText("it's", 'QUOTE_SINGLE'), "'it''s'");
    assert.equal(scalarText(3, 'QUOTE_DOUBLE'), '3');
    assert.equal(scalarText(true, 'PLAIN'), 'true');
  });
});

describe('fields a parent Kustomization applies (managedFields)', () => {
  const applied: { manager: string; operation: string; fieldsV1: Record<string, unknown> } = { manager: 'kustomize-controller', operation: 'Apply', fieldsV1: { 'f:metadata': { 'f:labels': { 'f:kustomize.toolkit.fluxcd.io/name': {} } }, 'f:spec': { 'f:images': {}, 'f:values': { 'f:image': { 'f:tag': {} } } } } };
  const obj = (extra: Partial<FluxObject['metadata']> & Record<string, unknown> = {}, managed: Array<typeof applied> = [applied]): FluxObject => ({
    metadata: { name: 'web', namespace: 'shop', labels: { 'kustomize.toolkit.fluxcd.io/name': 'flux-system', 'kustomize.toolkit.fluxcd.io/namespace': 'flux-system' }, managedFields: managed, ...extra } as FluxObject['metadata'],
  });

  it('covers a field, a field below it, and a field inside an atomic parent', () => {
    assert.equal(fieldsCover(applied.fieldsV1, ['spec', 'images']), true);
    assert.equal(fieldsCover(applied.fieldsV1, ['spec', 'values', 'image', 'tag']), true);
    assert.equal(fieldsCover(applied.fieldsV1, ['spec', 'values']), true);
    assert.equal(fieldsCover(applied.fieldsV1, ['spec', 'values', 'replicas']), false);
    assert.equal(fieldsCover({ 'f:spec': { 'f:values': {} } }, ['spec', 'values', 'image', 'tag']), true, 'values applied as one whole value');
  });

  it('names the owned fields and the parent; only kustomize-controller Apply entries count', () => {
    assert.deepEqual(gitOwnership(ks([{ name: WEB, newTag: '2' }]), obj()), { owned: ['spec.images'], parent: 'flux-system/flux-system' });
    assert.deepEqual(gitOwnership(hr([{ path: 'replicas', value: 2 }]), obj()).owned, []);
    const byKubectl = [{ ...applied, manager: 'kubectl', operation: 'Update' }];
    assert.deepEqual(gitOwnership(ks([{ name: WEB, newTag: '2' }]), obj({}, byKubectl)).owned, []);
  });

  it('ssa: Ignore anywhere exempts; IfNotPresent only when it came from Git', () => {
    const target = ks([{ name: WEB, newTag: '2' }]);
    assert.match(gitOwnership(target, obj({ annotations: { 'kustomize.toolkit.fluxcd.io/ssa': 'ignore' } })).exempt!, /Ignore/);
    assert.equal(gitOwnership(target, obj({ annotations: { 'kustomize.toolkit.fluxcd.io/ssa': 'IfNotPresent' } })).exempt, undefined, 'added by hand: the parent still applies');
    const fromGit = { ...applied, fieldsV1: { ...applied.fieldsV1, 'f:metadata': { 'f:annotations': { 'f:kustomize.toolkit.fluxcd.io/ssa': {} } } } };
    assert.match(gitOwnership(target, obj({ annotations: { 'kustomize.toolkit.fluxcd.io/ssa': 'IfNotPresent' } }, [fromGit])).exempt!, /IfNotPresent in Git/);
  });
});

describe('revisions, paths, redaction', () => {
  it('reads source-controller revisions', () => {
    const sha = 'a'.repeat(40);
    assert.equal(revisionOf('main', sha), `main@sha1:${sha}`);
    assert.equal(commitOfRevision(`main@sha1:${sha}`), sha);
    assert.equal(commitOfRevision(`main/${sha}`), sha);
    assert.equal(commitOfRevision('1.0.0'), undefined);
  });
  it('knows whether a file is under a Kustomization path', () => {
    assert.equal(underPath('./clusters/local', 'clusters/local/web.yaml'), true);
    assert.equal(underPath('./', 'anything.yaml'), true);
    assert.equal(underPath('./clusters/local', 'clusters/localx/web.yaml'), false);
  });
  it('never shows URL user info or a secret in git\'s words', () => {
    assert.equal(redactGit("fatal: unable to access 'https://bot:s3cret@git.example.com/x.git/': 403", ['s3cret']), "fatal: unable to access 'https://***@git.example.com/x.git/': 403");
    assert.equal(redactGit('header tok3n leaked', ['tok3n']), 'header *** leaked');
  });
});

describe('the spec', () => {
  const spec = (flux: object) => ({ apiVersion: 'hybrid-release.dev/v1alpha1', kind: 'HybridRelease', metadata: { name: 'r' }, spec: { app: 'shop', flux: [{ kind: 'Kustomization', namespace: 'shop', name: 'web', images: [{ name: WEB, newTag: '2' }], ...flux }] } });
  const problems = (flux: object) => {
    try {
      validateSpec(spec(flux));
    } catch (err) {
      if (err instanceof InvalidSpecError) return err.problems.map((p) => `${p.path}: ${p.message}`);
      throw err;
    }
    return [];
  };
  it('takes git.path and a credentials reference, and says "commit … to <path>" in the plan', () => {
    const input = validateSpec(spec({ git: { path: 'clusters/local/web.yaml', credentials: { passwordFrom: { secret: { namespace: 'creds', name: 'git', key: 'token' } } } } }));
    assert.equal(input.plan[0]!.summary, `commit ${WEB}:2 to clusters/local/web.yaml for Kustomization shop/web`);
  });
  it('refuses paths outside the repository, inline secrets, and acceptDrift with git', () => {
    assert.match(problems({ git: { path: '../x.yaml' } }).join('\n'), /spec\.flux\[0\]\.git\.path: .* is not a path to a YAML file inside the repository/);
    assert.match(problems({ git: { path: 'x.yaml', credentials: { password: 'hunter2' } } }).join('\n'), /unknown field/);
    assert.match(problems({ git: { path: 'x.yaml' }, acceptDrift: true }).join('\n'), /acceptDrift is for live mode/);
    assert.deepEqual(problems({ acceptDrift: true }), []);
  });
});

describe('the policy for Git mode', () => {
  const policy = makePolicy({
    apiVersion: 'hybrid-release.dev/v1alpha1',
    kind: 'ReleasePolicy',
    apps: [
      {
        app: 'shop',
        kubernetes: [{ namespaces: ['shop'], kinds: ['Kustomization'] }, { namespaces: ['flux-system'], kinds: ['Kustomization', 'GitRepository'], names: ['flux-system'] }],
        references: [{ secret: { namespace: 'creds', name: 'fleet-push', key: 'token' } }],
        git: [{ repositories: ['https://git.example.com/acme/fleet.git'], branches: ['main'], paths: ['clusters/*/shop-*.yaml'] }],
      },
      { app: 'other', kubernetes: [{ namespaces: ['other'] }] },
    ],
  });
  const shop = new AppScope(policy, 'shop');

  it('allows the named repository, branch and files only, naming the rule otherwise', () => {
    const ok = { url: 'https://git.example.com/acme/fleet.git', branch: 'main', path: 'clusters/prod/shop-web.yaml' };
    assert.equal(shop.git(ok), undefined);
    assert.equal(shop.git({ ...ok, url: 'https://bot@git.example.com/acme/fleet.git' }), undefined, 'user info in the URL is not part of the match');
    assert.match(shop.git({ ...ok, url: 'https://git.example.com/acme/other.git' })!, /repository https:\/\/git\.example\.com\/acme\/other\.git is not among the Git repositories of app shop/);
    assert.match(shop.git({ ...ok, branch: 'release' })!, /branch release of .* is not among the Git branches of app shop/);
    assert.match(shop.git({ ...ok, path: 'clusters/prod/payments.yaml' })!, /clusters\/prod\/payments\.yaml in .* is not among the Git paths of app shop/);
    assert.match(new AppScope(policy, 'other').gitPath('x.yaml')!, /the app may not commit to Git: no Git repositories of app other/);
  });

  it('admission checks the file and the push reference of a Git-mode target before the release starts', () => {
    const input = validateSpec({
      apiVersion: 'hybrid-release.dev/v1alpha1',
      kind: 'HybridRelease',
      metadata: { name: 'r' },
      spec: { app: 'shop', flux: [{ kind: 'Kustomization', namespace: 'shop', name: 'web', images: [{ name: WEB, newTag: '2' }], git: { path: 'apps/web/kustomization.yaml', credentials: { passwordFrom: { secret: { namespace: 'creds', name: 'other', key: 'token' } } } } }] },
    });
    assert.deepEqual(checkSpec(shop, input.spec, input.plan).map((v) => v.path), ['spec.flux[0].git.path', 'spec.flux[0].git.credentials.passwordFrom']);
  });

  it('a suggested policy admits a Git-mode spec; RBAC grants get and patch on the named GitRepository only', () => {
    const input = validateSpec({
      apiVersion: 'hybrid-release.dev/v1alpha1',
      kind: 'HybridRelease',
      metadata: { name: 'r' },
      spec: { app: 'shop', flux: [{ kind: 'Kustomization', namespace: 'shop', name: 'web', images: [{ name: WEB, newTag: '2' }], git: { path: 'clusters/prod/shop-web.yaml', credentials: { passwordFrom: { env: 'FLEET_TOKEN' } } } }] },
    });
    const suggested = makePolicy(suggestPolicy([input.spec]));
    assert.deepEqual(suggested.apps[0]!.git, [{ repositories: ['*'], paths: ['clusters/prod/shop-web.yaml'] }]);
    assert.deepEqual(checkSpec(new AppScope(suggested, 'shop'), input.spec, input.plan), []);
    const roles = rbacObjects(policy).filter((o) => o.kind === 'Role') as Array<{ metadata: { namespace: string }; rules: Array<{ resources: string[]; verbs: string[]; resourceNames?: string[] }> }>;
    const fs = roles.find((r) => r.metadata.namespace === 'flux-system')!;
    assert.deepEqual(fs.rules.find((r) => r.resources[0] === 'gitrepositories'), { apiGroups: ['source.toolkit.fluxcd.io'], resources: ['gitrepositories'], verbs: ['get', 'patch'], resourceNames: ['flux-system'] });
    assert.equal(roles.find((r) => r.metadata.namespace === 'shop')!.rules.some((r) => r.resources[0] === 'gitrepositories'), false, 'kinds: [Kustomization] grants no GitRepository');
  });
});
