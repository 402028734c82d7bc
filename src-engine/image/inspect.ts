// Checking an image, shared by `image verify` (every problem listed) and import (the first one
// refused before anything is written): the listing, manifest.json, index.bin, each data file's
// type and length, and the data itself — every region signed and compared with index.bin, every
// file's checksum with the manifest (which still names an altered file when index.bin is bad).

import { join } from 'node:path';
import { assert } from '../assert';
import { formatCount } from '../size';
import { RegionSigner, FileChecksum } from './checksum';
import { readStoredRegions, WrongFileLength } from './data-files';
import { checkIndex, SignatureStream, type CheckedIndex } from './index-file';
import { dataFileBytes, dataFileCount, dataFileName, exportStateDirName, indexName, isDataFileName, manifestName, type ImageGeometry } from './layout';
import { checkManifest, readManifest, type ImageManifest } from './manifest';
import { describeEntryType, listEntries, NotRegularFile, openRegular, type EntryType } from './media';
import type { ProblemSink } from './problems';

/** An image whose manifest is sound; index.bin is undefined when it is not (reported already). */
export interface InspectedImage {
  readonly dir: string;
  readonly manifest: ImageManifest;
  readonly manifestSha256: string;
  readonly layout: ImageGeometry;
  readonly index: CheckedIndex | undefined;
  /** Data files that are missing, not regular or of the wrong length (reported already; their data is not checked). */
  readonly unusableFiles: ReadonlySet<number>;
}

export interface InspectResult {
  /** Set when the manifest is sound. */
  readonly image: InspectedImage | undefined;
  readonly manifest: ImageManifest | undefined;
  readonly manifestSha256: string | undefined;
  readonly entries: ReadonlyMap<string, EntryType>;
}

/**
 * Checks the listing, manifest.json, index.bin and every data file's type and length,
 * reporting each problem. `image` is set when the manifest is sound.
 */
export async function inspectImage(dir: string, report: ProblemSink): Promise<InspectResult> {
  const entries = await listEntries(dir);
  if (entries.has(exportStateDirName) && !entries.has(manifestName)) {
    report({ file: exportStateDirName, kind: 'unfinished', detail: 'an export into this directory has not finished: there is no manifest yet' });
  }
  const read = await readManifest(dir, report);
  if (!read || !checkManifest(read.manifest, report)) return { image: undefined, manifest: read?.manifest, manifestSha256: read?.manifestSha256, entries };
  const { manifest, manifestSha256 } = read;
  const checked = await checkIndex(dir, manifest, report);
  const index = checked && lastFileAgrees(manifest, checked, report) ? checked : undefined;
  const layout = geometryOf(manifest, index);
  const unusableFiles = await checkFiles(dir, manifest, layout, entries, report);
  return { image: { dir, manifest, manifestSha256, layout, index, unusableFiles }, manifest, manifestSha256, entries };
}

/** The layout: whether the volume's (perhaps short) last region is stored is index.bin's to say, else the last file's length. */
function geometryOf(manifest: ImageManifest, index: CheckedIndex | undefined): ImageGeometry {
  const last = manifest.files.at(-1);
  const lastShort = last !== undefined && last.bytes !== last.regions * manifest.volume.regionBytes;
  return {
    sizeBytes: manifest.volume.sizeBytes,
    regionBytes: manifest.volume.regionBytes,
    regionCount: manifest.volume.regionCount,
    regionsPerFile: manifest.regionsPerFile,
    storedRegions: manifest.storedRegions,
    lastRegionStored: index ? index.stored.get(manifest.volume.regionCount - 1) : lastShort,
  };
}

/** The manifest's last file length agrees with whether index.bin stores the volume's (perhaps short) last region. */
function lastFileAgrees(manifest: ImageManifest, index: CheckedIndex, report: ProblemSink): boolean {
  const last = manifest.files.length - 1;
  if (last < 0) return true;
  const expectedBytes = dataFileBytes(geometryOf(manifest, index), last);
  if (manifest.files[last]!.bytes === expectedBytes) return true;
  report({
    file: `${manifestName} (files[${last}].bytes)`,
    kind: 'structure',
    detail: `${manifest.files[last]!.bytes}, but with the regions ${indexName} marks stored the file holds ${expectedBytes} bytes`,
  });
  return false;
}

