/**
 * The CLI's CI contract without a server: the README's exit-code table matches client/exit-codes.ts,
 * every way a wait can end maps to its own code, history events are read as the follower reads
 * them, and server text in the step summary cannot break or inject markdown.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import { endingText } from '../../client/commands/release.ts';
import { EXIT } from '../../client/exit-codes.ts';
import { closeEvent, exitCodeFor, followRelease, type FollowResult, isTransient, phaseOf } from '../../client/follow.ts';
import { markdownSummary, mdText } from '../../client/render.ts';
import type { Change, ReleaseStatus } from '../../workflows/messages.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const ciReadme = readFileSync(new URL('../../examples/ci/README.md', import.meta.url), 'utf8');
const ciWorkflow = readFileSync(new URL('../../examples/ci/github-actions.yml', import.meta.url), 'utf8');

/** The rows of the first markdown table whose header starts with `header`: code → meaning. */
function table(markdown: string, header: RegExp): Map<number, string> {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => header.test(l));
  assert.ok(start >= 0, `a table headed ${header}`);
  const rows = new Map<number, string>();
  for (const line of lines.slice(start + 2)) {
    const m = /^\|\s*(\d+)\s*\|\s*(.+?)\s*\|/.exec(line);
    if (!m) break;
    rows.set(Number(m[1]), m[2]!);
  }
  return rows;
}

const status = (phase: ReleaseStatus['phase'], changes: Partial<Change>[] = []): ReleaseStatus => ({
  release: 'web-2-1-0',
  app: 'web',
  phase,
  startedAt: '2026-01-01T00:00:00Z',
  steps: [],
  changes: changes.map((c, i) => ({ step: i, system: 'chef', target: 'production', summary: `change ${i}`, before: '1.0.0', after: '2.0.0', state: 'restored', ...c })),
  gates: [],
  decisions: [],
});

describe('exit codes', () => {
  it('the README table lists every code of client/exit-codes.ts, and nothing else', () => {
    const rows = table(readme, /^\| exit code \| meaning \|/);
    assert.deepEqual([...rows.keys()].sort((a, b) => a - b), Object.values(EXIT).sort((a, b) => a - b));
  });

  it('the CI example documents every code and branches on each', () => {
    const rows = table(ciReadme, /^\| code \| meaning/);
    assert.deepEqual([...rows.keys()].sort((a, b) => a - b), Object.values(EXIT).sort((a, b) => a - b));
    for (const code of Object.values(EXIT)) assert.match(ciWorkflow, new RegExp(`^\\s+${code}\\) `, 'm'), `the workflow's case has a branch for ${code}`);
  });

  it('each way a wait ends has its own code', () => {
    const closed = (s: ReleaseStatus | undefined): FollowResult => ({ status: s, end: { kind: 'closed' } });
    assert.equal(exitCodeFor(closed(status('Succeeded'))), EXIT.succeeded);
    assert.equal(exitCodeFor(closed(status('RolledBack', [{}]))), EXIT.rolledBack);
    assert.equal(exitCodeFor(closed(status('RolledBack', [{}, { state: 'restore-skipped' }]))), EXIT.partiallyRolledBack);
    assert.equal(exitCodeFor(closed(status('Failed'))), EXIT.failedUnchanged);
    assert.equal(exitCodeFor(closed(undefined)), EXIT.terminated, 'closed without a status is not "rolled back"');
    assert.equal(exitCodeFor({ status: status('RollbackFailed'), end: { kind: 'rollbackFailed' } }), EXIT.rollbackFailed);
    assert.equal(exitCodeFor({ status: status('AwaitingApproval'), end: { kind: 'timedOut' } }), EXIT.timedOut);
    assert.equal(exitCodeFor({ status: status('Applying'), end: { kind: 'external', how: 'terminated' } }), EXIT.terminated);
  });

  it('a terminated release says who terminated it, why, and what it left changed', () => {
    const text = endingText({ status: status('Applying', [{ summary: 'pin api_gateway = 2.1.0 in production', state: 'applied' }]), end: { kind: 'external', how: 'terminated', reason: 'stuck', identity: 'ops@laptop' } }, 'release-web');
    assert.equal(text, "the release's workflow was terminated by ops@laptop: stuck. Nothing was undone; changes it had made: pin api_gateway = 2.1.0 in production (applied)");
    assert.match(endingText({ status: status('RollbackFailed'), end: { kind: 'rollbackFailed' } }, 'release-web')!, /hybrid-release retry web.*hybrid-release skip web/);
  });
});

