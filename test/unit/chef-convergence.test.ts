import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyNodes, convergenceOutcome, failuresSincePin, newPollMemory, type ConvergenceObserved, type FailedRun, type NodeFacts } from '../../activities/chef/convergence.ts';
import { describeException, parseReportTime } from '../../activities/chef/reporting.ts';

const PIN_MS = 1_700_000_000_000;
const PIN = PIN_MS / 1000;
const NOW_MS = PIN_MS + 120_000;
const SKEW = 300; // the default maxClockSkew, seconds
const node = (name: string, ohaiTime: number | undefined, versions: Record<string, string | undefined>): NodeFacts => ({ name, ohaiTime, versions });
const failedRun = (node: string, startedAt: number, error = 'RuntimeError: boom', runId = `${node}-${startedAt}`): FailedRun => ({ node, runId, startedAt, endedAt: startedAt + 1, error });

describe('chef convergence: classification', () => {
  const cookbooks = { web: '~> 1.2', api: '>= 2.0' };
  const classify = (nodes: NodeFacts[], opts: Parameters<typeof classifyNodes>[3] = {}) => classifyNodes(nodes, cookbooks, PIN_MS, { nowMs: NOW_MS, ...opts });

  it('sorts nodes into converged, lagging, in flight, failed, stale and unaffected', () => {
    const o = classify([
      node('ok', PIN + 30, { web: '1.3.0', api: '2.1.0' }),
      node('old-run', PIN - 3600, { web: '1.0.0', api: '1.0.0' }), // last ran an hour before the pin
      node('in-flight', PIN - 5, { web: '1.0.0', api: '1.0.0' }), // resolved the old pin just before it landed
      node('wrong-after', PIN + SKEW + 30, { web: '2.0.0', api: '2.1.0' }), // certainly after the pin, wrong version
      node('missing-api', PIN + SKEW + 30, { web: '1.2.0', api: undefined }),
      node('never-ran', undefined, {}),
      node('dead', PIN - 3 * 86_400, { web: '1.0.0', api: '1.0.0' }), // decommissioned three days ago
      node('db', PIN + 30, { web: undefined, api: undefined }),
    ]);
    assert.deepEqual(
      { ...o, failures: undefined },
      {
        total: 5,
        converged: 1,
        lagging: 2,
        inFlight: 1,
        failed: 2,
        stale: 2,
        laggingNodes: ['in-flight', 'old-run'],
        failedNodes: ['missing-api', 'wrong-after'],
        staleNodes: ['dead', 'never-ran'],
        failures: undefined,
        unaffected: 1,
        reporting: { available: false },
      },
    );
    assert.match(o.failures[1]!.error, /a run since the pin used web 2\.0\.0, api 2\.1\.0, outside web "~> 1\.2", api ">= 2\.0"/);
  });

  it('stale nodes count (as lagging) only with includeStale', () => {
    const nodes = [node('ok', PIN + 30, { web: '1.3.0', api: '2.1.0' }), node('dead', PIN - 3 * 86_400, { web: '1.0.0', api: '1.0.0' })];
    assert.deepEqual([classify(nodes).total, classify(nodes).lagging], [1, 0]);
    const counted = classify(nodes, { rules: { includeStale: true } });
    assert.deepEqual([counted.total, counted.lagging, counted.stale, counted.laggingNodes], [2, 1, 1, ['dead']]);
  });

  it('staleAfter counts from now, allowing maxClockSkew: a node that ran 61 min ago is stale, 59 min ago is not', () => {
    const at = (minutesAgo: number) => (NOW_MS - minutesAgo * 60_000) / 1000;
    const rules = { staleAfterMs: 60 * 60_000, maxClockSkewMs: 60_000 };
    const o = classify([node('fresh', at(59), { web: '1.0.0', api: '1.0.0' }), node('edge', at(60.5), { web: '1.0.0', api: '1.0.0' }), node('old', at(61.5), { web: '1.0.0', api: '1.0.0' })], { rules });
    assert.deepEqual([o.laggingNodes, o.staleNodes], [['edge', 'fresh'], ['old']]);
  });

  it('node clocks off by up to maxClockSkew: a run in flight at the pin is not failed, a new version from a clock behind converges', () => {
    const o = classify([
      // clock 60 s ahead: started 30 s before the pin (old pin resolved), reports 30 s after it
      node('ahead', PIN + 30, { web: '1.0.0', api: '1.0.0' }),
      // clock 60 s behind: started 30 s after the pin on the new versions, reports 30 s before it
      node('behind', PIN - 30, { web: '1.3.0', api: '2.1.0' }),
    ]);
    assert.deepEqual([o.converged, o.failed, o.inFlight, o.laggingNodes], [1, 0, 1, ['ahead']]);
    // beyond the bound the same "ahead" node would have certainly run after the pin: failed
    const tight = classify([node('ahead', PIN + 30, { web: '1.0.0', api: '1.0.0' })], { rules: { maxClockSkewMs: 10_000 } });
    assert.equal(tight.failed, 1);
  });

  it('a failed run counts when it is the node\'s latest, whatever the node\'s clock', () => {
    const failures = new Map([
      ['failing', failedRun('failing', PIN + 40)],
      ['recovered', failedRun('recovered', PIN + 40)],
      ['never-ran', failedRun('never-ran', PIN + 40, 'Net::HTTPClientException: 412 "Precondition Failed": Unable to satisfy constraints')],
    ]);
    const o = classify(
      [
        node('failing', PIN - 600, { web: '1.0.0', api: '1.0.0' }), // its last success is from before the failure
        node('recovered', PIN + 50, { web: '1.3.0', api: '2.1.0' }), // succeeded after the failure
        node('never-ran', undefined, {}),
      ],
      { failures },
    );
    assert.deepEqual([o.failed, o.converged, o.failedNodes], [2, 1, ['failing', 'never-ran']]);
    assert.deepEqual(o.failures, [
      { node: 'failing', error: 'RuntimeError: boom' },
      { node: 'never-ran', error: 'Net::HTTPClientException: 412 "Precondition Failed": Unable to satisfy constraints' },
    ]);
    assert.equal(o.reporting.available, true);
  });

  it('lists the first 20 lagging nodes by name, whatever order the server returned', () => {
    const nodes = Array.from({ length: 50 }, (_, i) => node(`n${String(i).padStart(2, '0')}`, PIN - 600, { web: '1.0.0', api: '1.0.0' }));
    nodes.sort(() => Math.random() - 0.5);
    const o = classify(nodes);
    assert.equal(o.lagging, 50);
    assert.equal(o.laggingNodes.length, 20);
    assert.equal(o.laggingNodes[0], 'n00');
    assert.equal(o.laggingNodes[19], 'n19');
  });

  it('ohai_time is compared in seconds against the pin in milliseconds, fractions included', () => {
    const o = classifyNodes([node('a', PIN - 0.999, { web: '1.2.0' }), node('b', PIN - 1.001, { web: '1.2.0' })], { web: '~> 1.2' }, PIN_MS, { nowMs: NOW_MS, rules: { maxClockSkewMs: 1000 } });
    assert.equal(o.converged, 1);
    assert.deepEqual(o.laggingNodes, ['b']);
  });

  it('classifies 200,000 nodes in one pass (the figure is in test/bench/chef-convergence.ts)', () => {
    const nodes = Array.from({ length: 200_000 }, (_, i) => node(`n${i}`, i % 3 ? PIN + 30 : PIN - 3600, { web: '1.3.0', api: '2.0.0' }));
    const o = classify(nodes);
    assert.deepEqual([o.total, o.converged, o.lagging], [200_000, 133_333, 66_667]);
  });
});

