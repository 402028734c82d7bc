import { describe, expect, it } from 'vitest';
import { ProgressMeter, formatDurationMs } from '../../src-engine/progress';

describe('ProgressMeter', () => {
  it('computes rate and ETA from an injected clock', () => {
    let nowMs = 0;
    const meter = new ProgressMeter(1000, () => nowMs);
    expect(meter.snapshot().etaMs).toBeUndefined();
    nowMs = 1000;
    const s = meter.update(100);
    expect(s.ratePerSecond).toBe(100);
    expect(s.etaMs).toBe(9000);
    nowMs = 2000;
    expect(meter.update(1000).etaMs).toBe(0);
  });

  it('refuses progress that goes backwards', () => {
    const meter = new ProgressMeter(10, () => 0);
    meter.update(5);
    expect(() => meter.update(4)).toThrow(/backwards/);
  });

  it('formats durations', () => {
    expect(formatDurationMs(7000)).toBe('7s');
    expect(formatDurationMs(245_000)).toBe('4:05');
    expect(formatDurationMs(3_723_000)).toBe('1:02:03');
  });
});
