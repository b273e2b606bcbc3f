/**
 * The worker's policy without servers: parsing, each rule's answer (with the rule named), the
 * address checks, SSH signatures made by the real ssh-keygen, the RBAC generated from it, and the
 * safety of spec strings used as keys and URLs.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { planValues, restoreValuesPatch } from '../../activities/flux/values.ts';
import { checkSpec } from '../../policy/check.ts';
import { DECISION_NAMESPACE, decisionMessage } from '../../policy/decision.ts';
import { InvalidPolicyError, loadPolicyFile, parsePolicy } from '../../policy/load.ts';
import { DestinationGuard, normalizeIp, specialAddress } from '../../policy/net.ts';
import { rbacObjects, rbacYaml } from '../../policy/rbac.ts';
import { AppScope } from '../../policy/scope.ts';
import { parsePublicKey, parseSignature, verifySignature } from '../../policy/sshsig.ts';
import { suggestPolicy } from '../../policy/suggest.ts';
import { loadSpecFile, validateSpec } from '../../release-spec/load.ts';
import { redactUrl, redactUrls, urlSecretProblem } from '../../release-spec/safe.ts';

const root = new URL('../../', import.meta.url).pathname;
const example = loadPolicyFile(join(root, 'deploy/policy.yaml'));
const dir = mkdtempSync(join(tmpdir(), 'hr-policy-unit-'));

function keyPair(type: string, name: string): { path: string; pub: string } {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '3072'] : []), '-N', '', '-C', name, '-f', path]);
  return { path, pub: readFileSync(`${path}.pub`, 'utf8').trim() };
}
const sign = (key: string, message: string, namespace = DECISION_NAMESPACE) =>
  execFileSync('ssh-keygen', ['-Y', 'sign', '-f', key, '-n', namespace], { input: message, stdio: ['pipe', 'pipe', 'ignore'] }).toString();

const spec = (body: Record<string, unknown>) =>
  validateSpec({ apiVersion: 'hybrid-release.dev/v1alpha1', kind: 'HybridRelease', metadata: { name: 'r' }, spec: { app: 'storefront', ...body } });
const ks = { kind: 'Kustomization', namespace: 'storefront', name: 'storefront-web', images: [{ name: 'ghcr.io/acme/web', newTag: '1' }] };

describe('the policy file', () => {
  it('deploy/policy.yaml is valid and admits every example spec', async () => {
    assert.deepEqual(example.apps.map((a) => a.app), ['storefront', 'payments']);
    for (const f of readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.yaml'))) {
      const input = await loadSpecFile(join(root, 'examples', f));
      assert.deepEqual(checkSpec(new AppScope(example, input.spec.spec.app), input.spec, input.plan), [], f);
    }
  });

  it('refuses unknown fields, bad keys, approvers without keys, and names every problem', () => {
    const text = `apiVersion: hybrid-release.dev/v1alpha1
kind: ReleasePolicy
approvers:
  alice: { keys: ["ssh-ed25519 AAAAnotakey"] }
apps:
  - app: web
    approvers: [bob]
    kubernetes: [{ namespaces: [web], kinds: [Secret] }]
    hostz: []
`;
    assert.throws(() => parsePolicy(text, 'p.yaml'), (e: Error) => {
      assert.ok(e instanceof InvalidPolicyError);
      assert.match(e.message, /^p\.yaml: the policy is not valid \(3 problems\)/);
      assert.match(e.message, /approvers\.alice\.keys\[0\]: not a usable OpenSSH public key/);
      assert.match(e.message, /apps\[0\]\.kubernetes\[0\]\.kinds\[0\]: kinds are Kustomization, HelmRelease, Ingress, Deployment, GitRepository/);
      assert.match(e.message, /apps\[0\]: Unrecognized key: "hostz"/);
      return true;
    });
    const noBob = text.replace('["ssh-ed25519 AAAAnotakey"]', `["${keyPair('ed25519', 'alice-valid').pub}"]`).replace('kinds: [Secret]', 'kinds: [Ingress]').replace('    hostz: []\n', '');
    assert.throws(() => parsePolicy(noBob, 'p.yaml'), /apps\[0\]\.approvers\[0\]: bob is not in the top-level approvers/);
  });
});

describe('what an app may touch', () => {
  const storefront = new AppScope(example, 'storefront');

  it('an app no entry names may do nothing', () => {
    const scope = new AppScope(example, 'checkout');
    assert.match(scope.kube({ kind: 'Kustomization', namespace: 'storefront', name: 'storefront-web' })!, /no entry of the worker's policy \(.*deploy\/policy\.yaml\) matches app checkout/);
    assert.deepEqual(checkSpec(scope, spec({ app: 'checkout', flux: [ks] }).spec, []).map((v) => v.path), ['spec.app']);
  });

  it('Kubernetes targets: context, namespace, kind and name, naming the rule', () => {
    assert.equal(storefront.kube({ kind: 'Kustomization', namespace: 'storefront', name: 'storefront-web' }), undefined);
    assert.equal(storefront.kube({ kind: 'HelmRelease', namespace: 'storefront', name: 'gateway-sidecar', context: 'us-east' }), undefined);
    assert.equal(
      storefront.kube({ kind: 'HelmRelease', namespace: 'cert-manager', name: 'cert-manager' }),
      `HelmRelease cert-manager/cert-manager is outside the kubernetes targets of app storefront (policy ${example.source}, apps[0] "storefront")`,
    );
    assert.match(storefront.kube({ kind: 'HelmRelease', namespace: 'storefront', name: 'storefront-web' })!, /outside/, 'kind not allowed in the own cluster');
    assert.match(storefront.kube({ kind: 'Kustomization', namespace: 'storefront', name: 'other' })!, /outside/, 'name not listed');
    assert.match(storefront.kube({ kind: 'Kustomization', namespace: 'storefront', name: 'storefront-web', context: 'ap-south' })!, /outside/, 'context not listed');
    assert.match(new AppScope(example, 'payments').kube({ kind: 'Kustomization', namespace: 'storefront', name: 'storefront-web' })!, /payments/);
  });

  it('Chef: server, environment, cookbooks and credentials', () => {
    const t = { serverUrl: 'https://chef.example.com/organizations/acme/', environment: 'production', cookbooks: { api_gateway: '= 1.0.0' }, credentials: { keyFile: '/etc/hybrid-release/chef/deployer.pem', clientName: 'deployer' } };
    assert.deepEqual(storefront.chef(t), [], 'a trailing slash is the same server');
    assert.match(storefront.chef({ ...t, serverUrl: 'https://chef.evil.example/organizations/acme' })[0]!, /Chef server https:\/\/chef\.evil\.example\/organizations\/acme is not among the Chef servers of app storefront/);
    assert.match(storefront.chef({ ...t, environment: 'payments-production' })[0]!, /Chef environment payments-production .* not among the Chef environments/);
    assert.match(storefront.chef({ ...t, cookbooks: { api_gateway: '= 1', payments_gateway: '= 1' } })[0]!, /cookbook payments_gateway in production .*: not among the Chef cookbooks/);
    // another team's credential, and a path that walks out of the allowed one
    assert.match(storefront.chef({ ...t, credentials: { secret: { namespace: 'hybrid-release-credentials', name: 'payments-chef' } } })[0]!, /Chef credentials Secret hybrid-release-credentials\/payments-chef are not among the Chef credentials/);
    assert.match(storefront.chef({ ...t, credentials: { keyFile: '/etc/hybrid-release/chef/../chef/../payments.pem', clientName: 'deployer' } })[0]!, /not among the Chef credentials/);
    assert.match(storefront.chef({ ...t, credentials: { keyFile: '/var/run/secrets/kubernetes.io/serviceaccount/token', clientName: 'deployer' } })[0]!, /worker's own credentials and is never a reference/);
    const open = parsePolicy(`apiVersion: hybrid-release.dev/v1alpha1\nkind: ReleasePolicy\napps: [{ app: "*", chef: [{ server: "*", environments: ["*"], cookbooks: ["*"], credentials: [{ secret: { namespace: "*", name: "*" } }] }] }]\n`, 'open');
    assert.match(new AppScope(open, 'x').chef({ ...t, credentials: { secret: { namespace: 'hybrid-release', name: 'hybrid-release-worker' } } })[0]!, /Secrets in the worker's own namespace hybrid-release are never a reference/);
  });

  it("references: only the policy's, and the worker's own credentials never, whatever the policy says", () => {
    assert.equal(storefront.reference({ env: 'RELEASE_SLACK_WEBHOOK' }), undefined);
    assert.equal(storefront.reference({ secret: { namespace: 'hybrid-release-credentials', name: 'storefront-probe', key: 'token' } }), undefined);
    assert.match(storefront.reference({ secret: { namespace: 'hybrid-release-credentials', name: 'storefront-probe', key: 'other' } })!, /not among the references of app storefront/);
    assert.match(storefront.reference({ env: 'HOME' })!, /env HOME is not among the references/);
    assert.match(storefront.reference({ file: '/etc/passwd' })!, /file \/etc\/passwd is not among the references/);
    const open = parsePolicy(`apiVersion: hybrid-release.dev/v1alpha1\nkind: ReleasePolicy\napps: [{ app: "*", references: [{ env: "*" }, { file: "*" }, { secret: { namespace: "*", name: "*" } }] }]\n`, 'open');
    const any = new AppScope(open, 'x');
    assert.match(any.reference({ env: 'TEMPORAL_API_KEY' })!, /TEMPORAL_API_KEY is the worker's own configuration and never a reference/);
    assert.match(any.reference({ file: '/var/run/secrets/kubernetes.io/serviceaccount/token' })!, /never a reference/);
    assert.match(any.reference({ secret: { namespace: 'hybrid-release', name: 'hybrid-release-worker', key: 'TEMPORAL_API_KEY' } })!, /worker's own namespace hybrid-release are never a reference/);
    assert.equal(any.reference({ env: 'PROBE_TOKEN' }), undefined);
  });

  it('a whole spec: every problem with its spec path and the rule', () => {
    const input = spec({
      flux: [{ kind: 'HelmRelease', namespace: 'cert-manager', name: 'cert-manager', values: [{ path: 'image.tag', value: 'x' }] }],
      gates: {
        probe: { http: { url: 'http://127.0.0.1:9999/x', headers: { Authorization: { env: 'TEMPORAL_API_KEY' } } } },
        meta: { http: { url: 'http://169.254.169.254/latest/meta-data/' } },
      },
      approvals: { approvers: ['mallory'] },
      steps: [{ flux: 'cert-manager' }, { gate: ['probe', 'meta'] }, { pause: {} }],
    });
    const problems = checkSpec(storefront, input.spec, input.plan);
    assert.deepEqual(problems.map((p) => p.path), [
      'spec.flux[0]',
      'spec.gates.probe.http.url',
      'spec.gates.probe.http.headers.Authorization',
      'spec.gates.meta.http.url',
      'spec.approvals.approvers[0]',
      'spec.steps',
    ]);
    assert.match(problems[1]!.message, /127\.0\.0\.1:9999 is not listed in the hosts of app storefront .* \(127\.0\.0\.1 is a loopback address\)/);
    assert.match(problems[2]!.message, /TEMPORAL_API_KEY is the worker's own configuration/);
    assert.match(problems[3]!.message, /169\.254\.169\.254 is a cloud metadata address/);
    assert.match(problems[4]!.message, /mallory is not among the approvers of app storefront/);
    assert.match(problems[5]!.message, /the plan waits for approval, but nobody may approve/);
  });

  it('suggest makes the narrowest policy that admits a spec, and nothing else', async () => {
    const input = await loadSpecFile(join(root, 'examples/multi-cluster.yaml'));
    const doc = suggestPolicy([input.spec], { alice: keyPair('ed25519', 'suggest').pub });
    const policy = parsePolicy(JSON.stringify(doc), 'suggested');
    const scope = new AppScope(policy, 'storefront');
    assert.deepEqual(checkSpec(scope, input.spec, input.plan), []);
    assert.match(scope.kube({ kind: 'Kustomization', namespace: 'storefront', name: 'storefront-web' })!, /outside/, 'only the contexts the spec names');
  });
});

describe('destinations', () => {
  it('special addresses, also spelled as IPv4-mapped IPv6', () => {
    assert.equal(normalizeIp('::ffff:7f00:1'), '127.0.0.1');
    assert.equal(specialAddress('::ffff:169.254.169.254'), 'a cloud metadata address');
    assert.equal(specialAddress('10.96.0.1'), 'a private (cluster-internal) address');
    assert.equal(specialAddress('fe80::1'), 'a link-local address');
    assert.equal(specialAddress('0.0.0.0'), 'an unspecified address');
    assert.equal(specialAddress('93.184.216.34'), undefined);
  });

  it('names and ports must be listed; internal names need an exact entry; listed CIDRs open special addresses', () => {
    const g = new DestinationGuard(['*.example.com', 'api.example.org:443', 'prometheus.monitoring:9090', '10.96.0.0/12', 'localhost'], 'hosts of app x');
    assert.equal(g.checkHost('status.example.com', 443), undefined);
    assert.match(g.checkHost('api.example.org', 80)!, /api\.example\.org:80 is not listed in the hosts of app x/);
    assert.equal(g.checkHost('prometheus.monitoring', 9090), undefined);
    assert.match(g.checkHost('metadata.google.internal', 80)!, /not listed/);
    assert.match(new DestinationGuard(['*'], 'hosts').checkHost('kubernetes.default.svc', 443)!, /internal name, which only an exact entry .* allows/);
    assert.equal(g.checkAddress('10.100.0.7', 9090, 'prometheus.monitoring'), undefined, 'in the listed Service CIDR');
    assert.match(g.checkAddress('127.0.0.1', 80, 'localhost')!, /localhost resolves to 127\.0\.0\.1, a loopback address, which the hosts of app x do not list/);
    assert.equal(g.checkAddress('93.184.216.34', 443, 'status.example.com'), undefined);
  });
});

describe('SSH signatures (as ssh-keygen -Y sign makes them)', () => {
  const message = decisionMessage({ workflowId: 'release-web', runId: 'r1', command: 'approve', by: 'alice', reason: 'green', at: '2026-01-01T00:00:00.000Z', nonce: 'n1' });
  for (const type of ['ed25519', 'ecdsa', 'rsa']) {
    it(`${type}: verifies the signed decision, nothing else`, () => {
      const alice = keyPair(type, `alice-${type}`);
      const key = parsePublicKey(alice.pub);
      const sig = parseSignature(sign(alice.path, message));
      assert.equal(verifySignature(sig, key, DECISION_NAMESPACE, message), true);
      assert.equal(verifySignature(sig, key, DECISION_NAMESPACE, message.replace('approve', 'abort')), false, 'another command');
      assert.equal(verifySignature(sig, key, DECISION_NAMESPACE, message.replace('"r1"', '"r2"')), false, 'another run');
      assert.equal(verifySignature(sig, key, 'git', message), false, 'another namespace');
      const other = parsePublicKey(keyPair(type, `mallory-${type}`).pub);
      assert.equal(verifySignature(sig, other, DECISION_NAMESPACE, message), false, 'another key');
      assert.match(key.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
      assert.ok(execFileSync('ssh-keygen', ['-lf', `${alice.path}.pub`]).toString().includes(key.fingerprint), 'the fingerprint ssh-keygen -l prints');
    });
  }
  it('a signature in another namespace, or garbage, is not taken', () => {
    const alice = keyPair('ed25519', 'alice-ns');
    assert.equal(parseSignature(sign(alice.path, message, 'file')).namespace, 'file');
    assert.throws(() => parseSignature('-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----'), /not an SSHSIG blob/);
    assert.throws(() => parseSignature('hello'), /not an SSH signature/);
  });
});

describe('least privilege from the policy', () => {
  it('deploy/rbac.yaml is what the generator makes of deploy/policy.yaml (regenerate it after a policy change)', () => {
    assert.equal(readFileSync(join(root, 'deploy/rbac.yaml'), 'utf8'), rbacYaml(example, { from: 'deploy/policy.yaml' }));
  });

  it('namespace-scoped Roles only; nothing cluster-wide but SelfSubjectAccessReview; no pods list outside a Deployment namespace', () => {
    const objects = parseAllDocuments(readFileSync(join(root, 'deploy/rbac.yaml'), 'utf8')).map((d) => d.toJS());
    const clusterRoles = objects.filter((o) => o.kind === 'ClusterRole');
    assert.deepEqual(clusterRoles.flatMap((r) => r.rules), [{ apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews'], verbs: ['create'] }]);
    const roles = objects.filter((o) => o.kind === 'Role');
    assert.deepEqual(roles.map((r) => `${r.metadata.namespace}/${r.metadata.name}`).sort(), ['flux-system/hybrid-release-worker', 'hybrid-release-credentials/hybrid-release-worker-references', 'payments/hybrid-release-worker', 'storefront/hybrid-release-worker']);
    const secrets = roles.find((r) => r.metadata.name === 'hybrid-release-worker-references');
    assert.deepEqual(secrets.rules, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['chef-deployer', 'fleet-repo-push', 'payments-chef', 'storefront-probe'] }]);
    // Git mode: only the named GitRepository, and only to read it and request a reconcile
    const fluxSystem = roles.find((r) => r.metadata.namespace === 'flux-system');
    assert.deepEqual(fluxSystem.rules.find((r: { resources: string[] }) => r.resources[0] === 'gitrepositories'), { apiGroups: ['source.toolkit.fluxcd.io'], resources: ['gitrepositories'], verbs: ['get', 'patch'], resourceNames: ['flux-system'] });
    const payments = roles.find((r) => r.metadata.namespace === 'payments');
    assert.deepEqual(payments.rules.find((r: { resources: string[]; verbs: string[] }) => r.resources[0] === 'helmreleases' && r.verbs.includes('patch')).resourceNames, ['payments-api']);
    assert.ok(!objects.some((o) => o.kind === 'Role' && o.metadata.namespace === 'hybrid-release'), "never the worker's own namespace");
  });

  it('another cluster gets its own Roles (--context); a namespace pattern cannot become a Role', () => {
    const us = rbacObjects(example, { context: 'us-east' }).filter((o) => o.kind === 'Role') as { metadata: { namespace: string; name: string } }[];
    assert.deepEqual(us.map((r) => `${r.metadata.namespace}/${r.metadata.name}`), ['storefront/hybrid-release-worker', 'hybrid-release-credentials/hybrid-release-worker-references']);
    const globbed = parsePolicy(`apiVersion: hybrid-release.dev/v1alpha1\nkind: ReleasePolicy\napps: [{ app: x, kubernetes: [{ namespaces: ["team-*"] }] }]\n`, 'g');
    assert.throws(() => rbacObjects(globbed), /namespace "team-\*" is a pattern: a Role needs the namespace itself/);
  });
});

describe('spec strings as keys, names and URLs', () => {
  it('__proto__, prototype and constructor never become keys; objects built from paths have no prototype', () => {
    assert.throws(() => planValues({}, [{ path: '__proto__.env', value: 'x' }]), /"__proto__" is never a key/);
    assert.throws(() => planValues({}, [{ path: 'a.constructor.prototype', value: 'x' }]), /never a key/);
    const { patch } = planValues({ image: { tag: '1' } }, [{ path: 'image.tag', value: '2' }, { path: 'resources.limits.cpu', value: '1' }]);
    assert.equal(Object.getPrototypeOf(patch), null);
    assert.equal(Object.getPrototypeOf((patch as { resources: object }).resources), null);
    assert.equal(JSON.stringify(restoreValuesPatch({ 'image.tag': '1', resources: null })), '{"resources":null,"image":{"tag":"1"}}');
    assert.equal(({} as Record<string, unknown>).env, undefined, 'Object.prototype untouched');
  });

  it('URLs: credentials refused in a spec, redacted wherever shown', () => {
    assert.match(urlSecretProblem('https://user:pw@host/x')!, /credentials/);
    assert.match(urlSecretProblem('https://host/x?access_token=abc')!, /access_token=…/);
    assert.equal(urlSecretProblem('https://host/x?verbose=1'), undefined);
    assert.equal(redactUrl('https://user:pw@host/x?token=abc&a=b#frag'), 'https://***@host/x?token=***&a=***');
    assert.equal(redactUrls('GET https://u:p@h/x?sig=1 failed; see http://h2/y'), 'GET https://***@h/x?sig=*** failed; see http://h2/y');
  });
});
