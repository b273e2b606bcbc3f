import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from '../../release-spec/duration.ts';
import { InvalidSpecError, loadSpecFile, parseSpecText, validateSpec } from '../../release-spec/load.ts';

const examplesDir = new URL('../../examples/', import.meta.url);

/** A valid spec to break one field at a time. */
function base(): any {
  return {
    apiVersion: 'hybrid-release.dev/v1alpha1',
    kind: 'HybridRelease',
    metadata: { name: 'storefront-2-1-0' },
    spec: {
      app: 'storefront',
      chef: [
        {
          serverUrl: 'https://chef.example.com/organizations/acme',
          environment: 'production',
          cookbooks: { api_gateway: '~> 2.1.0' },
          credentials: { keyFile: '/etc/chef/deployer.pem', clientName: 'deployer' },
        },
      ],
      flux: [{ kind: 'Kustomization', namespace: 'web', name: 'storefront', images: [{ name: 'ghcr.io/acme/web', newTag: '2.1.0' }] }],
      canary: { ingress: { namespace: 'web', name: 'storefront-canary' } },
      gates: {
        ready: { fluxReady: { target: 'storefront' } },
        errors: { prometheus: { url: 'http://prom:9090', query: 'up', comparison: '<', threshold: 0.01 } },
      },
      steps: [{ chef: 'production' }, { flux: 'storefront' }, { gate: 'ready' }, { setWeight: 20 }, { pause: { duration: '10m' } }, { gate: ['errors'] }],
    },
  };
}

function problems(mutate: (s: any) => void): { path: string; message: string }[] {
  const s = base();
  mutate(s);
  try {
    validateSpec(s);
  } catch (err) {
    if (err instanceof InvalidSpecError) return err.problems;
    throw err;
  }
  assert.fail('the spec was accepted');
}

describe('examples', () => {
  const files = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml'));
  it('has the three documented examples', () => {
    for (const f of ['basic.yaml', 'canary-with-approval.yaml', 'multi-cluster.yaml']) assert.ok(files.includes(f), f);
  });
  for (const f of files) {
    it(`${f} validates and expands to a plan`, async () => {
      const input = await loadSpecFile(new URL(f, examplesDir).pathname);
      assert.ok(input.plan.length > 0);
      for (const step of input.plan) assert.ok(step.summary.length > 0);
    });
  }
  it('the basic example gets the default plan: chef, flux, then every gate', async () => {
    const input = await loadSpecFile(new URL('basic.yaml', examplesDir).pathname);
    assert.equal(input.defaultPlan, true);
    assert.deepEqual(input.plan.map((s) => s.kind), ['chef', 'flux', 'gate']);
    assert.equal(input.plan[0]!.summary, 'pin api_gateway = 2.1.0 in production');
    assert.equal(input.plan[1]!.summary, 'set ghcr.io/acme/storefront-web:2.1.0 on Kustomization storefront/storefront-web');
    assert.deepEqual(input.plan[2], { kind: 'gate', gates: ['web-ready', 'gateway-converged'], summary: 'check web-ready, gateway-converged' });
  });
  it('the canary example says what each step does in words', async () => {
    const input = await loadSpecFile(new URL('canary-with-approval.yaml', examplesDir).pathname);
    const summaries = input.plan.map((s) => s.summary);
    assert.ok(summaries.includes('canary 10%'));
    assert.ok(summaries.includes('hold canary 10% for 10m'));
    assert.ok(summaries.includes('hold canary 50% and wait for approval (abort after 4h)'));
    const approval = input.plan.find((s) => s.kind === 'pause' && s.deadlineMs);
    assert.deepEqual(approval, { kind: 'pause', deadlineMs: 4 * 3_600_000, onTimeout: 'abort', summary: 'hold canary 50% and wait for approval (abort after 4h)' });
  });
});

