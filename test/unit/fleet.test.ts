/**
 * The fleet simulator's pure parts: what a recipe makes a run do, run list expansion, the
 * reporting API's time format and the ohai data a node saves. Its runs against goiardi are
 * covered by test/integration/chef.test.ts and test/workflow/chef-convergence.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ohaiAttributes } from '../../scripts/fleet/ohai.ts';
import { compileRunList, parseRecipe, RunFailure } from '../../scripts/fleet/recipes.ts';
import { describeFailure, expandRunList, reportTime } from '../../scripts/fleet/run.ts';

describe('fleet: recipes', () => {
  it('reads raise, include_recipe, sleep and counts resources; comments are ignored', () => {
    const facts = parseRecipe(
      ['# raise "not me"', 'package "nginx"', 'include_recipe "base::users"', "template '/etc/x' do", '  source "x.erb"', 'end', 'sleep 2.5', 'raise "nginx.conf: bad \\"quote\\""', 'raise "second"'].join('\n'),
    );
    assert.deepEqual(facts, { raise: { cls: 'RuntimeError', message: 'nginx.conf: bad "quote"' }, includes: ['base::users'], sleepSeconds: 2.5, resources: 3 });
    assert.deepEqual(parseRecipe("raise Chef::Exceptions::ConfigurationError, 'no backend'").raise, { cls: 'Chef::Exceptions::ConfigurationError', message: 'no backend' });
  });

  const files: Record<string, string> = {
    'web::default': 'package "nginx"\ninclude_recipe "base"\nsleep 1\n',
    'base::default': 'user "deploy"\n',
    'broken::default': 'include_recipe "base"\nraise "boom"\n',
    'lonely::default': 'include_recipe "nowhere::x"\n',
  };
  const facts = (cb: string, r: string) => (files[`${cb}::${r}`] === undefined ? undefined : parseRecipe(files[`${cb}::${r}`]!));
  const fails = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof RunFailure, String(err));
      return `${err.cls}: ${err.message}`;
    }
    return assert.fail('the run did not fail');
  };

  it('compiles the run list depth first, each recipe once', () => {
    assert.deepEqual(compileRunList(['web', 'base', 'web::default'], new Set(['web', 'base']), facts), { sleepSeconds: 1, resources: 2 });
  });

  it('fails as chef-client does: a raise, a missing recipe, a cookbook not in the solved set', () => {
    assert.equal(fails(() => compileRunList(['broken'], new Set(['broken', 'base']), facts)), 'RuntimeError: boom');
    assert.equal(fails(() => compileRunList(['web::nope'], new Set(['web', 'base']), facts)), 'Chef::Exceptions::RecipeNotFound: could not find recipe nope for cookbook web');
    assert.match(fails(() => compileRunList(['lonely'], new Set(['lonely']), facts)), /^Chef::Exceptions::CookbookNotFound: Cookbook nowhere not found\. If you're loading nowhere from another cookbook, make sure you configure the dependency in your metadata$/);
  });

  it('describes an HTTP failure with what the server said, others by class and message', () => {
    assert.equal(describeFailure(new RunFailure('RuntimeError', 'boom')), 'RuntimeError: boom');
    assert.equal(
      describeFailure(new RunFailure('Net::HTTPClientException', '412 "Precondition Failed"', { title: 'Error Resolving Cookbooks for Run List:', sections: [{ 'Server Response': 'Unable to satisfy constraints on package tls' }] })),
      'Net::HTTPClientException: 412 "Precondition Failed": Unable to satisfy constraints on package tls',
    );
  });
});

describe('fleet: run list and reports', () => {
  it('expands recipe[...] to the bare names the depsolver takes, and refuses roles', () => {
    assert.deepEqual(expandRunList(['recipe[web]', 'recipe[web::tls]', 'recipe[base@1.2.0]', 'base::users']), ['web', 'web::tls', 'base', 'base::users']);
    assert.throws(() => expandRunList(['role[frontend]']), /roles are not simulated/);
  });

  it('writes start and end times the way the reporting API takes them', () => {
    assert.equal(reportTime(Date.UTC(2026, 11, 2, 13, 53, 15, 987)), '2026-12-02 13:53:15 +0000');
  });
});

describe('fleet: ohai data', () => {
  it('has the minimal_ohai attributes, ohai_time from the node clock, and stays the same per node', () => {
    const a = ohaiAttributes({ name: 'gw-eu-1', nowMs: 1_800_000_000_500, bootMs: 1_800_000_000_500 - 90_061_000 });
    for (const k of ['fqdn', 'machinename', 'hostname', 'platform', 'platform_version', 'ohai_time', 'os', 'os_version', 'init_package']) assert.ok(k in a, k);
    assert.equal(a.ohai_time, 1_800_000_000.5);
    assert.deepEqual([a.hostname, a.fqdn, a.platform, a.platform_family], ['gw-eu-1', 'gw-eu-1.fleet.example', 'debian', 'debian']);
    assert.equal(a.uptime, '1 day 01 hours 01 minutes 01 seconds');
    const again = ohaiAttributes({ name: 'gw-eu-1', nowMs: 1_800_000_100_000, bootMs: 0 });
    const other = ohaiAttributes({ name: 'gw-eu-2', nowMs: 1_800_000_100_000, bootMs: 0 });
    assert.equal(again.ipaddress, a.ipaddress);
    assert.equal(again.macaddress, a.macaddress);
    assert.notEqual(other.macaddress, a.macaddress);
    assert.match(String(a.ipaddress), /^198\.51\.100\.\d+$/); // documentation range: never a real host
    assert.ok(JSON.stringify(a).length < 4096, 'a realistic minimum, not a full ohai run');
  });
});