describe('reading the history', () => {
  const sa = (phase: string) => ({ searchAttributes: { indexedFields: { HrPhase: defaultPayloadConverter.toPayload(phase) } } });

  it('the phase from start and upsert events; other search attributes are not a phase', () => {
    assert.equal(phaseOf({ workflowExecutionStartedEventAttributes: sa('Pending') }), 'Pending');
    assert.equal(phaseOf({ upsertWorkflowSearchAttributesEventAttributes: sa('RollbackFailed') }), 'RollbackFailed');
    assert.equal(phaseOf({ upsertWorkflowSearchAttributesEventAttributes: { searchAttributes: { indexedFields: { HrApp: defaultPayloadConverter.toPayload('web') } } } }), undefined);
    assert.equal(phaseOf({ upsertWorkflowSearchAttributesEventAttributes: sa('NotAPhase') }), undefined);
  });

  it('close events: the release own outcome, a new run to follow, or an end from outside', () => {
    assert.deepEqual(closeEvent({ workflowExecutionCompletedEventAttributes: {} }), { kind: 'closed' });
    assert.deepEqual(closeEvent({ workflowExecutionFailedEventAttributes: {} }), { kind: 'closed' });
    assert.deepEqual(closeEvent({ workflowExecutionContinuedAsNewEventAttributes: { newExecutionRunId: 'r2' } }), { kind: 'newRun', runId: 'r2' });
    assert.deepEqual(closeEvent({ workflowExecutionTerminatedEventAttributes: { reason: 'stuck', identity: 'ops' } }), { kind: 'external', how: 'terminated', reason: 'stuck', identity: 'ops' });
    assert.deepEqual(closeEvent({ workflowExecutionCanceledEventAttributes: {} }), { kind: 'external', how: 'cancelled' });
    assert.deepEqual(closeEvent({ workflowExecutionTimedOutEventAttributes: {} }), { kind: 'external', how: 'timed out' });
    assert.equal(closeEvent({ workflowTaskCompletedEventAttributes: {} }), undefined);
  });

  it('transient errors are retried; not-found, permissions and bad requests are not', () => {
    assert.ok(isTransient(Object.assign(new Error('unavailable'), { code: 14 })));
    assert.ok(isTransient(new Error('ServiceError', { cause: Object.assign(new Error('deadline'), { code: 4 }) })));
    assert.ok(isTransient(new Error('socket hang up')));
    assert.ok(!isTransient(Object.assign(new Error('denied'), { code: 7 })));
    assert.ok(!isTransient(Object.assign(new Error('bad'), { code: 3 })));
  });
});