describe('defaults and normalisation', () => {
  it('fills target ids, protocol, gate timing and rollback policy', () => {
    const { spec } = validateSpec(base());
    assert.equal(spec.spec.chef[0]!.id, 'production');
    assert.equal(spec.spec.chef[0]!.protocol, '1.1');
    assert.equal(spec.spec.flux[0]!.id, 'storefront');
    assert.equal(spec.spec.gates.ready!.timeout, '5m');
    assert.equal(spec.spec.gates.errors!.prometheus!.onEmpty, 'wait');
    assert.equal(spec.spec.rollback.maxAttempts, 5);
    assert.deepEqual(spec.spec.approvals.approvers, []);
  });
  it('reads JSON as well as YAML', () => {
    const input = parseSpecText(JSON.stringify(base()));
    assert.equal(input.spec.metadata.name, 'storefront-2-1-0');
  });
});

describe('durations', () => {
  const table: [string, number | undefined][] = [
    ['90s', 90_000], ['10m', 600_000], ['1h30m', 5_400_000], ['1d', 86_400_000], ['500ms', 500], ['2h5s', 7_205_000],
    ['', undefined], ['10', undefined], ['10 m', undefined], ['1m1h', undefined], ['-5s', undefined], ['1.5h', undefined],
  ];
  for (const [text, ms] of table) it(`${JSON.stringify(text)} → ${ms}`, () => assert.equal(parseDuration(text), ms));
  it('formats back', () => {
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(90_000), '1m30s');
  });
});

