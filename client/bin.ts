#!/usr/bin/env node
/**
 * hybrid-release: start, follow and steer releases that move Flux (Kubernetes) and Chef (VMs)
 * together. Run `hybrid-release help` for the commands.
 */
import { parseArgs } from 'node:util';
import { COMMANDS, type Command } from '../workflows/messages.ts';
import { command, list, start, status, watch } from './commands/release.ts';
import { validate } from './commands/validate.ts';
import { CliError, EXIT } from './exit-codes.ts';
import { makeOutput } from './output.ts';

const USAGE = `usage: hybrid-release <command> [options]

commands:
  validate -f FILE [--offline]     check a release spec and print its plan; reads the Flux
                                   targets (KUBECONFIG) for warnings unless --offline
  start -f FILE [--wait] [--timeout 2h]
                                   validate, then start the release (one running release per app)
  status APP                       phase, steps, changes with before/after, gates, decisions
  watch APP [--timeout 2h]         follow a release until it ends
  list [--limit N]                 running and recent releases
  approve|abort|pause|resume APP [--reason TEXT] [--as USER] [--key FILE]
  retry|skip APP [--reason TEXT]   answer a compensation that keeps failing (RollbackFailed)
                                   every decision is signed with your SSH key (ssh-keygen -Y sign)

options:
  -f, --file FILE         the release spec (YAML or JSON)
  -o, --output text|json  output format (default text)
  --as USER               who you are (default: the CI user, else the OS user): your name in
                          the worker's policy
  --key FILE              your SSH key to sign with (default: HR_SIGNING_KEY, else
                          ~/.ssh/id_ed25519, id_ecdsa, id_rsa; a .pub file signs via ssh-agent)

exit codes: 0 succeeded, 1 failed or rolled back, 2 invalid input or refused,
            3 timed out waiting, 4 cannot reach Temporal
connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
            TEMPORAL_PROFILE (the Temporal CLI's profile file); TEMPORAL_UI_URL for links
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      file: { type: 'string', short: 'f' },
      output: { type: 'string', short: 'o', default: 'text' },
      wait: { type: 'boolean' },
      timeout: { type: 'string' },
      reason: { type: 'string' },
      as: { type: 'string' },
      key: { type: 'string' },
      limit: { type: 'string' },
      offline: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [cmd, name] = positionals;
  if (values.help || !cmd || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd || values.help ? EXIT.succeeded : EXIT.invalid;
  }
  if (values.output !== 'text' && values.output !== 'json') throw new CliError(`--output takes text or json, not "${values.output}"`, EXIT.invalid);
  const out = makeOutput(values.output);
  switch (cmd) {
    case 'validate':
      return validate(values.file, out, { offline: values.offline });
    case 'start':
      return start(values, out);
    case 'status':
      return status(name, out);
    case 'watch':
      return watch(name, values, out);
    case 'list':
      return list(values, out);
    default:
      if ((COMMANDS as readonly string[]).includes(cmd)) return command(cmd as Command, name, values, out);
      throw new CliError(`unknown command "${cmd}"\n\n${USAGE}`, EXIT.invalid);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(err.exitCode);
    }
    if ((err as NodeJS.ErrnoException)?.code?.startsWith?.('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
      process.exit(EXIT.invalid);
    }
    process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(EXIT.rolledBack);
  },
);
