// Reading an image's data files: stored regions in order, each file opened without following
// links and checked to be exactly the length the layout gives it, a few regions read ahead.

import { join } from 'node:path';
import { assert } from '../assert';
import { popcount32, type Bitset } from '../bitmap';
import { MiB } from '../constants';
import { TidemarkError } from '../errors';
import { dataFileBytes, dataFileName, placeOf, regionBytesOf, type ImageGeometry } from './layout';
import { openRegular, readExactly, type OpenedFile } from './media';

const readAheadBytes = 16 * MiB;
const readAheadRegionsMax = 8;

export interface StoredRegion {
  readonly ordinal: number;
  /** -1 when read without index.bin's bitmap. */
  readonly regionIndex: number;
  readonly fileIndex: number;
  /** Where the region starts in its data file. */
  readonly offsetBytes: number;
  readonly data: Uint8Array;
}

/** A data file whose length is not the one the layout gives it. */
export class WrongFileLength extends Error {
  constructor(
    readonly fileName: string,
    readonly actualBytes: number,
    readonly expectedBytes: number,
  ) {
    super(`${fileName} is ${actualBytes} bytes, the layout gives it ${expectedBytes}`);
  }
}

/** Index of the `ordinal`-th set bit (0-based), or -1: whole words counted, then bits. */
export function nthSetBit(bits: Bitset, ordinal: number): number {
  assert(Number.isInteger(ordinal) && ordinal >= 0, 'ordinal is a non-negative integer');
  let remaining = ordinal;
  for (let w = 0; w < bits.words.length; w++) {
    const count = popcount32(bits.words[w]!);
    if (remaining >= count) {
      remaining -= count;
      continue;
    }
    for (let r = w * 32; ; r = bits.nextSetBit(r + 1)) if (bits.get(r) && remaining-- === 0) return r;
  }
  return -1;
}

/** Opens data file `fileIndex` and checks its exact length. */
export async function openDataFile(dir: string, layout: ImageGeometry, fileIndex: number): Promise<OpenedFile> {
  const name = dataFileName(fileIndex);
  const opened = await openRegular(join(dir, name));
  const expectedBytes = dataFileBytes(layout, fileIndex);
  if (opened.sizeBytes !== expectedBytes) {
    await opened.handle.close();
    throw new WrongFileLength(name, opened.sizeBytes, expectedBytes);
  }
  return opened;
}

/**
 * Reads stored regions of ordinals [firstOrdinal, endOrdinal) in order; with `stored` (index.bin's
 * bitmap) each comes with its region index. A file that cannot be opened as a regular file of its
 * exact length fails with NotRegularFile or WrongFileLength.
 */
export async function* readStoredRegions(
  dir: string,
  layout: ImageGeometry,
  firstOrdinal: number,
  endOrdinal: number,
  options: { readonly stored?: Bitset; readonly signal?: AbortSignal } = {},
): AsyncGenerator<StoredRegion> {
  assert(0 <= firstOrdinal && firstOrdinal <= endOrdinal && endOrdinal <= layout.storedRegions, 'ordinals within the stored regions');
  if (firstOrdinal === endOrdinal) return;
  const { stored } = options;
  let regionIndex = stored ? nthSetBit(stored, firstOrdinal) : -1;
  for (let ordinal = firstOrdinal; ordinal < endOrdinal;) {
    const fileIndex = placeOf(layout, ordinal).fileIndex;
    const fileEnd = Math.min(endOrdinal, (fileIndex + 1) * layout.regionsPerFile);
    const regions: number[] = [];
    for (let o = ordinal; o < fileEnd; o++) {
      regions.push(regionIndex);
      if (stored) regionIndex = stored.nextSetBit(regionIndex + 1);
    }
    const opened = await openDataFile(dir, layout, fileIndex);
    try {
      yield* readFileRegions(dir, layout, opened, fileIndex, ordinal, regions, options.signal);
    } finally {
      await opened.handle.close();
    }
    ordinal = fileEnd;
  }
}

/** The regions of one open data file, reading ahead up to readAheadBytes. */
async function* readFileRegions(
  dir: string,
  layout: ImageGeometry,
  opened: OpenedFile,
  fileIndex: number,
  firstOrdinal: number,
  regions: readonly number[],
  signal: AbortSignal | undefined,
): AsyncGenerator<StoredRegion> {
  const path = join(dir, dataFileName(fileIndex));
  const fileBytes = dataFileBytes(layout, fileIndex);
  const aheadMax = Math.max(1, Math.min(readAheadRegionsMax, Math.floor(readAheadBytes / layout.regionBytes)));
  const ahead: { region: Omit<StoredRegion, 'data'>; data: Promise<Uint8Array> }[] = [];
  let next = 0;
  while (next < regions.length || ahead.length > 0) {
    if (signal?.aborted) throw new TidemarkError('CANCELLED', `reading ${path} cancelled`, '');
    while (next < regions.length && ahead.length < aheadMax) {
      const ordinal = firstOrdinal + next;
      const regionIndex = regions[next++]!;
      const { offsetBytes } = placeOf(layout, ordinal);
      // Every region is whole but the volume's last, which ends the last file.
      const data = new Uint8Array(Math.min(layout.regionBytes, fileBytes - offsetBytes));
      assert(regionIndex < 0 || data.length === regionBytesOf(layout, regionIndex), `region ${regionIndex} has its length in ${path}`);
      const read = readExactly(opened.handle, data, offsetBytes, path).then(() => data);
      read.catch(() => undefined); // awaited in order below
      ahead.push({ region: { ordinal, regionIndex, fileIndex, offsetBytes }, data: read });
    }
    const head = ahead.shift()!;
    yield { ...head.region, data: await head.data };
  }
}
