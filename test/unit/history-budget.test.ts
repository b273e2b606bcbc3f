/**
 * The history budget (release-spec/budget.ts): the shipped examples and a 30-step canary fit far
 * inside it, and validation refuses a plan that would not, with a sentence saying what to do.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { estimateHistory, HISTORY_BUDGET } from '../../release-spec/budget.ts';
import { InvalidSpecError, parseSpecText, validateSpec } from '../../release-spec/load.ts';

const example = (name: string) => readFileSync(new URL(`../../examples/${name}`, import.meta.url), 'utf8');

/** the canary-with-approval example with `n` weight steps, each followed by a timed pause and the error-rate gate */
function canary(n: number): unknown {
  const doc = parse(example('canary-with-approval.yaml')) as { spec: { steps: unknown[] } };
  const steps: unknown[] = [{ chef: 'gateway' }, { gate: 'gateway-converged' }, { flux: 'web-canary' }, { gate: ['canary-ready', 'canary-version'] }];
  for (let i = 1; i <= n; i++) steps.push({ setWeight: Math.round((100 * i) / n) }, { pause: { duration: '5m' } }, { gate: 'error-rate' });
  steps.push({ pause: { deadline: '4h', onTimeout: 'abort' } }, { flux: 'web' }, { gate: 'web-ready' });
  doc.spec.steps = steps;
  return doc;
}

describe('history budget', () => {
  it('every example fits with room to spare', () => {
    for (const name of ['basic.yaml', 'canary-with-approval.yaml', 'multi-cluster.yaml', 'git-mode.yaml']) {
      const e = estimateHistory(parseSpecText(example(name), name));
      assert.ok(e.events < HISTORY_BUDGET.events / 10, `${name}: ${e.events} events`);
      assert.ok(e.bytes < HISTORY_BUDGET.bytes / 10, `${name}: ${e.bytes} bytes`);
    }
  });

  it('a 30-step canary (90 steps with its pauses and gates) is accepted', () => {
    const input = validateSpec(canary(30));
    const e = estimateHistory(input);
    assert.ok(e.events < HISTORY_BUDGET.events / 2, `${e.events} events`);
    assert.ok(e.statusBytes < HISTORY_BUDGET.statusBytes / 2, `${e.statusBytes} status bytes`);
  });

  it('a plan that could approach the limits is refused before it starts, saying how to fix it', () => {
    assert.throws(
      () => validateSpec(canary(400)),
      (err: unknown) => {
        assert.ok(err instanceof InvalidSpecError);
        const p = err.problems.find((x) => x.path === 'spec.steps');
        assert.ok(p, JSON.stringify(err.problems));
        assert.match(p.message, /over the budget of 10000/);
        assert.match(p.message, /split it into several releases/);
        return true;
      },
    );
  });

  it('an oversized release document is refused by its size', () => {
    const doc = parse(example('basic.yaml')) as { metadata: Record<string, unknown>; spec: { flux: { images: { name: string; newTag: string }[] }[] } };
    doc.spec.flux[0]!.images = Array.from({ length: 4000 }, (_, i) => ({ name: `ghcr.io/acme/image-number-${i}-with-a-long-name`, newTag: '2.2.0' }));
    assert.throws(() => validateSpec(doc), (err: unknown) => err instanceof InvalidSpecError && err.problems.some((p) => /as JSON, over the 256 KiB/.test(p.message)));
  });
});
