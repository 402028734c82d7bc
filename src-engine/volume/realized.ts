// Realization map (seed 001): which regions were ever written. Tracked durably for volumes
// Tidemark writes; computed by scanning for non-zero content otherwise.

import { Bitset, type PersistentBitmap } from '../bitmap';
import { TidemarkError } from '../errors';
import { zeroScanChunkBytes } from '../constants';
import type { Volume, WriteHook } from './volume';

/**
 * A write hook that marks regions realized and makes the mark durable before the write
 * lands, so the map is always a superset of the regions holding data. Bits only go from
 * clear to set (a reclaim clears them explicitly), so steady-state writes cost nothing.
 */
export class RealizedTracker implements WriteHook {
  readonly name = 'realized';

  /** `volume`: the volume this tracker is a hook of (writable volumes), told by `markWritten` of the writes to come. */
  constructor(
    readonly bitmap: PersistentBitmap,
    private readonly volume?: Volume,
  ) {}

  beforeWrite(firstRegion: number, lastRegion: number): Promise<void> | undefined {
    if (this.bitmap.rangeSetDurably(firstRegion, lastRegion + 1)) return undefined;
    return this.bitmap.setRangeDurable(firstRegion, lastRegion + 1);
  }

  /**
   * Marks regions realized ahead of their writes, one durable destage for all of them (a
   * superset is safe: a region marked and never written only costs a comparison later). The
   * volume's other hooks prepare for those writes too (`Volume.prepareWrites`): a
   * copy-on-write snapshot copies the regions aside with one sync for the batch instead of
   * one per region.
   */
  async markWritten(regionIndexes: readonly number[]): Promise<void> {
    if (this.volume) await this.volume.prepareWrites(regionIndexes);
    else await this.prepareWrites(regionIndexes);
  }

  async prepareWrites(regionIndexes: readonly number[]): Promise<void> {
    for (const r of regionIndexes) this.bitmap.set(r);
    await this.bitmap.destage();
  }

  /** Marks regions unrealized after they were reclaimed (zeroed or hole-punched). */
  async markReclaimed(firstRegion: number, lastRegion: number): Promise<void> {
    this.bitmap.clearRange(firstRegion, lastRegion + 1);
    await this.bitmap.destage();
  }

  snapshot(): Bitset {
    return this.bitmap.bits.clone();
  }
}

let zeros = Buffer.alloc(0);

/** True when bytes [from, to) of `buffer` are all zero: one memcmp, no slice allocated. */
function isZero(buffer: Buffer, from = 0, to = buffer.length): boolean {
  if (zeros.length < to - from) zeros = Buffer.alloc(to - from);
  return buffer.compare(zeros, 0, to - from, from, to) === 0;
}

export interface ScanProgress {
  readonly regionsDone: number;
  readonly regionCount: number;
}

export interface ScanOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: ScanProgress) => void;
}

/**
 * Computes the realization map by reading every region: realized = not all zero. Reads go
 * in chunks of zeroScanChunkBytes into one reused buffer: a chunk spans many small regions
 * (one read per 4 KiB region was 12× slower), and a large region is read chunk by chunk
 * until its first non-zero byte.
 */
export async function zeroScanRealized(volume: Volume, options: ScanOptions = {}): Promise<Bitset> {
  const realized = new Bitset(volume.regionCount);
  const regionsPerChunk = Math.max(1, Math.floor(zeroScanChunkBytes / volume.regionBytes));
  const buffer = Buffer.allocUnsafe(Math.min(zeroScanChunkBytes, volume.sizeBytes));
  for (let first = 0; first < volume.regionCount; first += regionsPerChunk) {
    if (options.signal?.aborted) throw new TidemarkError('CANCELLED', `zero scan of ${volume.path} cancelled`, 'run it again to start over');
    const end = Math.min(volume.regionCount, first + regionsPerChunk);
    if (regionsPerChunk > 1) await scanSmallRegions(volume, first, end, buffer, realized);
    else if (await regionHasData(volume, first, buffer)) realized.set(first);
    options.onProgress?.({ regionsDone: end, regionCount: volume.regionCount });
  }
  return realized;
}

/** Reads regions [first, end) in one read and marks each that holds a non-zero byte. */
async function scanSmallRegions(volume: Volume, first: number, end: number, buffer: Buffer, realized: Bitset): Promise<void> {
  const startBytes = volume.geometry.region(first).offsetBytes;
  const last = volume.geometry.region(end - 1);
  const chunk = buffer.subarray(0, last.offsetBytes + last.bytes - startBytes);
  await volume.readInto(chunk, startBytes);
  for (let r = first; r < end; r++) {
    const from = (r - first) * volume.regionBytes;
    if (!isZero(chunk, from, Math.min(chunk.length, from + volume.regionBytes))) realized.set(r);
  }
}

/** Reads one region chunk by chunk, stopping at the first chunk holding a non-zero byte. */
async function regionHasData(volume: Volume, regionIndex: number, buffer: Buffer): Promise<boolean> {
  const span = volume.geometry.region(regionIndex);
  for (let offset = 0; offset < span.bytes; offset += buffer.length) {
    const chunk = buffer.subarray(0, Math.min(buffer.length, span.bytes - offset));
    await volume.readInto(chunk, span.offsetBytes + offset);
    if (!isZero(chunk)) return true;
  }
  return false;
}
