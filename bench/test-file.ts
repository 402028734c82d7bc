// Benchmark test files: seeded random data (never zeros, so no sparse read can flatter anyone)
// with each region stamped with its index, so no two regions are alike and a reader can check order.

import { open, type FileHandle } from 'node:fs/promises';
import { MiB } from './benchmark';
import { mulberry32, randomBuffer } from './random';

const writeChunkBytes = 16 * MiB;

export interface TestFile {
  readonly path: string;
  readonly fileBytes: number;
  readonly regionBytes: number;
  readonly regionCount: number;
}

/** Writes the region index into the first 8 bytes of each region. */
function stampRegionIndexes(chunk: Buffer, firstRegionIndex: number, regionBytes: number): void {
  for (let offset = 0; offset < chunk.length; offset += regionBytes) {
    chunk.writeBigUInt64LE(BigInt(firstRegionIndex + offset / regionBytes), offset);
  }
}

/** The index stamped at the start of a region's data. */
export function regionStamp(data: Uint8Array): number {
  return Number(new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true));
}

async function writeAll(handle: FileHandle, data: Uint8Array, positionBytes: number): Promise<void> {
  let doneBytes = 0;
  while (doneBytes < data.length) {
    const { bytesWritten } = await handle.write(data, doneBytes, data.length - doneBytes, positionBytes + doneBytes);
    doneBytes += bytesWritten;
  }
}

/** One seeded 16 MiB random chunk, written over and over with each region stamped. */
export async function writeTestFile(path: string, fileBytes: number, regionBytes: number, seed: number): Promise<TestFile> {
  if (writeChunkBytes % regionBytes !== 0 || fileBytes % regionBytes !== 0) {
    throw new Error(`test file of ${fileBytes} bytes does not split into whole regions of ${regionBytes} bytes`);
  }
  const chunk = randomBuffer(mulberry32(seed), writeChunkBytes);
  const handle = await open(path, 'w');
  try {
    for (let positionBytes = 0; positionBytes < fileBytes; positionBytes += chunk.length) {
      stampRegionIndexes(chunk, positionBytes / regionBytes, regionBytes);
      await writeAll(handle, chunk.subarray(0, Math.min(chunk.length, fileBytes - positionBytes)), positionBytes);
    }
  } finally {
    await handle.close();
  }
  return { path, fileBytes, regionBytes, regionCount: fileBytes / regionBytes };
}
