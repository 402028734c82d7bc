// The benchmarks' statistics: the paired ratio compares each round's two runs, so a host that
// slows down between rounds moves both sides of a pair, not the ratio.
import { describe, expect, it } from 'vitest';
import { pairedRatio, percentile } from '../../bench/timing';

describe('pairedRatio', () => {
  it('is the median of peer time / our time per round, whatever the host speed in each round', () => {
    // Rounds at 1×, 3× and 2× host speed; ours takes 1.25× the peer's time in every one.
    expect(pairedRatio([125, 375, 250], [100, 300, 200])).toBeCloseTo(0.8, 12);
    // Best-of for each side alone would say the same here, but not when the quiet moment fell to one side:
    expect(pairedRatio([300, 120, 300], [100, 300, 250])).toBeCloseTo(0.8333, 3); // ratios 0.33, 2.5, 0.83 → median 0.83
  });

  it('sorts ratios as numbers, not as text', () => {
    // Ratios 10, 9 and 0.5: as numbers the median is 9; as strings ('0.5', '10', '9') it would be 10.
    expect(pairedRatio([1, 1, 2], [10, 9, 1])).toBe(9);
  });

  it('averages the two middle ratios of an even count, and refuses unpaired samples', () => {
    expect(pairedRatio([100, 100, 100, 100], [50, 70, 90, 200])).toBeCloseTo(0.8, 12);
    expect(() => pairedRatio([100], [100, 100])).toThrow(/paired samples: 1 against 2/);
    expect(() => pairedRatio([], [])).toThrow(/paired samples/);
  });

  it('percentile 50 is the nearest-rank median', () => {
    expect(percentile([5, 1, 3], 50)).toBe(3);
  });
});