describe('GITHUB_STEP_SUMMARY', () => {
  it('server text cannot break a table row or inject links, images, HTML or headings', () => {
    const hostile = 'x | y\n## pwned ![img](http://evil.example/a.png) <img src=x onerror=alert(1)> [click](https://evil.example) `code` www.evil.example';
    const escaped = mdText(hostile);
    assert.ok(!escaped.includes('\n'), 'one line');
    assert.ok(!/(^|[^\\])\|/.test(escaped), 'every pipe escaped');
    assert.ok(!/<|>/.test(escaped), 'no HTML');
    assert.ok(!/(^|[^\\])[[\]!`]/.test(escaped), 'no link, image or code syntax');
    assert.ok(!/https?:\/\/|www\./.test(escaped), 'no autolink');
  });

  it('a summary keeps its table shape with hostile gate reasons and values', () => {
    const s = { ...status('RolledBack', [{ summary: 'set image | evil', before: { tag: 'a|b' }, state: 'restored' }]), gates: [{ gate: 'err|rate', kind: 'http', ok: false, reason: 'HTTP 500\n| injected | row |', observed: null, checks: 3, elapsedMs: 1, step: 2 }] } as ReleaseStatus;
    const md = markdownSummary(s, 'http://ui.local/namespaces/default/workflows/release-web');
    for (const line of md.split('\n').filter((l) => l.startsWith('|') && !l.startsWith('|---'))) {
      assert.equal(line.replace(/\\\|/g, '').split('|').length - 2, 4, `four cells: ${line}`);
    }
    assert.match(md, /^### ❌ web-2-1-0 \(web\): RolledBack$/m);
  });
});

describe('following a release through errors (a scripted Temporal client)', () => {
  const unavailable = () => Object.assign(new Error('14 UNAVAILABLE: connection refused'), { code: 14 });

  /** A handle whose history answers come from `pages` in order (an Error is thrown), and whose query answers `query()`. */
  function scripted(pages: (Error | object[])[], query: () => Promise<ReleaseStatus>, final?: ReleaseStatus) {
    let calls = 0;
    const client = {
      options: { namespace: 'default' },
      connection: { withDeadline: <T>(_d: number, fn: () => Promise<T>) => fn() },
      workflowService: {
        getWorkflowExecutionHistory: async () => {
          const next = pages[Math.min(calls++, pages.length - 1)]!;
          if (next instanceof Error) throw next;
          return { history: { events: next }, nextPageToken: new Uint8Array([calls]) };
        },
      },
      getHandle: () => ({ result: async () => final }),
    };
    const handle = { workflowId: 'release-web', client, describe: async () => ({ runId: 'r1', status: { name: 'RUNNING' } }), query };
    return { handle: handle as never, calls: () => calls };
  }
  const sa = (phase: string) => ({ upsertWorkflowSearchAttributesEventAttributes: { searchAttributes: { indexedFields: { HrPhase: defaultPayloadConverter.toPayload(phase) } } } });

  it('retries history errors and unanswered queries, then reports the outcome it saw', async () => {
    const notices: string[] = [];
    let answered = false;
    const { handle, calls } = scripted(
      [unavailable(), [sa('Applying')], unavailable(), unavailable(), [{ workflowExecutionCompletedEventAttributes: {} }]],
      async () => {
        if (!answered) {
          answered = true;
          throw Object.assign(new Error('4 DEADLINE_EXCEEDED'), { code: 4 });
        }
        return status('Applying');
      },
      status('Succeeded'),
    );
    const result = await followRelease(handle, () => undefined, { onNotice: (l) => notices.push(l) });
    assert.equal(exitCodeFor(result), EXIT.succeeded);
    assert.equal(calls(), 5, 'every history error was retried');
    assert.deepEqual(notices.map((n) => n.split(/ \(| within/)[0]), ['lost contact with Temporal', 'in contact with Temporal again', 'no answer to the status query', 'lost contact with Temporal', 'in contact with Temporal again']);
  });

  it('a terminate ends the wait at once with exit 8; RollbackFailed with exit 6', async () => {
    const terminated = scripted([[sa('Applying')], [{ workflowExecutionTerminatedEventAttributes: { reason: 'stuck', identity: 'ops' } }]], async () => status('Applying'));
    const t = await followRelease(terminated.handle, () => undefined);
    assert.deepEqual(t.end, { kind: 'external', how: 'terminated', reason: 'stuck', identity: 'ops' });
    assert.equal(exitCodeFor(t), EXIT.terminated);
    const stuck = scripted([[sa('RollingBack')], [sa('RollbackFailed')]], async () => status('RollbackFailed'));
    const r = await followRelease(stuck.handle, () => undefined);
    assert.equal(exitCodeFor(r), EXIT.rollbackFailed);
  });
});
