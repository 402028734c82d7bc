// Region geometry: a volume of sizeBytes split into regions of regionBytes (the last may be short).

import { assert, assertCount, isPowerOfTwo } from '../assert';
import { regionBytesMax, regionBytesMin, volumeBytesMax } from '../constants';
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

export interface RegionSpan {
  readonly offsetBytes: number;
  readonly bytes: number;
}

export class RegionGeometry {
  readonly sizeBytes: number;
  readonly regionBytes: number;
  readonly regionCount: number;
  private readonly regionShift: number;

  constructor(sizeBytes: number, regionBytes: number) {
    validateVolumeBytes(sizeBytes);
    validateRegionBytes(regionBytes);
    this.sizeBytes = sizeBytes;
    this.regionBytes = regionBytes;
    this.regionCount = Math.ceil(sizeBytes / regionBytes);
    this.regionShift = Math.log2(regionBytes);
  }

  /** Byte span of region `index`; the last region may be shorter than regionBytes. */
  region(index: number): RegionSpan {
    assert(Number.isInteger(index) && index >= 0 && index < this.regionCount, `region ${index} within 0..${this.regionCount - 1}`);
    const offsetBytes = index * this.regionBytes;
    return { offsetBytes, bytes: Math.min(this.regionBytes, this.sizeBytes - offsetBytes) };
  }

  /** Index of the region holding byte `offsetBytes`. */
  regionOf(offsetBytes: number): number {
    assertCount(offsetBytes, 'offsetBytes');
    return Math.floor(offsetBytes / 2 ** this.regionShift);
  }

  /** First and last region touched by `bytes` (> 0) bytes at `offsetBytes`. */
  regionsOf(offsetBytes: number, bytes: number): { first: number; last: number } {
    assert(bytes > 0 && offsetBytes + bytes <= this.sizeBytes, `span [${offsetBytes}, +${bytes}) within ${this.sizeBytes} bytes`);
    return { first: this.regionOf(offsetBytes), last: this.regionOf(offsetBytes + bytes - 1) };
  }
}
