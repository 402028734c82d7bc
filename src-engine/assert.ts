// Invariant assertions: a failure is a bug in Tidemark, never a user error, and stops the job.

import { TidemarkError } from './errors';

export function assert(condition: unknown, what: string): asserts condition {
  if (!condition) invariantViolated(what);
}

/**
 * Throws the invariant error. Hot paths write `if (!ok) invariantViolated(`…`)` so the
 * message is only built when the check fails (a template literal per call showed up as
 * a 4× slowdown of the bit scans).
 */
export function invariantViolated(what: string): never {
  throw new TidemarkError('INVARIANT', `internal invariant violated: ${what}`, 'this is a bug in Tidemark; please report it with TIDEMARK_DEBUG=1 output');
}

/** Asserts `value` is a safe, non-negative integer (offsets, counts, indexes). */
export function assertCount(value: number, what: string): void {
  // Hot path (region arithmetic of every I/O): the message is built only when the check fails.
  if (!(Number.isSafeInteger(value) && value >= 0)) invariantViolated(`${what} must be a non-negative safe integer, got ${value}`);
}

export function isPowerOfTwo(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0 && 2 ** Math.round(Math.log2(value)) === value;
}
