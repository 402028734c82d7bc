// Region maps as support staff read them: set operations between maps of one pair (Bitset's
// own word loops), runs of set regions with their byte offsets, and a one-glance summary.

import type { Bitset } from '../bitmap';
import { TidemarkError } from '../errors';

export const mapSetOperations = ['union', 'intersection', 'difference'] as const;
export type MapSetOperation = (typeof mapSetOperations)[number];

/** A run of set regions: [first region, region count], as `map --json` lists them. */
export type MapRun = [first: number, count: number];

export interface MapRunBytes {
  readonly firstRegion: number;
  readonly regionCount: number;
  /** firstRegion × regionBytes. */
  readonly offsetBytes: number;
  /** Up to the end of the volume when its size is given (the last region may be short). */
  readonly lengthBytes: number;
}

export interface MapSummary {
  readonly regions: number;
  readonly setCount: number;
  /** setCount × regionBytes (as `map --json` reports). */
  readonly bytes: number;
  readonly runCount: number;
  /** The longest run (the first of equal ones), null when nothing is set. */
  readonly largestRun: MapRun | null;
}

function requireSameRegionCount(operation: string, maps: readonly Bitset[]): void {
  const counts = new Set(maps.map((m) => m.bitCount));
  if (counts.size > 1)
    throw new TidemarkError(
      'SIZE_MISMATCH',
      `cannot take the ${operation} of maps of ${[...counts].join(' and ')} regions`,
      'combine maps of one pair (or of volumes with the same region count)',
    );
}

/** A new map: a ∪ b, a ∩ b or a \ b. SIZE_MISMATCH when their region counts differ. */
export function combineMaps(operation: MapSetOperation, a: Bitset, b: Bitset): Bitset {
  requireSameRegionCount(operation, [a, b]);
  const result = a.clone();
  if (operation === 'union') return result.unionWith(b);
  if (operation === 'intersection') return result.intersectWith(b);
  return result.subtract(b);
}

/** A new map: the union of one or more maps (a resync map is failback ∪ current ∪ next). */
export function unionOfMaps(maps: readonly Bitset[]): Bitset {
  if (maps.length === 0) throw new TidemarkError('USAGE', 'the union of no maps', 'name at least one map');
  requireSameRegionCount('union', maps);
  return maps.slice(1).reduce((result, map) => result.unionWith(map), maps[0]!.clone());
}

/** Maximal runs of set regions, in order; at most `runsMax` of them. */
export function mapRuns(bits: Bitset, runsMax = Infinity): MapRun[] {
  const runs: MapRun[] = [];
  for (const { start, end } of bits.runs()) {
    if (runs.length >= runsMax) break;
    runs.push([start, end - start]);
  }
  return runs;
}

/** Runs with their byte ranges in the volume: offset = region × regionBytes. */
export function runsInBytes(runs: readonly MapRun[], regionBytes: number, volumeBytes = Infinity): MapRunBytes[] {
  return runs.map(([first, count]) => {
    const offsetBytes = first * regionBytes;
    const endBytes = Math.min((first + count) * regionBytes, volumeBytes);
    return { firstRegion: first, regionCount: count, offsetBytes, lengthBytes: endBytes - offsetBytes };
  });
}

/** Counts, bytes, runs and the largest run, in one pass over the runs. */
export function summarizeMap(bits: Bitset, regionBytes: number): MapSummary {
  let setCount = 0;
  let runCount = 0;
  let largestRun: MapRun | null = null;
  for (const { start, end } of bits.runs()) {
    setCount += end - start;
    runCount += 1;
    if (!largestRun || end - start > largestRun[1]) largestRun = [start, end - start];
  }
  return { regions: bits.bitCount, setCount, bytes: setCount * regionBytes, runCount, largestRun };
}
