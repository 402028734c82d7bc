// Progress of export, verify and import: bytes of a phase done of its total, with the rate and
// ETA of a ProgressMeter, reported at most 4 times a second (and always at a phase's end).

import { ProgressMeter } from '../progress';

export type ImagePhase = 'export' | 'verify' | 'check' | 'import' | 'finish';

export interface ImageProgress {
  readonly phase: ImagePhase;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly bytesPerSecond: number;
  readonly etaMs: number | undefined;
}

const reportIntervalMs = 250;

export class PhaseProgress {
  private readonly meter: ProgressMeter;
  private bytesDone = 0;
  private lastReportMs = -Infinity;

  constructor(
    readonly phase: ImagePhase,
    readonly bytesTotal: number,
    private readonly onProgress: ((progress: ImageProgress) => void) | undefined,
  ) {
    this.meter = new ProgressMeter(bytesTotal);
  }

  get done(): number {
    return this.bytesDone;
  }

  add(bytes: number): void {
    this.bytesDone = Math.min(this.bytesTotal, this.bytesDone + bytes);
    const nowMs = performance.now();
    if (nowMs - this.lastReportMs < reportIntervalMs && this.bytesDone < this.bytesTotal) return;
    this.lastReportMs = nowMs;
    this.report();
  }

  /** Reports the phase as it stands (at its end: done). */
  report(): void {
    const snapshot = this.meter.update(this.bytesDone);
    this.onProgress?.({
      phase: this.phase,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      bytesPerSecond: snapshot.ratePerSecond,
      etaMs: snapshot.etaMs,
    });
  }
}
