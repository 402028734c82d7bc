// Progress of long work, one model for CLI and console: units done of a total, with a rate
// smoothed over a sliding window and an ETA derived from it.

import { assert } from './assert';

export interface ProgressSnapshot {
  readonly done: number;
  readonly total: number;
  /** Units per second over the recent window; 0 until two samples exist. */
  readonly ratePerSecond: number;
  /** Milliseconds to completion at the current rate; undefined while unknown. */
  readonly etaMs: number | undefined;
  readonly elapsedMs: number;
}

export class ProgressMeter {
  private readonly samples: { atMs: number; done: number }[] = [];
  private done = 0;
  private readonly startedAtMs: number;

  constructor(
    readonly total: number,
    private readonly nowMs: () => number = () => performance.now(),
    private readonly windowMs = 5000,
  ) {
    assert(total >= 0, 'progress total is non-negative');
    this.startedAtMs = nowMs();
    this.samples.push({ atMs: this.startedAtMs, done: 0 });
  }

  update(done: number): ProgressSnapshot {
    assert(done >= this.done, `progress never goes backwards (${done} < ${this.done})`);
    this.done = done;
    const atMs = this.nowMs();
    this.samples.push({ atMs, done });
    while (this.samples.length > 2 && atMs - this.samples[0]!.atMs > this.windowMs) this.samples.shift();
    return this.snapshot();
  }

  snapshot(): ProgressSnapshot {
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    const spanMs = last.atMs - first.atMs;
    const ratePerSecond = spanMs > 0 ? ((last.done - first.done) * 1000) / spanMs : 0;
    const remaining = this.total - this.done;
    const etaMs = remaining === 0 ? 0 : ratePerSecond > 0 ? (remaining * 1000) / ratePerSecond : undefined;
    return { done: this.done, total: this.total, ratePerSecond, etaMs, elapsedMs: last.atMs - this.startedAtMs };
  }
}

/** `1:02:03`, `4:05` or `7s`. */
export function formatDurationMs(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
  if (m > 0) return `${m}:${String(s).padStart(2, '0')}`;
  return `${s}s`;
}
