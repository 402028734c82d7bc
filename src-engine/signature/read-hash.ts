// Reads spans of files and hashes each one: the loop a signature worker runs, also usable
// on the calling thread. Synchronous I/O is deliberate: it runs on a worker thread.

import { closeSync, openSync, readSync } from 'node:fs';
import { signatureBytes, type HashAlgorithm, type RegionHasher } from './algorithms';

/** Where one region's bytes live: a file (volume, snapshot store) and a byte span in it. */
export interface RegionLocation {
  readonly path: string;
  readonly offsetBytes: number;
  readonly bytes: number;
}

/** Keeps one read-only descriptor per path, for one sign() call (closeAll at its end). */
export class DescriptorCache {
  private readonly descriptors = new Map<string, number>();

  get(path: string): number {
    let fd = this.descriptors.get(path);
    if (fd === undefined) {
      fd = openSync(path, 'r');
      this.descriptors.set(path, fd);
    }
    return fd;
  }

  closeAll(): void {
    for (const fd of this.descriptors.values()) closeSync(fd);
    this.descriptors.clear();
  }
}

/**
 * Hashes each location, reading it in chunks of chunk.length bytes (bounded memory whatever
 * the region size); bytes past the end of a file hash as zeros, as volumes read them.
 */
export function hashLocations(
  algorithm: HashAlgorithm,
  hasher: RegionHasher,
  descriptors: DescriptorCache,
  locations: readonly RegionLocation[],
  chunk: Uint8Array,
): Uint8Array {
  const sigBytes = signatureBytes(algorithm);
  const signatures = new Uint8Array(locations.length * sigBytes);
  for (let i = 0; i < locations.length; i++) {
    const location = locations[i]!;
    const fd = descriptors.get(location.path);
    hasher.begin();
    let done = 0;
    while (done < location.bytes) {
      const want = Math.min(chunk.length, location.bytes - done);
      let got = 0;
      while (got < want) {
        const n = readSync(fd, chunk, got, want - got, location.offsetBytes + done + got);
        if (n === 0) break;
        got += n;
      }
      if (got < want) chunk.fill(0, got, want);
      hasher.update(want === chunk.length ? chunk : chunk.subarray(0, want));
      done += want;
    }
    hasher.end(signatures, i * sigBytes);
  }
  return signatures;
}
