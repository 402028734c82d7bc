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

  constructor(readonly bitmap: PersistentBitmap) {}

  async beforeWrite(firstRegion: number, lastRegion: number): Promise<void> {
    const end = lastRegion + 1;
    if (!this.bitmap.bits.allSet(firstRegion, end)) this.bitmap.setRange(firstRegion, end);
    await this.bitmap.ensureDurable(firstRegion, end);
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

function isZero(buffer: Buffer): boolean {
  // Compare 8 bytes at a time where aligned; Buffer.compare against zeros is memcmp speed.
  return buffer.equals(zeroBuffer(buffer.length));
}

let zeros = Buffer.alloc(0);
function zeroBuffer(bytes: number): Buffer {
  if (zeros.length < bytes) zeros = Buffer.alloc(bytes);
  return zeros.subarray(0, bytes);
}

export interface ScanProgress {
  readonly regionsDone: number;
  readonly regionCount: number;
}

/** Computes the realization map by reading every region: realized = not all zero. */
export async function zeroScanRealized(volume: Volume, options: { signal?: AbortSignal; onProgress?: (progress: ScanProgress) => void } = {}): Promise<Bitset> {
  const realized = new Bitset(volume.regionCount);
  const chunkBytes = Math.min(zeroScanChunkBytes, volume.regionBytes);
  for (let r = 0; r < volume.regionCount; r++) {
    if (options.signal?.aborted) throw new TidemarkError('CANCELLED', `zero scan of ${volume.path} cancelled`, 'run it again to start over');
    const span = volume.geometry.region(r);
    for (let offset = 0; offset < span.bytes; offset += chunkBytes) {
      const data = await volume.read(span.offsetBytes + offset, Math.min(chunkBytes, span.bytes - offset));
      if (!isZero(data)) {
        realized.set(r);
        break;
      }
    }
    options.onProgress?.({ regionsDone: r + 1, regionCount: volume.regionCount });
  }
  return realized;
}