/** Each data file is listed as a regular file and opens as one of exactly its length; returns those that do not. */
async function checkFiles(
  dir: string,
  manifest: ImageManifest,
  layout: ImageGeometry,
  entries: ReadonlyMap<string, EntryType>,
  report: ProblemSink,
): Promise<Set<number>> {
  const unusable = new Set<number>();
  for (const [k, file] of manifest.files.entries()) {
    const name = dataFileName(k);
    const type = entries.get(name);
    const problem =
      type === undefined
        ? { kind: 'missing' as const, detail: `the manifest lists it with ${formatCount(file.regions, 'region')} in ${file.bytes} bytes` }
        : type !== 'file'
          ? { kind: 'not-regular' as const, detail: `it is ${describeEntryType(type)}, not a regular file` }
          : await lengthProblem(join(dir, name), dataFileBytes(layout, k));
    if (!problem) continue;
    unusable.add(k);
    report({ file: name, ...problem });
  }
  return unusable;
}

async function lengthProblem(
  path: string,
  expectedBytes: number,
): Promise<{ kind: 'truncated' | 'oversized' | 'not-regular' | 'missing'; detail: string } | undefined> {
  try {
    const { handle, sizeBytes } = await openRegular(path);
    await handle.close();
    if (sizeBytes === expectedBytes) return undefined;
    return { kind: sizeBytes < expectedBytes ? 'truncated' : 'oversized', detail: `${sizeBytes} bytes, expected ${expectedBytes}` };
  } catch (error) {
    if (!(error instanceof NotRegularFile)) throw error;
    return error.found === 'missing' ? { kind: 'missing', detail: 'it went away while being checked' } : { kind: 'not-regular', detail: error.message };
  }
}

/** Entries that belong to no image: everything but the manifest, index.bin and the listed data files. */
export function extraEntries(manifest: ImageManifest | undefined, entries: ReadonlyMap<string, EntryType>): string[] {
  const expected = new Set([manifestName, indexName]);
  if (manifest) manifest.files.forEach((_, k) => expected.add(dataFileName(k)));
  return [...entries.keys()].filter((name) => !expected.has(name) && (manifest !== undefined || !isDataFileName(name)));
}

export interface DataCheckOptions {
  /** First data file to check (import: the one holding the first region still to import). */
  readonly firstFile?: number;
  readonly signal?: AbortSignal;
  readonly onBytes?: (bytes: number) => void;
}

/**
 * Signs every stored region of the data files from `firstFile` on, compares each with its
 * signature in index.bin (when sound) and each file's checksum with the manifest; reports the
 * first bad region of each file (with its offset), or the file when only its checksum disagrees.
 */
export async function checkData(image: InspectedImage, report: ProblemSink, options: DataCheckOptions = {}): Promise<void> {
  const signer = await RegionSigner.create(image.manifest.hash);
  for (let k = options.firstFile ?? 0; k < dataFileCount(image.layout); k++) {
    if (image.unusableFiles.has(k)) continue;
    const problem = await checkDataFile(image, signer, k, options);
    if (problem) report({ file: dataFileName(k), kind: 'altered', detail: problem });
  }
}

async function checkDataFile(image: InspectedImage, signer: RegionSigner, fileIndex: number, options: DataCheckOptions): Promise<string | undefined> {
  const { layout, manifest, index } = image;
  const firstOrdinal = fileIndex * layout.regionsPerFile;
  const endOrdinal = Math.min(layout.storedRegions, firstOrdinal + layout.regionsPerFile);
  const checksum = await FileChecksum.begin(manifest.hash, dataFileBytes(layout, fileIndex));
  const signatures = index && (await SignatureStream.open(image.dir, manifest, index, firstOrdinal));
  let badRegion: string | undefined;
  try {
    for await (const region of readStoredRegions(image.dir, layout, firstOrdinal, endOrdinal, { stored: index?.stored, signal: options.signal })) {
      const signature = signer.sign(region.data);
      checksum.add(signature);
      options.onBytes?.(region.data.length);
      if (signatures && badRegion === undefined && !Buffer.from(signature).equals(await signatures.next())) {
        badRegion = `region ${region.regionIndex} (at byte ${region.offsetBytes} of the file) does not match its signature in ${indexName}`;
      }
    }
  } catch (error) {
    if (error instanceof NotRegularFile || error instanceof WrongFileLength) return `it changed while being read: ${error.message}`;
    throw error;
  } finally {
    await signatures?.close();
  }
  assert(checksum.regions === endOrdinal - firstOrdinal, 'every region of the file was signed');
  const sum = checksum.end();
  if (badRegion) return badRegion;
  return sum === manifest.files[fileIndex]!.checksum ? undefined : `its checksum ${sum} does not match the manifest's ${manifest.files[fileIndex]!.checksum}`;
}
