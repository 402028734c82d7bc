// A Volume as an NBD export: every write goes through volume.write, so through the volume's
// write hooks (tracking, snapshots); allocation and dirty maps come from region bitsets.

import { assert, invariantViolated } from '../assert';
import { type Bitset } from '../bitmap';
import { ioBytesMax } from '../constants';
import { TidemarkError } from '../errors';
import { type Volume, type WriteAuth } from '../volume';
import type { NbdExport, NbdExtent, NbdMetaContextSource } from './export';
import { nbdExtentsPerReplyMax, nbdZeroChunkBytes, stateDirty, stateHole, stateZero } from './protocol';

export interface VolumeNbdExportOptions {
  readonly name: string;
  readonly description?: string;
  readonly readOnly: boolean;
  /** Realized regions; an unrealized region reads as zeros and is reported HOLE|ZERO. Without it, everything is data. */
  readonly allocated?: () => Bitset;
  /** A region-granular dirty map served as the metadata context `name` (flags 1 = dirty). */
  readonly dirty?: { readonly name: string; readonly bits: () => Bitset };
  /** Carried on every write, for a volume locked to a pair. */
  readonly writeAuth?: WriteAuth;
}

/** One zero buffer for every WRITE_ZEROES: never written to, only read by pwrite. */
let zeroChunk: Uint8Array | undefined;
function zeros(): Uint8Array {
  zeroChunk ??= new Uint8Array(nbdZeroChunkBytes);
  return zeroChunk;
}

/**
 * Region-granular extents of `bits` over [offsetBytes, offsetBytes + bytes): maximal runs of
 * regions in one state, the first and last clipped to the span. At most nbdExtentsPerReplyMax
 * extents; the client asks again for what follows.
 */
export function regionExtents(bits: Bitset, volume: Volume, offsetBytes: number, bytes: number, setFlags: number, clearFlags: number): NbdExtent[] {
  if (bits.bitCount !== volume.regionCount) invariantViolated(`bitset of ${bits.bitCount} bits describes ${volume.regionCount} regions`);
  if (!(bytes > 0 && offsetBytes + bytes <= volume.sizeBytes)) invariantViolated(`extents of [${offsetBytes}, +${bytes}) within the volume`);
  const regionBytes = volume.regionBytes;
  const endBytes = offsetBytes + bytes;
  const endRegion = volume.geometry.regionOf(endBytes - 1) + 1;
  const extents: NbdExtent[] = [];
  let region = volume.geometry.regionOf(offsetBytes);
  let atBytes = offsetBytes;
  while (region < endRegion && extents.length < nbdExtentsPerReplyMax) {
    const set = bits.get(region);
    const next = set ? bits.nextClearBit(region, endRegion) : bits.nextSetBit(region, endRegion);
    const runEndRegion = next === -1 ? endRegion : next;
    const runEndBytes = Math.min(endBytes, runEndRegion * regionBytes);
    extents.push({ lengthBytes: runEndBytes - atBytes, flags: set ? setFlags : clearFlags });
    atBytes = runEndBytes;
    region = runEndRegion;
  }
  assert(extents.length > 0 && atBytes <= endBytes, 'extents cover a non-empty prefix of the span');
  return extents;
}

function refuseReadOnly(options: VolumeNbdExportOptions, volume: Volume): never {
  throw new TidemarkError('PERMISSION', `NBD export ${options.name} of ${volume.path} is read-only`, 'export it writable to accept writes');
}

export function volumeNbdExport(volume: Volume, options: VolumeNbdExportOptions): NbdExport {
  const { readOnly, writeAuth } = options;

  const writeInPieces = async (offsetBytes: number, data: Uint8Array, fua: boolean): Promise<void> => {
    if (readOnly) refuseReadOnly(options, volume);
    for (let done = 0; done < data.length; done += ioBytesMax) {
      await volume.write(offsetBytes + done, data.subarray(done, Math.min(data.length, done + ioBytesMax)), writeAuth);
    }
    if (fua) await volume.flush();
  };
  // Hot path (every WRITE): one volume write, no async frame of its own.
  const write = (offsetBytes: number, data: Uint8Array, fua: boolean): Promise<void> =>
    !readOnly && !fua && data.length <= ioBytesMax ? volume.write(offsetBytes, data, writeAuth) : writeInPieces(offsetBytes, data, fua);

  const metaContexts: NbdMetaContextSource[] = [];
  const dirty = options.dirty;
  if (dirty) {
    metaContexts.push({
      name: dirty.name,
      extents: async (offsetBytes, bytes) => regionExtents(dirty.bits(), volume, offsetBytes, bytes, stateDirty, 0),
    });
  }

  return {
    name: options.name,
    ...(options.description === undefined ? {} : { description: options.description }),
    sizeBytes: volume.sizeBytes,
    readOnly,
    minBlockBytes: 1,
    preferredBlockBytes: 4096,
    metaContexts,

    async read(offsetBytes, bytes) {
      if (bytes <= ioBytesMax) return volume.read(offsetBytes, bytes);
      const buffer = Buffer.allocUnsafe(bytes);
      for (let done = 0; done < bytes; done += ioBytesMax) {
        await volume.readInto(buffer.subarray(done, Math.min(bytes, done + ioBytesMax)), offsetBytes + done);
      }
      return buffer;
    },

    // One volume write, the common case: done before it returns when nothing waits (writeNow).
    write: (offsetBytes, data, { fua }) =>
      readOnly || fua || data.length > ioBytesMax ? write(offsetBytes, data, fua) : volume.writeNow(offsetBytes, data, writeAuth),

    flush: () => volume.flush(),

    // Advisory, and deliberately a no-op: punching a hole here would change bytes without a
    // write through the hooks, so tracking would miss it and the secondary would keep the old
    // data. The spec lets reads after a trim return the old bytes, so keeping them is correct.
    async trim() {
      if (readOnly) refuseReadOnly(options, volume);
    },

    // Zeros are written as data (tracked like any write); mayTrim is not used for the same
    // reason trim is a no-op.
    async writeZeroes(offsetBytes, bytes, { fua }) {
      if (readOnly) refuseReadOnly(options, volume);
      const chunk = zeros();
      for (let done = 0; done < bytes; done += chunk.length) {
        await volume.write(offsetBytes + done, chunk.subarray(0, Math.min(chunk.length, bytes - done)), writeAuth);
      }
      if (fua) await volume.flush();
    },

    async allocation(offsetBytes, bytes) {
      if (!options.allocated) return [{ lengthBytes: bytes, flags: 0 }];
      return regionExtents(options.allocated(), volume, offsetBytes, bytes, 0, stateHole | stateZero);
    },
  };
}
