import { InvalidSpecError, loadSpecFile } from '../../release-spec/load.ts';
import type { ReleaseInput } from '../../release-spec/plan.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import { type Output, printJson } from '../output.ts';
import { checkFluxTargets, type TargetCheck } from '../target-warnings.ts';

/** Loads and validates a spec file; on problems ends with exit 2 and every problem listed. */
export async function loadOrExit(file: string | undefined, out: Output): Promise<ReleaseInput> {
  if (!file) throw new CliError('missing -f FILE (the release spec, YAML or JSON)', EXIT.invalid);
  try {
    return await loadSpecFile(file);
  } catch (err) {
    if (!(err instanceof InvalidSpecError)) throw err;
    if (out.json) printJson({ valid: false, file, problems: err.problems });
    throw new CliError(err.message, EXIT.invalid);
  }
}

/**
 * Validates the spec and prints the plan; unless `offline`, also reads the Flux targets with the
 * local kubeconfig and prints warnings (e.g. a Kustomization without wait). Warnings never change
 * the exit code.
 */
export async function validate(file: string | undefined, out: Output, opts: { offline?: boolean } = {}): Promise<number> {
  const input = await loadOrExit(file, out);
  const targets: TargetCheck = opts.offline ? { warnings: [], notChecked: [] } : await checkFluxTargets(input.spec.spec.flux);
  if (out.json) {
    printJson({ valid: true, file, release: input.spec.metadata.name, app: input.spec.spec.app, defaultPlan: input.defaultPlan, plan: input.plan, warnings: targets.warnings, notChecked: targets.notChecked, spec: input.spec });
  } else {
    process.stdout.write(describePlan(input, out));
    for (const w of targets.warnings) process.stdout.write(`${out.yellow('warning:')} ${w}\n`);
    for (const n of targets.notChecked) process.stdout.write(`note: ${n}\n`);
  }
  return EXIT.succeeded;
}

export function describePlan(input: ReleaseInput, out: Output): string {
  const { metadata, spec } = input.spec;
  const lines = [
    `${out.bold(metadata.name)}: app ${spec.app}${spec.version ? `, version ${spec.version}` : ''} ${out.green('valid')}`,
    `plan${input.defaultPlan ? ' (default: apply Chef, apply Flux, then every gate)' : ''}:`,
    ...input.plan.map((s, i) => `  ${String(i + 1).padStart(2)}. ${s.kind.padEnd(9)} ${s.summary}`),
  ];
  if (spec.approvals.approvers.length) lines.push(`approvers: ${spec.approvals.approvers.join(', ')}`);
  return `${lines.join('\n')}\n`;
}
