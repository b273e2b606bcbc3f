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
import { grpcCode, rootMessage } from './follow.ts';
import { makeOutput } from './output.ts';
import { setupError } from './releases.ts';

const USAGE = `usage: hybrid-release <command> [options]

commands:
  validate -f FILE [--offline]     check a release spec and print its plan; reads the Flux
                                   targets (KUBECONFIG) for warnings unless --offline
  start -f FILE [--wait] [--timeout 2h]
                                   validate, then start the release (one running release per app)
  status APP                       phase, steps, changes with before/after, gates, decisions
  watch APP [--timeout 2h]         follow a release until it ends (or waits in RollbackFailed)
  list [--limit N]                 running and recent releases
  approve|abort|pause|resume APP [--reason TEXT] [--as USER] [--key FILE] [--timeout 60s]
  retry|skip APP [--reason TEXT]   answer a compensation that keeps failing (RollbackFailed)
                                   every decision is signed with your SSH key (ssh-keygen -Y sign)

options:
  -f, --file FILE         the release spec (YAML or JSON)
  -o, --output text|json  output format (default text)
  --as USER               who you are (default: the CI user, else the OS user): your name in
                          the worker's policy
  --key FILE              your SSH key to sign with (default: HR_SIGNING_KEY, else
                          ~/.ssh/id_ed25519, id_ecdsa, id_rsa; a .pub file signs via ssh-agent)

exit codes: 0 succeeded, 1 rolled back, 2 invalid input, refused or not found,
            3 --timeout reached (the release goes on), 4 cannot reach Temporal or no worker,
            5 failed before changing anything, 6 RollbackFailed (a person must act),
            7 rolled back except skipped undos, 8 terminated/cancelled/timed out from outside,
            9 the CLI itself failed
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
    const known = err instanceof CliError ? err : classify(err);
    if (known) {
      process.stderr.write(`${known.message}\n`);
      process.exit(known.exitCode);
    }
    if ((err as NodeJS.ErrnoException)?.code?.startsWith?.('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
      process.exit(EXIT.invalid);
    }
    // never exit 1 ("rolled back") for something the CLI did not see happen to the release
    process.stderr.write(process.env.HR_DEBUG ? `${(err as Error)?.stack ?? String(err)}\n` : `hybrid-release failed: ${rootMessage(err)} (the release's outcome is unknown: see hybrid-release status; HR_DEBUG=1 prints the stack)\n`);
    process.exit(EXIT.internal);
  },
);

/** Errors from Temporal that are not bugs: a namespace not set up, a server that does not answer. */
function classify(err: unknown): CliError | undefined {
  const setup = setupError(err, process.env.TEMPORAL_NAMESPACE ?? 'default');
  if (setup) return setup;
  const code = grpcCode(err);
  if (code === 14 || code === 4) return new CliError(`Temporal did not answer: ${rootMessage(err)} (check TEMPORAL_ADDRESS and that the server is up)`, EXIT.unreachable);
  if (code === 7 || code === 16) return new CliError(`Temporal refused the request: ${rootMessage(err)} (check TEMPORAL_API_KEY or the TLS certificate, and the namespace)`, EXIT.unreachable);
  return undefined;
}
