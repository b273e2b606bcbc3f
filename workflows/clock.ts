/**
 * The workflow's clock. Inside the workflow sandbox `Date` is the SDK's deterministic one: the
 * time of the current workflow task, the same on every replay. One place, so no step reaches for
 * a clock of its own.
 */
export const epochMs = (): number => new Date().getTime();
export const now = (): string => new Date().toISOString();
