#!/usr/bin/env node
/**
 * hybrid-release: start, follow and steer releases that move Flux (Kubernetes) and Chef (VMs)
 * together. Run `hybrid-release help` for the commands.
 */
import { parseArgs } from 'node:util';
import { validate } from './commands/validate.ts';
import { CliError, EXIT } from './exit-codes.ts';
import { makeOutput } from './output.ts';

const USAGE = `usage: hybrid-release <command> [options]

commands:
  validate -f FILE          check a release spec and print its plan (exit 2 when invalid)

options:
  -f, --file FILE           the release spec (YAML or JSON)
  -o, --output text|json    output format (default text)
  -h, --help                this help
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      file: { type: 'string', short: 'f' },
      output: { type: 'string', short: 'o', default: 'text' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command] = positionals;
  if (values.help || !command || command === 'help') {
    process.stdout.write(USAGE);
    return command || values.help ? EXIT.succeeded : EXIT.invalid;
  }
  if (values.output !== 'text' && values.output !== 'json') throw new CliError(`--output takes text or json, not "${values.output}"`, EXIT.invalid);
  const out = makeOutput(values.output);
  switch (command) {
    case 'validate':
      return validate(values.file, out);
    default:
      throw new CliError(`unknown command "${command}"\n\n${USAGE}`, EXIT.invalid);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(err.exitCode);
    }
    if (err instanceof TypeError && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${err.message}\n\n${USAGE}`);
      process.exit(EXIT.invalid);
    }
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(EXIT.failed);
  },
);
