import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyNodes, convergenceOutcome, type NodeFacts } from '../../activities/chef/convergence.ts';

const PIN_MS = 1_700_000_000_000;
const after = PIN_MS / 1000 + 30;
const before = PIN_MS / 1000 - 30;
const node = (name: string, ohaiTime: number | undefined, versions: Record<string, string | undefined>): NodeFacts => ({ name, ohaiTime, versions });

describe('chef convergence: classification', () => {
  const cookbooks = { web: '~> 1.2', api: '>= 2.0' };

  it('sorts nodes into converged, lagging, failed and unaffected', () => {
    const o = classifyNodes(
      [
        node('ok', after, { web: '1.3.0', api: '2.1.0' }),
        node('old-run', before, { web: '1.3.0', api: '2.1.0' }), // right versions, but from before the pin
        node('exactly-at-pin', PIN_MS / 1000, { web: '1.3.0', api: '2.1.0' }),
        node('never-ran', undefined, {}),
        node('wrong-web', after, { web: '2.0.0', api: '2.1.0' }),
        node('missing-api', after, { web: '1.2.0', api: undefined }),
        node('db', after, { web: undefined, api: undefined }),
      ],
      cookbooks,
      PIN_MS,
    );
    assert.deepEqual(o, {
      total: 6,
      converged: 1,
      lagging: 3,
      failed: 2,
      laggingNodes: ['exactly-at-pin', 'never-ran', 'old-run'],
      failedNodes: ['missing-api', 'wrong-web'],
      unaffected: 1,
    });
  });

  it('lists the first 20 lagging nodes by name, whatever order the server returned', () => {
    const nodes = Array.from({ length: 50 }, (_, i) => node(`n${String(i).padStart(2, '0')}`, before, { web: '1.0.0', api: '1.0.0' }));
    nodes.sort(() => Math.random() - 0.5);
    const o = classifyNodes(nodes, cookbooks, PIN_MS);
    assert.equal(o.lagging, 50);
    assert.equal(o.laggingNodes.length, 20);
    assert.equal(o.laggingNodes[0], 'n00');
    assert.equal(o.laggingNodes[19], 'n19');
  });

  it('ohai_time is compared in seconds against the pin in milliseconds, fractions included', () => {
    const o = classifyNodes([node('a', PIN_MS / 1000 + 0.001, { web: '1.2.0' }), node('b', PIN_MS / 1000 - 0.001, { web: '1.2.0' })], { web: '~> 1.2' }, PIN_MS);
    assert.equal(o.converged, 1);
    assert.deepEqual(o.laggingNodes, ['b']);
  });

  it('scales linearly: 200,000 nodes classify in well under a second', () => {
    const nodes = Array.from({ length: 200_000 }, (_, i) => node(`n${i}`, i % 3 ? after : before, { web: '1.3.0', api: '2.0.0' }));
    const t0 = performance.now();
    const o = classifyNodes(nodes, cookbooks, PIN_MS);
    assert.equal(o.total, 200_000);
    assert.ok(performance.now() - t0 < 1000);
  });
});

describe('chef convergence: verdict', () => {
  const observed = (converged: number, lagging: number, failed: number, unaffected = 0) => ({
    total: converged + lagging + failed,
    converged,
    lagging,
    failed,
    laggingNodes: lagging ? ['l1'] : [],
    failedNodes: failed ? ['f1'] : [],
    unaffected,
  });

  it('passes at the threshold, exactly', () => {
    assert.equal(convergenceOutcome('prod', observed(3, 0, 0), 100).status, 'pass');
    assert.equal(convergenceOutcome('prod', observed(2, 1, 0), 100).status, 'wait');
    assert.equal(convergenceOutcome('prod', observed(80, 20, 0), 80).status, 'pass');
    assert.equal(convergenceOutcome('prod', observed(79, 21, 0), 80).status, 'wait');
    assert.equal(convergenceOutcome('prod', observed(1, 2, 0), 33.3).status, 'pass');
  });

  it('fails once the failed nodes put the threshold out of reach', () => {
    const o = convergenceOutcome('prod', observed(90, 5, 5), 96);
    assert.equal(o.status, 'fail');
    assert.match(o.reason, /90\/100 nodes converged/);
    assert.match(o.reason, /failed: f1/);
    assert.equal(convergenceOutcome('prod', observed(90, 5, 5), 95).status, 'wait');
  });

  it('waits, saying why, when the environment has no nodes to check', () => {
    const empty = convergenceOutcome('prod', observed(0, 0, 0), 50);
    assert.equal(empty.status, 'wait');
    assert.match(empty.reason, /no nodes found in environment prod/);
    assert.match(convergenceOutcome('prod', observed(0, 0, 0, 4), 50).reason, /none of the 4 nodes/);
  });

  it('the reason names lagging nodes and counts', () => {
    const o = convergenceOutcome('prod', observed(5, 5, 0), 100);
    assert.equal(o.status, 'wait');
    assert.match(o.reason, /^5\/10 nodes converged \(50%, need 100%\), 5 lagging, 0 failed; lagging: l1 and 4 more$/);
  });
});
