import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidConstraint, parseConstraint, parseVersion, satisfies } from '../../activities/chef/constraints.ts';

describe('chef constraints: grammar', () => {
  const valid: [string, object][] = [
    ['= 1.5.3', { op: '=', version: [1, 5, 3], parts: 3 }],
    ['1.5.3', { op: '=', version: [1, 5, 3], parts: 3 }],
    ['1', { op: '=', version: [1, 0, 0], parts: 1 }],
    ['>= 1.0', { op: '>=', version: [1, 0, 0], parts: 2 }],
    ['> 0.0.1', { op: '>', version: [0, 0, 1], parts: 3 }],
    ['< 2', { op: '<', version: [2, 0, 0], parts: 1 }],
    ['<= 10.20.30', { op: '<=', version: [10, 20, 30], parts: 3 }],
    ['~> 1.2', { op: '~>', version: [1, 2, 0], parts: 2 }],
    ['~> 1.2.3', { op: '~>', version: [1, 2, 3], parts: 3 }],
    ['~> 1', { op: '~>', version: [1, 0, 0], parts: 1 }],
  ];
  for (const [text, parsed] of valid) {
    it(`accepts ${JSON.stringify(text)}`, () => {
      assert.deepEqual(parseConstraint(text), parsed);
      assert.equal(isValidConstraint(text), true);
    });
  }

  // the server's own rejections (REFERENCE.md), plus shapes a YAML spec can produce
  const invalid: unknown[] = [
    '>=1.0.0', ' >= 1.0.0', '>=  1.0.0', '>= 1.0.0 ', '>= 1.0.0.0', '>= 1.0rc1', '', '=', '~>', '~> ', 'latest',
    '>= v1.0', '>= 1.', '>= .1', '>= -1', '== 1.0', '=> 1.0', '~ 1.0', '^1.0', '>= 1.0, < 2.0', '1.0\n',
    null, undefined, 1, 1.5, ['>= 1.0'], { op: '>=' },
  ];
  for (const text of invalid) {
    it(`rejects ${JSON.stringify(text) ?? String(text)}`, () => {
      assert.equal(parseConstraint(text), null);
      assert.equal(isValidConstraint(text), false);
    });
  }
});

describe('chef constraints: matching', () => {
  // [constraint, version, expected]
  const table: [string, string, boolean][] = [
    ['= 1.5.3', '1.5.3', true],
    ['= 1.5.3', '1.5.4', false],
    ['1.5.3', '1.5.3', true],
    ['1.5', '1.5.0', true],
    ['= 1.5', '1.5.1', false],
    ['> 1.0', '1.0.0', false],
    ['> 1.0', '1.0.1', true],
    ['< 2.0', '1.99.99', true],
    ['< 2.0', '2.0.0', false],
    ['>= 1.2.3', '1.2.3', true],
    ['>= 1.2.3', '1.2.2', false],
    ['>= 1.2.3', '1.10.0', true], // numeric, not lexical
    ['<= 1.2.3', '1.2.3', true],
    ['<= 1.2.3', '1.2.4', false],
    ['~> 1.2', '1.2.0', true],
    ['~> 1.2', '1.9.7', true],
    ['~> 1.2', '1.1.9', false],
    ['~> 1.2', '2.0.0', false],
    ['~> 1.2.3', '1.2.3', true],
    ['~> 1.2.3', '1.2.99', true],
    ['~> 1.2.3', '1.2.2', false],
    ['~> 1.2.3', '1.3.0', false],
    ['~> 1', '1.0.0', true],
    ['~> 1', '1.9.0', true],
    ['~> 1', '0.9.0', false],
    ['~> 1', '2.0.0', false],
    ['~> 0.1', '0.9.9', true],
    ['~> 0.1', '1.0.0', false],
    ['~> 2.0.0', '2.0.5', true],
    ['~> 2.0.0', '2.1.0', false],
    ['>= 0.0.0', '0.0.0', true],
    ['= 10.0.0', '10.0', true], // server versions may carry two parts
    ['>= 1.0', 'not-a-version', false],
    ['>=1.0', '1.0.0', false], // an invalid constraint matches nothing
  ];
  for (const [constraint, version, expected] of table) {
    it(`${JSON.stringify(version)} ${expected ? 'satisfies' : 'does not satisfy'} ${JSON.stringify(constraint)}`, () => {
      assert.equal(satisfies(version, constraint), expected);
      const parsed = parseConstraint(constraint);
      if (parsed) assert.equal(satisfies(version, parsed), expected);
    });
  }

  it('parses server versions', () => {
    assert.deepEqual(parseVersion('5.1.0'), [5, 1, 0]);
    assert.deepEqual(parseVersion('5.1'), [5, 1, 0]);
    assert.equal(parseVersion('5.1.0.1'), null);
    assert.equal(parseVersion(''), null);
  });
});