describe('invalid specs name the path of each problem', () => {
  const cases: [string, (s: any) => void, string, RegExp?][] = [
    ['wrong apiVersion', (s) => (s.apiVersion = 'v1'), 'apiVersion', /hybrid-release.dev\/v1alpha1/],
    ['wrong kind', (s) => (s.kind = 'Release'), 'kind', /HybridRelease/],
    ['missing metadata', (s) => delete s.metadata, 'metadata', /required/],
    ['name with upper case', (s) => (s.metadata.name = 'Storefront'), 'metadata.name', /not a valid release name/],
    ['name too long', (s) => (s.metadata.name = 'a'.repeat(64)), 'metadata.name', /63/],
    ['unknown top-level field', (s) => (s.specs = {}), 'specs', /unknown field \(did you mean "spec"\?\)/],
    ['missing app', (s) => delete s.spec.app, 'spec.app', /required/],
    ['app with underscore', (s) => (s.spec.app = 'store_front'), 'spec.app', /app name/],
    ['typo in a spec field', (s) => (s.spec.gatez = {}), 'spec.gatez', /did you mean "gates"/],
    ['no targets at all', (s) => { s.spec.flux = []; s.spec.chef = []; delete s.spec.steps; s.spec.gates = {}; }, 'spec.flux', /at least one flux or chef target/],
    ['flux kind unknown', (s) => (s.spec.flux[0].kind = 'Deployment'), 'spec.flux[0].kind', /Kustomization.*HelmRelease/],
    ['flux namespace invalid', (s) => (s.spec.flux[0].namespace = 'Web'), 'spec.flux[0].namespace', /namespace/],
    ['flux name invalid', (s) => (s.spec.flux[0].name = 'store front'), 'spec.flux[0].name', /Kubernetes object name/],
    ['images empty', (s) => (s.spec.flux[0].images = []), 'spec.flux[0].images', /at least one image/],
    ['image name with tag', (s) => (s.spec.flux[0].images[0].name = 'ghcr.io/acme/web:2.1.0'), 'spec.flux[0].images[0].name', /carries a tag/],
    ['image without tag or digest', (s) => delete s.spec.flux[0].images[0].newTag, 'spec.flux[0].images[0]', /newTag or digest/],
    ['bad digest', (s) => (s.spec.flux[0].images[0].digest = 'sha256:abc'), 'spec.flux[0].images[0].digest', /64 hex/],
    ['bad tag', (s) => (s.spec.flux[0].images[0].newTag = '-bad'), 'spec.flux[0].images[0].newTag', /image tag/],
    ['typo in an image field', (s) => (s.spec.flux[0].images[0].newtag = '2'), 'spec.flux[0].images[0].newtag', /did you mean "newTag"/],
    ['images on a HelmRelease', (s) => (s.spec.flux[0].kind = 'HelmRelease'), 'spec.flux[0].images', /unknown field/],
    ['helm values path invalid', (s) => (s.spec.flux[0] = { kind: 'HelmRelease', namespace: 'web', name: 'storefront', values: [{ path: 'image..tag', value: '1' }] }), 'spec.flux[0].values[0].path', /values path/],
    ['helm value an object', (s) => (s.spec.flux[0] = { kind: 'HelmRelease', namespace: 'web', name: 'storefront', values: [{ path: 'image', value: { tag: '1' } }] }), 'spec.flux[0].values[0].value', /string, number or boolean/],
    ['empty context', (s) => (s.spec.flux[0].context = ''), 'spec.flux[0].context', /must not be empty/],
    ['chef server URL not a URL', (s) => (s.spec.chef[0].serverUrl = 'chef.example.com'), 'spec.chef[0].serverUrl', /http\(s\) URL/],
    ['chef _default environment', (s) => (s.spec.chef[0].environment = '_default'), 'spec.chef[0].environment', /_default/],
    ['chef environment with a space', (s) => (s.spec.chef[0].environment = 'prod eu'), 'spec.chef[0].environment', /environment name/],
    ['constraint without a space', (s) => (s.spec.chef[0].cookbooks.api_gateway = '>=1.0'), 'spec.chef[0].cookbooks.api_gateway', /">= 1.0"/],
    ['constraint with two spaces', (s) => (s.spec.chef[0].cookbooks.api_gateway = '>=  1.0.0'), 'spec.chef[0].cookbooks.api_gateway', /not a Chef version constraint/],
    ['constraint with four parts', (s) => (s.spec.chef[0].cookbooks.api_gateway = '~> 1.2.3.4'), 'spec.chef[0].cookbooks.api_gateway', /not a Chef version constraint/],
    ['constraint pre-release', (s) => (s.spec.chef[0].cookbooks.api_gateway = '>= 1.0rc1'), 'spec.chef[0].cookbooks.api_gateway', /not a Chef version constraint/],
    ['constraint empty', (s) => (s.spec.chef[0].cookbooks.api_gateway = ''), 'spec.chef[0].cookbooks.api_gateway', /not a Chef version constraint/],
    ['constraint a number', (s) => (s.spec.chef[0].cookbooks.api_gateway = 1.5), 'spec.chef[0].cookbooks.api_gateway', /must be a string/],
    ['no cookbooks', (s) => (s.spec.chef[0].cookbooks = {}), 'spec.chef[0].cookbooks', /at least one cookbook/],
    ['credentials missing', (s) => delete s.spec.chef[0].credentials, 'spec.chef[0].credentials', /required/],
    ['credentials with two kinds', (s) => (s.spec.chef[0].credentials.profile = 'bot'), 'spec.chef[0].credentials', /only one of/],
    ['keyFile without clientName', (s) => delete s.spec.chef[0].credentials.clientName, 'spec.chef[0].credentials.clientName', /needs clientName/],
    ['inline key material', (s) => (s.spec.chef[0].credentials.keyFile = '-----BEGIN RSA PRIVATE KEY-----\nMIIE'), 'spec.chef[0].credentials.keyFile', /key material/],
    ['inline key field', (s) => (s.spec.chef[0].credentials.key = 'abc'), 'spec.chef[0].credentials.key', /unknown field/],
    ['protocol 1.2', (s) => (s.spec.chef[0].protocol = '1.2'), 'spec.chef[0].protocol', /1.0.*1.1.*1.3/],
    ['duplicate target id', (s) => (s.spec.chef[0].id = 'storefront'), 'spec.chef[0].id', /already used by spec.flux\[0\]/],
    ['bad target id', (s) => (s.spec.chef[0].id = 'Prod EU'), 'spec.chef[0].id', /not a valid id/],
    ['gate with two kinds', (s) => (s.spec.gates.ready.rollout = { namespace: 'web', name: 'storefront' }), 'spec.gates.ready', /only one of/],
    ['gate with no kind', (s) => (s.spec.gates.ready = { timeout: '5m' }), 'spec.gates.ready', /needs one of/],
    ['gate timeout not a duration', (s) => (s.spec.gates.ready.timeout = '10 minutes'), 'spec.gates.ready.timeout', /not a duration/],
    ['gate successes zero', (s) => (s.spec.gates.ready.successes = 0), 'spec.gates.ready.successes', /./],
    ['fluxReady target unknown', (s) => (s.spec.gates.ready.fluxReady.target = 'web'), 'spec.gates.ready.fluxReady.target', /no flux target has id "web"/],
    ['chefConvergence target is a flux target', (s) => (s.spec.gates.conv = { chefConvergence: { target: 'storefront' } }), 'spec.gates.conv.chefConvergence.target', /no chef target/],
    ['minPercent above 100', (s) => (s.spec.gates.conv = { chefConvergence: { target: 'production', minPercent: 150 } }), 'spec.gates.conv.chefConvergence.minPercent', /at most 100 \(percent of the live nodes/],
    ['maxFailed negative', (s) => (s.spec.gates.conv = { chefConvergence: { target: 'production', maxFailed: -1 } }), 'spec.gates.conv.chefConvergence.maxFailed', /0 or more \(failed nodes tolerated/],
    ['maxFailed a fraction', (s) => (s.spec.gates.conv = { chefConvergence: { target: 'production', maxFailed: 1.5 } }), 'spec.gates.conv.chefConvergence.maxFailed', /whole number/],
    ['staleAfter not a duration', (s) => (s.spec.gates.conv = { chefConvergence: { target: 'production', staleAfter: 'a day' } }), 'spec.gates.conv.chefConvergence.staleAfter', /not a duration/],
    ['includeStale a string', (s) => (s.spec.gates.conv = { chefConvergence: { target: 'production', includeStale: 'yes' } }), 'spec.gates.conv.chefConvergence.includeStale', /true or false/],
    ['maxClockSkew above 15m', (s) => (s.spec.gates.conv = { chefConvergence: { target: 'production', maxClockSkew: '1h' } }), 'spec.gates.conv.chefConvergence.maxClockSkew', /more than 15m: Chef servers refuse signed requests/],
    ['staleAfter not above maxClockSkew', (s) => (s.spec.gates.conv = { chefConvergence: { target: 'production', staleAfter: '2m', maxClockSkew: '5m' } }), 'spec.gates.conv.chefConvergence.staleAfter', /must be longer than maxClockSkew/],
    ['prometheus comparison', (s) => (s.spec.gates.errors.prometheus.comparison = '=='), 'spec.gates.errors.prometheus.comparison', /<, <=, >, >=/],
    ['prometheus threshold string', (s) => (s.spec.gates.errors.prometheus.threshold = '0.01'), 'spec.gates.errors.prometheus.threshold', /number/],
    ['prometheus onEmpty', (s) => (s.spec.gates.errors.prometheus.onEmpty = 'skip'), 'spec.gates.errors.prometheus.onEmpty', /fail, pass or wait/],
    ['http json path', (s) => (s.spec.gates.v = { http: { url: 'https://x.example/version.json', json: { version: '1' } } }), 'spec.gates.v.http.json.version', /JSON path/],
    ['http header inline value', (s) => (s.spec.gates.v = { http: { url: 'https://x.example/', headers: { Authorization: 'Bearer abc' } } }), 'spec.gates.v.http.headers.Authorization', /./],
    ['step with two kinds', (s) => (s.spec.steps[3] = { setWeight: 20, pause: {} }), 'spec.steps[3]', /only one of/],
    ['step kind unknown', (s) => (s.spec.steps[3] = { wait: '10m' }), 'spec.steps[3].wait', /unknown field/],
    ['step applies unknown target', (s) => (s.spec.steps[0] = { chef: 'staging' }), 'spec.steps[0].chef', /no chef target has id "staging" \(known: "production"\)/],
    ['target applied twice', (s) => s.spec.steps.push({ flux: 'storefront' }), 'spec.steps[6].flux', /already applied by steps\[1\]/],
    ['target never applied', (s) => s.spec.steps.splice(0, 1), 'spec.chef[0]', /never applied/],
    ['gate never used', (s) => (s.spec.gates.unused = { http: { url: 'https://x.example/' } }), 'spec.gates.unused', /never checked/],
    ['gate unknown in step', (s) => (s.spec.steps[5] = { gate: ['errors', 'latency'] }), 'spec.steps[5].gate[1]', /no gate named "latency"/],
    ['gate before its target is applied', (s) => (s.spec.steps = [{ gate: 'ready' }, { chef: 'production' }, { flux: 'storefront' }, { gate: 'errors' }]), 'spec.steps[0].gate', /no earlier step applies/],
    ['setWeight without canary', (s) => delete s.spec.canary, 'spec.steps[3].setWeight', /spec.canary.ingress/],
    ['setWeight above total', (s) => (s.spec.steps[3].setWeight = 120), 'spec.steps[3].setWeight', /above canary.weightTotal/],
    ['setWeight negative', (s) => (s.spec.steps[3].setWeight = -1), 'spec.steps[3].setWeight', /./],
    ['setWeight fractional', (s) => (s.spec.steps[3].setWeight = 12.5), 'spec.steps[3].setWeight', /whole number/],
    ['pause duration invalid', (s) => (s.spec.steps[4].pause.duration = 'soon'), 'spec.steps[4].pause.duration', /not a duration/],
    ['timed pause with deadline', (s) => (s.spec.steps[4].pause.deadline = '1h'), 'spec.steps[4].pause', /takes no deadline/],
    ['deadline without onTimeout', (s) => (s.spec.steps[4].pause = { deadline: '1h' }), 'spec.steps[4].pause.onTimeout', /abort or promote/],
    ['onTimeout unknown', (s) => (s.spec.steps[4].pause = { deadline: '1h', onTimeout: 'retry' }), 'spec.steps[4].pause.onTimeout', /abort or promote/],
    ['steps empty', (s) => (s.spec.steps = []), 'spec.steps', /at least one step/],
    ['approvers not a list', (s) => (s.spec.approvals = { approvers: 'alice' }), 'spec.approvals.approvers', /expected array/],
    ['webhook inline url', (s) => (s.spec.notifications = { webhooks: [{ url: 'https://hooks.example/x' }] }), 'spec.notifications.webhooks[0].url', /unknown field/],
    ['webhook ref with two kinds', (s) => (s.spec.notifications = { webhooks: [{ urlFrom: { env: 'A', file: '/x' } }] }), 'spec.notifications.webhooks[0].urlFrom', /only one of/],
    ['rollback maxAttempts zero', (s) => (s.spec.rollback = { maxAttempts: 0 }), 'spec.rollback.maxAttempts', /./],
    // spec strings that would become keys, path segments or recorded secrets
    ['helm values path through __proto__', (s) => (s.spec.flux[0] = { kind: 'HelmRelease', namespace: 'web', name: 'storefront', values: [{ path: '__proto__.env', value: 'x' }] }), 'spec.flux[0].values[0].path', /"__proto__" is not allowed/],
    ['helm values path through constructor.prototype', (s) => (s.spec.flux[0] = { kind: 'HelmRelease', namespace: 'web', name: 'storefront', values: [{ path: 'a.constructor.prototype.x', value: 'x' }] }), 'spec.flux[0].values[0].path', /"constructor" is not allowed/],
    ['cookbook named __proto__', (s) => (s.spec.chef[0].cookbooks = JSON.parse('{"__proto__": "= 1.0.0"}')), 'spec.chef[0].cookbooks.__proto__', /"__proto__" is not allowed as a key/],
    ['cookbook named ..', (s) => (s.spec.chef[0].cookbooks = { '..': '= 1.0.0' }), 'spec.chef[0].cookbooks[".."]', /"\.\." is not a cookbook name/],
    ['cookbook named .', (s) => (s.spec.chef[0].cookbooks = { '.': '= 1.0.0' }), 'spec.chef[0].cookbooks["."]', /"\." is not a cookbook name/],
    ['label key prototype', (s) => (s.metadata.labels = { prototype: 'x' }), 'metadata.labels.prototype', /not allowed as a key/],
    ['JSON path through __proto__', (s) => (s.spec.gates.probe = { http: { url: 'https://x.example/v', json: { '$.__proto__.x': 1 } } }), 'spec.gates.probe.http.json["$.__proto__.x"]', /not allowed/],
    ['credentials in a chef server URL', (s) => (s.spec.chef[0].serverUrl = 'https://deployer:hunter2@chef.example.com'), 'spec.chef[0].serverUrl', /"https:\/\/\*\*\*@chef\.example\.com" carries credentials/],
    ['a token in a gate URL', (s) => (s.spec.gates.probe = { http: { url: 'https://x.example/v?access_token=abc123' } }), 'spec.gates.probe.http.url', /carries a credential in its query string \(access_token=…\)/],
  ];
  it('has at least 40 cases', () => assert.ok(cases.length >= 40));
  for (const [name, mutate, path, message] of cases) {
    it(name, () => {
      const found = problems(mutate);
      const atPath = found.filter((p) => p.path === path);
      assert.ok(atPath.length > 0, `no problem at ${path}; got:\n${found.map((p) => `${p.path}: ${p.message}`).join('\n')}`);
      if (message) assert.ok(atPath.some((p) => message.test(p.message)), `message at ${path} does not match ${message}: ${atPath.map((p) => p.message).join(' | ')}`);
    });
  }

  it('reports three independent mistakes at once, each with its path', () => {
    const found = problems((s) => {
      s.metadata.name = 'Bad Name';
      s.spec.chef[0].cookbooks.api_gateway = '>=1.0';
      s.spec.flux[0].images[0].newTag = '-x';
    });
    const paths = found.map((p) => p.path);
    for (const p of ['metadata.name', 'spec.chef[0].cookbooks.api_gateway', 'spec.flux[0].images[0].newTag']) assert.ok(paths.includes(p), `${p} missing in ${paths}`);
  });

  it('the constraint hint shows the fix', () => {
    const [p] = problems((s) => (s.spec.chef[0].cookbooks.api_gateway = '>=1.0'));
    assert.equal(p!.message, '">=1.0" is not a Chef version constraint (write ">= 1.0": an operator of = > < >= <= ~>, one space, then 1 to 3 numbers)');
  });

  it('YAML that does not parse says where it broke', () => {
    assert.throws(
      () => parseSpecText('apiVersion: hybrid-release.dev/v1alpha1\nspec:\n  app: [unclosed\n', 'bad.yaml'),
      (err: unknown) => err instanceof InvalidSpecError && /not valid YAML at line \d+, column \d+/.test(err.problems[0]!.message),
    );
  });

  it('duplicate YAML keys are an error, not a silent override', () => {
    const text = 'apiVersion: hybrid-release.dev/v1alpha1\napiVersion: x\n';
    assert.throws(() => parseSpecText(text), (err: unknown) => err instanceof InvalidSpecError && /not valid YAML/.test(err.problems[0]!.message));
  });

  it('a missing file is a problem, not a crash', async () => {
    await assert.rejects(loadSpecFile('/nonexistent/release.yaml'), (err: unknown) => err instanceof InvalidSpecError && /ENOENT/.test(err.message));
  });
});
