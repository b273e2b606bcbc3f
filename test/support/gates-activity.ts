import type { Info } from '@temporalio/activity';
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mockInfo } from './policy.ts';

export interface LogEntry {
  level: LogLevel;
  message: string;
  meta?: LogMetadata;
}

/**
 * A MockActivityEnvironment whose activity logger records entries instead of printing them: the
 * gate tests fail gates on purpose (noise otherwise), and the notify tests read what was logged
 * to check that failures are logged and that no secret is.
 */
export function activityEnv(info?: Partial<Info>): { env: MockActivityEnvironment; logs: LogEntry[] } {
  const logs: LogEntry[] = [];
  const at =
    (level: LogLevel) =>
    (message: string, meta?: LogMetadata): void => {
      logs.push({ level, message, ...(meta ? { meta } : {}) });
    };
  const logger: Logger = {
    log: (level, message, meta) => at(level)(message, meta),
    trace: at('TRACE'),
    debug: at('DEBUG'),
    info: at('INFO'),
    warn: at('WARN'),
    error: at('ERROR'),
  };
  return { env: new MockActivityEnvironment(mockInfo(info), { logger }), logs };
}

/** Awaits a promise that must reject, and returns the rejection for closer inspection. */
export async function rejection(p: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  const outcome = await p.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error(`expected a failure, got ${JSON.stringify(outcome.value)}`);
  return outcome.err as Error & Record<string, unknown>;
}
