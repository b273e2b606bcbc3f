import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { imageStatus, rolloutStatus, selectorString } from '../../activities/kube/rollout-status.ts';

function deployment(over: { generation?: number; replicas?: number; status?: V1Deployment['status']; image?: string } = {}): V1Deployment {
  return {
    metadata: { name: 'web', namespace: 'shop', generation: over.generation ?? 2 },
    spec: {
      replicas: over.replicas ?? 3,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: over.image ?? 'ghcr.io/acme/web:1.2.0' }, { name: 'sidecar', image: 'envoy:1.30' }] } },
    },
    status: over.status ?? { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3 },
  };
}

test('complete when generation observed and all replicas updated and available', () => {
  const r = rolloutStatus(deployment());
  assert.equal(r.status, 'pass');
  assert.equal(r.reason, 'deployment "web" successfully rolled out');
});

test('waits for the spec update to be observed', () => {
  const r = rolloutStatus(deployment({ generation: 3 }));
  assert.equal(r.status, 'wait');
  assert.match(r.reason, /spec update to be observed/);
});

test('observedGeneration ahead of generation counts as observed (kubectl uses <=)', () => {
  assert.equal(rolloutStatus(deployment({ generation: 1 })).status, 'pass');
});

test('ProgressDeadlineExceeded is a failure, before replica counts are looked at', () => {
  const r = rolloutStatus(
    deployment({
      status: {
        observedGeneration: 2, replicas: 4, updatedReplicas: 1, availableReplicas: 3,
        conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "web-7d9" has timed out progressing.' }],
      },
    }),
  );
  assert.equal(r.status, 'fail');
  assert.match(r.reason, /exceeded its progress deadline: ReplicaSet "web-7d9" has timed out/);
});

test('ProgressDeadlineExceeded of an unobserved generation is not yet a failure', () => {
  const r = rolloutStatus(deployment({ generation: 3, status: { observedGeneration: 2, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] } }));
  assert.equal(r.status, 'wait');
});

test('waits for updated replicas, then old replicas terminating, then availability — in kubectl order', () => {
  assert.match(rolloutStatus(deployment({ status: { observedGeneration: 2, replicas: 4, updatedReplicas: 1, availableReplicas: 3 } })).reason, /1 out of 3 new replicas have been updated/);
  assert.match(rolloutStatus(deployment({ status: { observedGeneration: 2, replicas: 4, updatedReplicas: 3, availableReplicas: 3 } })).reason, /1 old replicas are pending termination/);
  assert.match(rolloutStatus(deployment({ status: { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 2 } })).reason, /2 of 3 updated replicas are available/);
});

test('a Progressing condition with another reason does not fail', () => {
  const r = rolloutStatus(deployment({ status: { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3, conditions: [{ type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' }] } }));
  assert.equal(r.status, 'pass');
});

test('scaled to zero is complete', () => {
  assert.equal(rolloutStatus(deployment({ replicas: 0, status: { observedGeneration: 2 } })).status, 'pass');
});

const pod = (name: string, image: string, terminating = false): V1Pod => ({
  metadata: { name, ...(terminating ? { deletionTimestamp: new Date() } : {}) },
  spec: { containers: [{ name: 'app', image }, { name: 'sidecar', image: 'envoy:1.30' }] },
});

test('image check: template and every live pod must run the expected image in the named container', () => {
  const d = deployment();
  const want = { image: 'ghcr.io/acme/web:1.2.0', container: 'app' };
  assert.equal(imageStatus(d, [pod('a', want.image), pod('b', want.image)], want).status, 'pass');
  const stale = imageStatus(d, [pod('a', want.image), pod('b', 'ghcr.io/acme/web:1.1.0')], want);
  assert.equal(stale.status, 'wait');
  assert.match(stale.reason, /1 of 2 pods .* do not run ghcr\.io\/acme\/web:1\.2\.0 yet \(b\)/);
  assert.equal(imageStatus(d, [pod('a', want.image), pod('old', 'ghcr.io/acme/web:1.1.0', true)], want).status, 'pass', 'terminating pods are ignored');
});

test('image check: template not updated yet waits; a container that does not exist fails', () => {
  const d = deployment({ image: 'ghcr.io/acme/web:1.1.0' });
  assert.equal(imageStatus(d, [], { image: 'ghcr.io/acme/web:1.2.0', container: 'app' }).status, 'wait');
  assert.equal(imageStatus(d, [], { image: 'ghcr.io/acme/web:1.2.0', container: 'nope' }).status, 'fail');
  assert.equal(imageStatus(deployment(), [], { image: 'envoy:1.30' }).status, 'pass', 'without a container name, any container matches');
  assert.equal(imageStatus(deployment(), [], { image: 'envoy:1.30', container: 'app' }).status, 'wait');
});

test('selector string', () => {
  assert.equal(
    selectorString({ matchLabels: { app: 'web', tier: 'fe' }, matchExpressions: [{ key: 'track', operator: 'In', values: ['stable', 'canary'] }, { key: 'legacy', operator: 'DoesNotExist' }] }),
    'app=web,tier=fe,track in (stable,canary),!legacy',
  );
});
