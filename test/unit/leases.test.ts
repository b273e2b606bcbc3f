/** Lease keys and their order (docs/leases.md), the spec fields of issue 15, and who changed a field. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { lastWriter } from '../../activities/flux/resource.ts';
import { leaseTargets } from '../../release-spec/leases.ts';
import { InvalidSpecError, validateSpec } from '../../release-spec/load.ts';

const doc = (spec: Record<string, unknown>) => ({ apiVersion: 'hybrid-release.dev/v1alpha1', kind: 'HybridRelease', metadata: { name: 'r' }, spec: { app: 'shop', ...spec } });
const chef = (environment: string, serverUrl = 'https://chef.example/organizations/acme/') => ({ serverUrl, environment, cookbooks: { gw: '= 1.0.0' }, credentials: { keyFile: '/k.pem', clientName: 'ci' } });
const ks = (name: string, context?: string) => ({ kind: 'Kustomization', namespace: 'web', name, ...(context ? { context } : {}), images: [{ name: 'ghcr.io/acme/web', newTag: '1.0.0' }] });

it('keys cover Chef (server, environment), Flux objects and the canary Ingress, sorted, one per target', () => {
  const input = validateSpec(
    doc({
      chef: [chef('production'), { ...chef('production'), id: 'again', cookbooks: { other: '= 1.0.0' } }, chef('staging', 'https://chef2.example')],
      flux: [ks('storefront', 'b'), ks('api')],
      canary: { ingress: { namespace: 'web', name: 'storefront-canary' } },
      steps: [{ chef: 'production' }, { chef: 'again' }, { chef: 'staging' }, { flux: 'storefront' }, { flux: 'api' }, { setWeight: 10 }],
    }),
  );
  const targets = leaseTargets(input.spec, input.plan);
  assert.deepEqual(
    targets.map((t) => t.key),
    ['chef|https://chef.example/organizations/acme|production', 'chef|https://chef2.example|staging', 'flux|b|Kustomization|web|storefront', 'flux||Kustomization|web|api', 'ingress||web|storefront-canary'],
  );
  assert.equal(targets[0]!.label, 'Chef environment production on chef.example');
  assert.equal(targets[2]!.label, 'Kustomization web/storefront in b');
  // the same targets listed in another order give the same keys in the same order: no deadlock
  const reversed = validateSpec(doc({ flux: [ks('api'), ks('storefront', 'b')], chef: [chef('staging', 'https://chef2.example'), chef('production')] }));
  assert.deepEqual(leaseTargets(reversed.spec, reversed.plan).map((t) => t.key), targets.slice(0, 4).map((t) => t.key));
});

it('no canary lease without a setWeight step', () => {
  const input = validateSpec(doc({ flux: [ks('api')], canary: { ingress: { namespace: 'web', name: 'c' } } }));
  assert.deepEqual(leaseTargets(input.spec, input.plan).map((t) => t.key), ['flux||Kustomization|web|api']);
});

it('spec.leases.timeout is a duration; canary.allowPrimary a boolean', () => {
  assert.equal(validateSpec(doc({ flux: [ks('api')], leases: { timeout: '15m' } })).spec.spec.leases?.timeout, '15m');
  assert.throws(() => validateSpec(doc({ flux: [ks('api')], leases: { timeout: 'soon' } })), (e) => e instanceof InvalidSpecError && /spec.leases.timeout/.test(e.message));
  assert.throws(() => validateSpec(doc({ flux: [ks('api')], leases: { wait: '1m' } })), InvalidSpecError);
  assert.equal(validateSpec(doc({ flux: [ks('api')], canary: { ingress: { namespace: 'web', name: 'c' }, allowPrimary: true } })).spec.spec.canary?.allowPrimary, true);
});

it('the last writer of a field comes from managedFields, newest first, status writes ignored', () => {
  const fields = [
    { manager: 'hybrid-release', operation: 'Update', time: '2026-12-02T12:00:00Z', fieldsV1: { 'f:spec': { 'f:images': {} } } },
    { manager: 'kubectl-edit', operation: 'Update', time: '2026-12-02T12:40:01Z', fieldsV1: { 'f:spec': { 'f:images': {} } } },
    { manager: 'kustomize-controller', operation: 'Update', subresource: 'status', time: '2026-12-02T12:50:00Z', fieldsV1: { 'f:status': {} } },
  ];
  assert.equal(lastWriter(fields, ['f:spec', 'f:images']), 'kubectl-edit (Update) at 2026-12-02T12:40:01Z');
  assert.equal(lastWriter(fields, ['f:spec', 'f:values']), undefined);
});
