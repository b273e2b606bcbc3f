/**
 * Where the tests find the real servers: the variables `npm run stack -- up` writes to
 * .stack/env (scripts/test.sh loads it before running the suite). A missing server is a failure
 * that says what is missing and how to get it, never a silent skip.
 */
export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: the tests need the local stack. Run \`npm run stack -- up\` and ` +
        '`source .stack/env` (or `npm test`, which does both), or point it at an existing server.',
    );
  }
  return value;
}

/** A short random suffix so test files can run concurrently without sharing objects. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}
