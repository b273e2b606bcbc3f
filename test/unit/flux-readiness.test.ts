/**
 * The fluxReady evaluation on statuses the stack's real controllers wrote (captured from the
 * local stack on 2026-12-02; trimmed to what the evaluation reads). The race in the first case
 * is hard to provoke on demand, so its recorded status is kept here; every other path is covered
 * against the live controllers in test/integration/flux.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateFlux } from '../../activities/flux/readiness.ts';
import type { FluxObject } from '../../activities/flux/resource.ts';

const meta = (generation: number, requestedAt: string) => ({ name: 'shop', namespace: 'release-real', generation, annotations: { 'reconcile.fluxcd.io/requestedAt': requestedAt } });

test('a reconcile of the previous spec that ends after the restore patch does not fail the restore', () => {
  // kustomize-controller, a rollback: the restore patched generation 3 while the health check of
  // generation 2 (the broken tag) was running; that check failed after the patch, and its
  // conditions carry the generation at patch time (3). Its request token was never handled.
  const obj: FluxObject = {
    metadata: meta(3, 'release-shop/01a2373b/1/undo'),
    status: {
      observedGeneration: 1,
      lastAppliedRevision: 'main@sha1:a269293e5a2e011d9b0de06956c3a912f430edc2',
      conditions: [
        { type: 'Reconciling', status: 'True', reason: 'ProgressingWithRetry', observedGeneration: 3, message: 'Running health checks for revision main@sha1:a269293e with a timeout of 2m0s' },
        { type: 'Ready', status: 'False', reason: 'HealthCheckFailed', observedGeneration: 3, message: "health check failed after 15.037507016s: failed early due to stalled resources: [Deployment/release-real/shop status: 'Failed']" },
        { type: 'Healthy', status: 'False', reason: 'HealthCheckFailed', observedGeneration: 3, message: "failed early due to stalled resources: [Deployment/release-real/shop status: 'Failed']" },
      ],
    },
  };
  const r = evaluateFlux('Kustomization', obj, { token: 'release-shop/01a2373b/1/undo', generation: 3, specChanged: true });
  assert.equal(r.status, 'wait');
  assert.match(r.reason, /reconcile request release-shop\/01a2373b\/1\/undo not handled yet \(last handled: none\)/);
});

test('the same failure once the release request is handled fails, quoting Flux once', () => {
  const obj: FluxObject = {
    metadata: meta(2, 'tok1'),
    status: {
      observedGeneration: 1,
      lastHandledReconcileAt: 'tok1',
      conditions: [
        { type: 'Reconciling', status: 'True', reason: 'ProgressingWithRetry', observedGeneration: 2 },
        { type: 'Ready', status: 'False', reason: 'HealthCheckFailed', observedGeneration: 2, message: "health check failed after 15.039303518s: failed early due to stalled resources: [Deployment/try-ap1m/web status: 'Failed']" },
        { type: 'Healthy', status: 'False', reason: 'HealthCheckFailed', observedGeneration: 2, message: "failed early due to stalled resources: [Deployment/try-ap1m/web status: 'Failed']" },
      ],
    },
  };
  const r = evaluateFlux('Kustomization', obj, { token: 'tok1', generation: 2, specChanged: true });
  assert.equal(r.status, 'fail');
  assert.equal(r.reason, "Kustomization release-real/shop: Ready=False HealthCheckFailed: health check failed after 15.039303518s: failed early due to stalled resources: [Deployment/try-ap1m/web status: 'Failed']");
});

test('helm-controller after a failed upgrade and its rollback: Ready and Released both quoted', () => {
  const obj: FluxObject = {
    metadata: meta(3, 'tok-1.2.0-broken'),
    status: {
      observedGeneration: 2,
      lastHandledReconcileAt: 'tok-1.2.0-broken',
      conditions: [
        { type: 'Reconciling', status: 'True', reason: 'ProgressingWithRetry', observedGeneration: 3 },
        { type: 'Ready', status: 'False', reason: 'RollbackSucceeded', observedGeneration: 3, message: 'Helm rollback to previous release tryh-ulfu/web.v2 with chart web@1.0.0 succeeded' },
        { type: 'Released', status: 'False', reason: 'UpgradeFailed', observedGeneration: 3, message: 'Helm upgrade failed for release tryh-ulfu/web with chart web@1.0.0: context deadline exceeded' },
        { type: 'Remediated', status: 'True', reason: 'RollbackSucceeded', observedGeneration: 3, message: 'Helm rollback to previous release tryh-ulfu/web.v2 with chart web@1.0.0 succeeded' },
      ],
      history: [{ version: 4, status: 'deployed' }, { version: 3, status: 'failed' }, { version: 2, status: 'superseded' }],
    },
  };
  const r = evaluateFlux('HelmRelease', obj, { token: 'tok-1.2.0-broken', generation: 3, specChanged: true });
  assert.equal(r.status, 'fail');
  assert.equal(
    r.reason,
    'HelmRelease release-real/shop: Ready=False RollbackSucceeded: Helm rollback to previous release tryh-ulfu/web.v2 with chart web@1.0.0 succeeded; Released=False UpgradeFailed: Helm upgrade failed for release tryh-ulfu/web with chart web@1.0.0: context deadline exceeded',
  );
});
