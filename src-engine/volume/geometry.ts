// Region geometry: a volume of sizeBytes split into regions of regionBytes (the last may be short).

import { assertCount, invariantViolated, isPowerOfTwo } from '../assert';
import { regionBytesMax, regionBytesMin, regionCountMax, volumeBytesMax } from '../constants';
import { formatBytes } from '../size';
import { usageError } from '../errors';

export function validateRegionBytes(regionBytes: number): void {
  if (!isPowerOfTwo(regionBytes) || regionBytes < regionBytesMin || regionBytes > regionBytesMax) {
    throw usageError(
      `invalid region size ${formatBytes(regionBytes)} (${regionBytes} bytes)`,
      `use a power of two from ${formatBytes(regionBytesMin)} to ${formatBytes(regionBytesMax)}, e.g. 1MiB`,
    );
  }
}

export function validateVolumeBytes(sizeBytes: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes > volumeBytesMax) {
    throw usageError(`invalid volume size ${sizeBytes} bytes`, `use a size from 1 byte to ${formatBytes(volumeBytesMax)}`);
  }
}

/** The smallest valid region size that splits `sizeBytes` into at most regionCountMax regions. */
function smallestRegionBytesFor(sizeBytes: number): number {
  let regionBytes = regionBytesMin;
  while (Math.ceil(sizeBytes / regionBytes) > regionCountMax) regionBytes *= 2;
  return regionBytes;
}

/** Refuses a split into more regions than bitmaps can index (see regionCountMax). */
export function validateRegionCount(sizeBytes: number, regionBytes: number): void {
  const regionCount = Math.ceil(sizeBytes / regionBytes);
  if (regionCount > regionCountMax) {
    throw usageError(
      `a volume of ${formatBytes(sizeBytes)} in regions of ${formatBytes(regionBytes)} would have ${regionCount} regions, more than the ${regionCountMax} Tidemark can track`,
      `use a larger --region-size, at least ${formatBytes(smallestRegionBytesFor(sizeBytes)).replace(' ', '')}`,
    );
  }
}

export interface RegionSpan {
  readonly offsetBytes: number;
  readonly bytes: number;
}

export class RegionGeometry {
  readonly sizeBytes: number;
  readonly regionBytes: number;
  readonly regionCount: number;

  constructor(sizeBytes: number, regionBytes: number) {
    validateVolumeBytes(sizeBytes);
    validateRegionBytes(regionBytes);
    validateRegionCount(sizeBytes, regionBytes);
    this.sizeBytes = sizeBytes;
    this.regionBytes = regionBytes;
    this.regionCount = Math.ceil(sizeBytes / regionBytes);
  }

  /** Byte span of region `index`; the last region may be shorter than regionBytes. */
  region(index: number): RegionSpan {
    // Hot paths (every region read and write): messages are built only when a check fails.
    if (!(Number.isInteger(index) && index >= 0 && index < this.regionCount)) invariantViolated(`region ${index} within 0..${this.regionCount - 1}`);
    const offsetBytes = index * this.regionBytes;
    return { offsetBytes, bytes: Math.min(this.regionBytes, this.sizeBytes - offsetBytes) };
  }

  /** Index of the region holding byte `offsetBytes`. */
  regionOf(offsetBytes: number): number {
    assertCount(offsetBytes, 'offsetBytes');
    return Math.floor(offsetBytes / this.regionBytes); // a power of two: exact
  }

  /** First and last region touched by `bytes` (> 0) bytes at `offsetBytes`. */
  regionsOf(offsetBytes: number, bytes: number): { first: number; last: number } {
    if (!(bytes > 0 && offsetBytes + bytes <= this.sizeBytes)) invariantViolated(`span [${offsetBytes}, +${bytes}) within ${this.sizeBytes} bytes`);
    return { first: this.regionOf(offsetBytes), last: this.regionOf(offsetBytes + bytes - 1) };
  }
}