describe('chef convergence: which failed runs started after the pin', () => {
  const SKEW_MS = SKEW * 1000;

  it('by the start time alone only beyond since + maxClockSkew', () => {
    const runs = [failedRun('early', PIN - 10), failedRun('around', PIN + 60), failedRun('late', PIN + SKEW + 1)];
    assert.deepEqual([...failuresSincePin(runs, PIN_MS, SKEW_MS).keys()], ['late']);
  });

  it('a run that is new since a poll sent after the pin (by more than its duration) started after it, whatever the clock', () => {
    const memory = newPollMemory();
    memory.seen.add('old');
    memory.askedAt = PIN_MS + 5_000;
    const runs = [
      failedRun('n1', PIN - 10, 'x', 'old'), // the previous release's failure, seen before: not counted
      failedRun('n2', PIN - 200, 'x', 'new'), // clock 200 s behind, but ended after a poll 5 s after the pin and ran 1 s
      { ...failedRun('n3', PIN - 20, 'x', 'long'), endedAt: PIN - 20 + 30 }, // ran 30 s: may have started before the pin
    ];
    assert.deepEqual([...failuresSincePin(runs, PIN_MS, SKEW_MS, memory).keys()], ['n2']);
  });

  it('without an earlier poll, failures near the pin wait for the node\'s next run', () => {
    const memory = newPollMemory(); // first poll: nothing seen yet
    assert.equal(failuresSincePin([failedRun('n', PIN + 2)], PIN_MS, SKEW_MS, memory).size, 0);
  });

  it('keeps the latest failure per node', () => {
    const m = failuresSincePin([failedRun('n', PIN + SKEW + 10, 'first'), failedRun('n', PIN + SKEW + 90, 'second'), failedRun('n', PIN + SKEW + 50, 'middle')], PIN_MS, SKEW_MS);
    assert.equal(m.get('n')!.error, 'second');
  });
});

