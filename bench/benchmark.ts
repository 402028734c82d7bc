// What a benchmark is to the runner: a name, a one-line description, and a run that records figures.

import type { Figure } from './report';

export interface BenchContext {
  /** Multiplier on every data size (`--size`), 1 by default. */
  readonly sizeFactor: number;
  /** Seed of all randomness in this run (`--seed`); printed so a run can be repeated. */
  readonly seed: number;
  /** Progress and setup notes, one line each. */
  log(message: string): void;
  /** Prints the figure's BENCH line at once and keeps it for latest.json. */
  record(figure: Figure): void;
}

export interface Benchmark {
  readonly name: string;
  readonly description: string;
  run(context: BenchContext): Promise<void>;
}

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** `base × sizeFactor`, rounded to a whole multiple of `unit` and at least one unit. */
export function scaledCount(base: number, sizeFactor: number, unit = 1): number {
  return Math.max(unit, Math.round((base * sizeFactor) / unit) * unit);
}
