// Set operations, runs and summaries of region maps against a per-region model (seeded).
import { describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';
import { combineMaps, mapRuns, runsInBytes, summarizeMap, unionOfMaps, type MapRun } from '../../src-engine/maps';
import { seededRandom } from '../helpers/random';

const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261123);

function randomFlags(random: () => number, length: number): boolean[] {
  const density = random();
  return Array.from({ length }, () => random() < density);
}

function toBits(flags: readonly boolean[]): Bitset {
  const bits = new Bitset(flags.length);
  flags.forEach((f, i) => f && bits.set(i));
  return bits;
}

function flagsOf(bits: Bitset): boolean[] {
  return Array.from({ length: bits.bitCount }, (_, i) => bits.get(i));
}

function naiveRuns(flags: readonly boolean[]): MapRun[] {
  const runs: MapRun[] = [];
  flags.forEach((f, i) => {
    if (!f) return;
    const last = runs.at(-1);
    if (last && last[0] + last[1] === i) last[1] += 1;
    else runs.push([i, 1]);
  });
  return runs;
}

describe('map set operations and runs', () => {
  it(`union, intersection and difference equal the per-region model and leave their inputs alone (seed ${seed})`, () => {
    const random = seededRandom(seed);
    for (let round = 0; round < 50; round++) {
      const length = 1 + Math.floor(random() * 300);
      const [a, b] = [randomFlags(random, length), randomFlags(random, length)];
      const [x, y] = [toBits(a), toBits(b)];
      expect(flagsOf(combineMaps('union', x, y))).toEqual(a.map((f, i) => f || b[i]!));
      expect(flagsOf(combineMaps('intersection', x, y))).toEqual(a.map((f, i) => f && b[i]!));
      expect(flagsOf(combineMaps('difference', x, y))).toEqual(a.map((f, i) => f && !b[i]!));
      expect(flagsOf(x)).toEqual(a);
      expect(flagsOf(y)).toEqual(b);
    }
  });

  it('unions several maps (failback ∪ current ∪ next) and refuses maps of different region counts', () => {
    const maps = [toBits([true, false, false, false]), toBits([false, true, false, false]), toBits([false, false, false, true])];
    expect(flagsOf(unionOfMaps(maps))).toEqual([true, true, false, true]);
    expect(flagsOf(maps[0]!)).toEqual([true, false, false, false]);
    expect(() => combineMaps('union', new Bitset(10), new Bitset(11))).toThrow(
      expect.objectContaining({ code: 'SIZE_MISMATCH', message: 'cannot take the union of maps of 10 and 11 regions' }),
    );
    expect(() => unionOfMaps([new Bitset(3), new Bitset(3), new Bitset(4)])).toThrow(expect.objectContaining({ code: 'SIZE_MISMATCH' }));
    expect(() => unionOfMaps([])).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });

  it(`runs and summaries equal the model, across word boundaries (seed ${seed})`, () => {
    const random = seededRandom(seed + 1);
    for (let round = 0; round < 50; round++) {
      const flags = randomFlags(random, 1 + Math.floor(random() * 500));
      const bits = toBits(flags);
      const runs = naiveRuns(flags);
      expect(mapRuns(bits)).toEqual(runs);
      expect(mapRuns(bits, 2)).toEqual(runs.slice(0, 2));
      const largest = runs.reduce<MapRun | null>((best, run) => (!best || run[1] > best[1] ? run : best), null);
      expect(summarizeMap(bits, 4096)).toEqual({
        regions: flags.length,
        setCount: flags.filter(Boolean).length,
        bytes: flags.filter(Boolean).length * 4096,
        runCount: runs.length,
        largestRun: largest,
      });
    }
  });

  it('gives runs their byte offsets, the last region cut at the end of the volume', () => {
    const bits = new Bitset(70);
    bits.setRange(0, 2);
    bits.setRange(31, 33);
    bits.set(69);
    const runs = mapRuns(bits);
    expect(runs).toEqual([
      [0, 2],
      [31, 2],
      [69, 1],
    ]);
    expect(runsInBytes(runs, 65536, 69 * 65536 + 512)).toEqual([
      { firstRegion: 0, regionCount: 2, offsetBytes: 0, lengthBytes: 131072 },
      { firstRegion: 31, regionCount: 2, offsetBytes: 31 * 65536, lengthBytes: 131072 },
      { firstRegion: 69, regionCount: 1, offsetBytes: 69 * 65536, lengthBytes: 512 },
    ]);
    expect(runsInBytes([[69, 1]], 65536)[0]!.lengthBytes).toBe(65536);
    expect(summarizeMap(new Bitset(0), 4096)).toEqual({ regions: 0, setCount: 0, bytes: 0, runCount: 0, largestRun: null });
  });
});