describe('chef convergence: run reports', () => {
  it('reads both time formats', () => {
    assert.equal(parseReportTime('2026-12-02T13:53:15Z'), Date.UTC(2026, 11, 2, 13, 53, 15) / 1000);
    assert.equal(parseReportTime('2026-12-02 13:53:15 +0000'), Date.UTC(2026, 11, 2, 13, 53, 15) / 1000);
    assert.equal(parseReportTime('2026-12-02 14:53:15 +0100'), Date.UTC(2026, 11, 2, 13, 53, 15) / 1000);
    assert.equal(parseReportTime('yesterday'), undefined);
  });

  it('describes an exception in one line: class and message, and what a bare HTTP error\'s description adds', () => {
    assert.equal(describeException({ class: '#<RuntimeError: boom>', message: 'boom' }), 'RuntimeError: boom');
    assert.equal(describeException({ class: '#<Chef::Exceptions::RecipeNotFound: x>', message: 'could not find recipe y' }), 'Chef::Exceptions::RecipeNotFound: could not find recipe y');
    assert.equal(
      describeException({ class: '#<Net::HTTPClientException: 412 "Precondition Failed">', message: '412 "Precondition Failed"', description: { title: 'Error Resolving Cookbooks for Run List:', sections: [{ 'Server Response': 'Unable to satisfy\nconstraints' }] } }),
      'Net::HTTPClientException: 412 "Precondition Failed": Unable to satisfy constraints',
    );
    const long = describeException({ class: '#<RuntimeError: x>', message: 'x'.repeat(1000) });
    assert.equal(long.length, 300);
    assert.ok(long.endsWith('…'));
  });
});

describe('chef convergence: verdict', () => {
  const observed = (converged: number, lagging: number, failed: number, more: Partial<ConvergenceObserved> = {}): ConvergenceObserved => ({
    total: converged + lagging + failed,
    converged,
    lagging,
    inFlight: 0,
    failed,
    stale: 0,
    laggingNodes: lagging ? ['l1'] : [],
    failedNodes: failed ? ['f1'] : [],
    staleNodes: [],
    failures: failed ? [{ node: 'f1', error: 'RuntimeError: boom' }] : [],
    unaffected: 0,
    reporting: { available: true },
    ...more,
  });
  const verdict = (o: ConvergenceObserved, minPercent: number, more = {}) => convergenceOutcome('prod', o, { minPercent, ...more });

  it('passes at the threshold, exactly', () => {
    assert.equal(verdict(observed(3, 0, 0), 100).status, 'pass');
    assert.equal(verdict(observed(2, 1, 0), 100).status, 'wait');
    assert.equal(verdict(observed(80, 20, 0), 80).status, 'pass');
    assert.equal(verdict(observed(79, 21, 0), 80).status, 'wait');
    assert.equal(verdict(observed(1, 2, 0), 33.3).status, 'pass');
  });

  it('one failed node more than maxFailed fails at once, quoting node and error', () => {
    const o = verdict(observed(90, 9, 1), 90);
    assert.equal(o.status, 'fail');
    assert.match(o.reason, /^1 node failed chef-client since the pin \(0 tolerated\): 90\/100 nodes converged/);
    assert.match(o.reason, /failed: f1 \(RuntimeError: boom\)/);
    assert.equal(verdict(observed(90, 9, 1), 90, { maxFailed: 1 }).status, 'pass');
    assert.equal(verdict(observed(89, 10, 1), 90, { maxFailed: 1 }).status, 'wait');
  });

  it('fails once the failed nodes put the threshold out of reach', () => {
    const o = verdict(observed(90, 5, 5), 96, { maxFailed: 10 });
    assert.equal(o.status, 'fail');
    assert.match(o.reason, /90\/100 nodes converged.*too many nodes failed since the pin to reach 96%/);
    assert.equal(verdict(observed(90, 5, 5), 95, { maxFailed: 10 }).status, 'wait');
  });

  it('stale nodes are named and counted apart; all stale waits, saying so', () => {
    const o = verdict(observed(4, 0, 0, { stale: 7, staleNodes: ['s1', 's2', 's3', 's4', 's5', 's6', 's7'] }), 100);
    assert.equal(o.status, 'pass');
    assert.match(o.reason, /4\/4 nodes converged \(100%, need 100%\), 0 lagging, 0 failed, 7 stale nodes \(no successful run in 1h; not counted\); stale: s1, s2, s3, s4, s5 and 2 more$/);
    const allStale = verdict(observed(0, 0, 0, { stale: 2, staleNodes: ['s1', 's2'] }), 100);
    assert.equal(allStale.status, 'wait');
    assert.match(allStale.reason, /all 2 nodes of environment prod that use these cookbooks are stale/);
  });

  it('waits, saying why, when the environment has no nodes to check', () => {
    const empty = verdict(observed(0, 0, 0), 50);
    assert.equal(empty.status, 'wait');
    assert.match(empty.reason, /no nodes found in environment prod/);
    assert.match(verdict(observed(0, 0, 0, { unaffected: 4 }), 50).reason, /none of the 4 nodes/);
  });

  it('the reason names lagging nodes and counts, and says when failures cannot be seen', () => {
    const o = verdict(observed(5, 5, 0, { laggingNodes: ['l1', 'l2', 'l3', 'l4', 'l5'] }), 100);
    assert.equal(o.status, 'wait');
    assert.equal(o.reason, '5/10 nodes converged (50%, need 100%), 5 lagging, 0 failed; lagging: l1, l2, l3, l4, l5');
    const blind = verdict(observed(5, 5, 0, { reporting: { available: false, note: 'no reporting API' } }), 100);
    assert.match(blind.reason, /\[no run reports: no reporting API; a failed chef-client run saves nothing, so failed nodes show only as lagging\]$/);
  });
});
