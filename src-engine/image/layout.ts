// Seed image layout (docs/image-format.md): names, limits, and where each stored region lives.
// Pure arithmetic over the manifest's numbers; nothing here touches a file.

import { assert, assertCount } from '../assert';
import { GiB, MiB } from '../constants';

export const manifestName = 'manifest.json';
export const indexName = 'index.bin';
/** Present only while an export is unfinished: its state record and signature log. */
export const exportStateDirName = '.tidemark-export';
export const imageFormat = 'tidemark/image';
export const imageFormatVersion = 1;

/** FAT32 holds files of at most 4 GiB − 1 byte; the default split is the largest whole MiB below it. */
export const fat32FileBytesMax = 4 * GiB - 1;
export const splitBytesDefault = 4095 * MiB;
export const splitBytesMin = 1 * MiB;
/**
 * At most this many data files: the manifest lists each in ~200 bytes and is read whole, at
 * most manifestBytesMax. Names have six digits, so the limit could grow tenfold with the cap.
 */
export const dataFilesMax = 100_000;
export const manifestBytesMax = 64 * MiB;
/** Export and import make their progress durable every this many bytes, and at each data file's end. */
export const commitBytesDefault = 64 * MiB;
/** index.bin's fixed header: magic, version, signature bytes, region count, stored count. */
export const indexHeaderBytes = 32;
export const indexMagic = 'TMIMGIDX';

assert(splitBytesDefault <= fat32FileBytesMax, 'the default split fits FAT32');
assert(dataFilesMax <= 999_999, 'data file numbers fit six digits');
assert(dataFilesMax * 400 <= manifestBytesMax, 'a manifest listing the most files fits its read cap');

const dataFilePattern = /^data-(\d{6})\.bin$/;

export function dataFileName(fileIndex: number): string {
  assert(Number.isInteger(fileIndex) && fileIndex >= 0 && fileIndex <= 999_999, `data file number ${fileIndex} has six digits`);
  return `data-${String(fileIndex).padStart(6, '0')}.bin`;
}

export function isDataFileName(name: string): boolean {
  return dataFilePattern.test(name);
}

/** The numbers that place every stored region; checked against each other before use. */
export interface ImageGeometry {
  readonly sizeBytes: number;
  readonly regionBytes: number;
  readonly regionCount: number;
  readonly regionsPerFile: number;
  readonly storedRegions: number;
  /** The volume's last region is stored (it may be short, and then ends the last file early). */
  readonly lastRegionStored: boolean;
}

export function regionsPerFileFor(splitBytes: number, regionBytes: number): number {
  return Math.floor(splitBytes / regionBytes);
}

/** Bytes of region `regionIndex`: regionBytes, except perhaps the volume's last. */
export function regionBytesOf(g: Pick<ImageGeometry, 'sizeBytes' | 'regionBytes' | 'regionCount'>, regionIndex: number): number {
  assert(Number.isInteger(regionIndex) && regionIndex >= 0 && regionIndex < g.regionCount, `region ${regionIndex} within 0..${g.regionCount - 1}`);
  return Math.min(g.regionBytes, g.sizeBytes - regionIndex * g.regionBytes);
}

export function dataFileCount(g: Pick<ImageGeometry, 'storedRegions' | 'regionsPerFile'>): number {
  return Math.ceil(g.storedRegions / g.regionsPerFile);
}

export function regionsInFile(g: Pick<ImageGeometry, 'storedRegions' | 'regionsPerFile'>, fileIndex: number): number {
  assert(fileIndex >= 0 && fileIndex < dataFileCount(g), `data file ${fileIndex} exists`);
  return Math.min(g.regionsPerFile, g.storedRegions - fileIndex * g.regionsPerFile);
}

/** How much shorter than regionBytes the volume's last region is. */
export function shortfallBytes(g: Pick<ImageGeometry, 'sizeBytes' | 'regionBytes' | 'regionCount'>): number {
  return g.regionBytes - regionBytesOf(g, g.regionCount - 1);
}

/** Exact length of data file `fileIndex`. */
export function dataFileBytes(g: ImageGeometry, fileIndex: number): number {
  const full = regionsInFile(g, fileIndex) * g.regionBytes;
  const isLast = fileIndex === dataFileCount(g) - 1;
  return isLast && g.lastRegionStored ? full - shortfallBytes(g) : full;
}

/** Where the stored region of ordinal `ordinal` (its rank among stored regions) is. */
export function placeOf(
  g: Pick<ImageGeometry, 'regionBytes' | 'regionsPerFile' | 'storedRegions'>,
  ordinal: number,
): { fileIndex: number; offsetBytes: number } {
  assert(Number.isInteger(ordinal) && ordinal >= 0 && ordinal < g.storedRegions, `ordinal ${ordinal} within 0..${g.storedRegions - 1}`);
  return { fileIndex: Math.floor(ordinal / g.regionsPerFile), offsetBytes: (ordinal % g.regionsPerFile) * g.regionBytes };
}

export function indexBitmapBytes(regionCount: number): number {
  assertCount(regionCount, 'regionCount');
  return 4 * Math.ceil(regionCount / 32);
}

/** Exact length of index.bin. */
export function indexFileBytes(regionCount: number, storedRegions: number, signatureBytes: number): number {
  return indexHeaderBytes + indexBitmapBytes(regionCount) + storedRegions * signatureBytes;
}
