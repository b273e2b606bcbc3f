/**
 * Tools for the worker's policy (README, "Security model"):
 *
 *   npm run policy -- check FILE                          validate it, as the worker will at start
 *   npm run policy -- rbac FILE [--context NAME]          the worker's namespace-scoped Roles for one cluster
 *   npm run policy -- admit FILE -f release.yaml          would the worker admit this spec? (exit 2 if not)
 *   npm run policy -- suggest -f release.yaml [--approver NAME=KEYFILE.pub]
 *                                                         the narrowest policy entry that admits the spec
 *
 * FILE is a policy file, or a ConfigMap carrying one under data["policy.yaml"] (deploy/policy.yaml).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { loadSpecFile } from '../release-spec/load.ts';
import { checkSpec } from '../policy/check.ts';
import { loadPolicyFile } from '../policy/load.ts';
import { rbacYaml } from '../policy/rbac.ts';
import { AppScope } from '../policy/scope.ts';
import { suggestPolicy } from '../policy/suggest.ts';

const USAGE = `usage: npm run policy -- check FILE | rbac FILE [--context NAME] | admit FILE -f SPEC | suggest -f SPEC [--approver NAME=KEY.pub]\n`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { file: { type: 'string', short: 'f' }, context: { type: 'string' }, approver: { type: 'string', multiple: true } },
  });
  const [cmd, file] = positionals;
  switch (cmd) {
    case 'check': {
      const p = loadPolicyFile(need(file));
      process.stdout.write(`${p.source}: valid; ${p.apps.length} app entr${p.apps.length === 1 ? 'y' : 'ies'} (${p.apps.map((a) => a.app).join(', ') || 'none: every release is refused'}), ${Object.keys(p.approvers).length} approvers\n`);
      return 0;
    }
    case 'rbac':
      process.stdout.write(rbacYaml(loadPolicyFile(need(file)), { from: need(file), ...(values.context ? { context: values.context } : {}) }));
      return 0;
    case 'admit': {
      const policy = loadPolicyFile(need(file));
      const input = await loadSpecFile(need(values.file));
      const problems = checkSpec(new AppScope(policy, input.spec.spec.app), input.spec, input.plan);
      if (problems.length === 0) {
        process.stdout.write(`${values.file}: admitted by ${policy.source}\n`);
        return 0;
      }
      process.stdout.write(`${values.file}: refused by ${policy.source}\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}\n`);
      return 2;
    }
    case 'suggest': {
      const input = await loadSpecFile(need(values.file));
      const approvers = Object.fromEntries((values.approver ?? []).map((a) => {
        const [name, keyFile] = a.split('=');
        return [name!, readFileSync(keyFile!, 'utf8').trim()];
      }));
      process.stdout.write(stringify(suggestPolicy([input.spec], approvers), { lineWidth: 0 }));
      return 0;
    }
    default:
      process.stderr.write(USAGE);
      return 2;
  }
}

function need(v: string | undefined): string {
  if (!v) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  return v;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  },
);
