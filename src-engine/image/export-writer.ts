// Appends stored regions to the data files and commits: the writes issued so far complete,
// then — beside the next writes — worker threads sign the regions written since the last commit
// from the data files (the bytes on the media, off the main thread), their records go to
// sigs.part, the files are synced and state.json rewritten. One commit runs at a time; a crash
// loses at most what came after the last one, and resume cuts the files back to it.

import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from '../assert';
import { MiB } from '../constants';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { signatureBytes, type RegionLocation, type SignaturePool } from '../signature';
import { sigRecordBytes, sigsPathOf, writeExportState, type ExportState } from './export-state';
import { dataFileName, isDataFileName, regionsPerFileFor } from './layout';
import { listEntries, writeExactly } from './media';

const writesInFlightBytes = 32 * MiB;

interface CurrentFile {
  readonly fileIndex: number;
  readonly handle: FileHandle;
  bytes: number;
  regions: number;
}

export class ImageAppender {
  private readonly regionsPerFile: number;
  private readonly recordBytes: number;
  private readonly writesInFlightMax: number;
  private current: CurrentFile | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  /** Regions appended since the last commit began, with where they are: signed by the next commit. */
  private unsigned: { regionIndex: number; location: RegionLocation }[] = [];
  private sigsBytes: number;
  /** The commit in flight, if any. */
  private committing: Promise<void> | undefined;
  private commitError: unknown;
  /** Full data files written since the last commit began: synced and closed by the next. */
  private fullFiles: FileHandle[] = [];
  /** The state as of the appends so far (committed or not). */
  private state: ExportState;

  private constructor(
    private readonly dir: string,
    state: ExportState,
    private readonly sigs: FileHandle,
    private readonly signer: SignaturePool,
  ) {
    assert(signer.algorithm === state.hash, 'the pool signs with the image hash');
    this.state = state;
    this.regionsPerFile = regionsPerFileFor(state.splitBytes, state.regionBytes);
    this.recordBytes = sigRecordBytes(signatureBytes(state.hash));
    this.sigsBytes = state.storedRegions * this.recordBytes;
    this.writesInFlightMax = Math.max(2, Math.min(16, Math.floor(writesInFlightBytes / state.regionBytes)));
  }

  /** Opens the files of an export at its committed state: later bytes are cut off, later files removed. */
  static async open(dir: string, state: ExportState, signer: SignaturePool): Promise<ImageAppender> {
    const committedFiles = Math.ceil(state.storedRegions / regionsPerFileFor(state.splitBytes, state.regionBytes));
    await removeFilesFrom(dir, committedFiles);
    const sigs = await openForAppend(sigsPathOf(dir), state.storedRegions * sigRecordBytes(signatureBytes(state.hash)));
    const appender = new ImageAppender(dir, state, sigs, signer);
    try {
      if (state.storedRegions % appender.regionsPerFile !== 0) await appender.reopenPartialFile();
    } catch (error) {
      await sigs.close();
      throw error;
    }
    return appender;
  }

  /** The last data file, partly filled at the commit: cut back to its committed length. */
  private async reopenPartialFile(): Promise<void> {
    const fileIndex = Math.floor(this.state.storedRegions / this.regionsPerFile);
    const regions = this.state.storedRegions - fileIndex * this.regionsPerFile;
    const bytes = this.state.dataBytes - fileIndex * this.regionsPerFile * this.state.regionBytes;
    assert(bytes > 0 && bytes <= regions * this.state.regionBytes, 'the committed bytes of the last file fit its regions');
    const handle = await openForAppend(join(this.dir, dataFileName(fileIndex)), bytes);
    this.current = { fileIndex, handle, bytes, regions };
  }

  get storedRegions(): number {
    return this.state.storedRegions;
  }

  get dataBytes(): number {
    return this.state.dataBytes;
  }

  /** Appends one stored region (the next in ascending order); the commit after signs it. */
  async append(regionIndex: number, data: Uint8Array): Promise<void> {
    if (this.commitError !== undefined) throw this.commitError;
    assert(regionIndex >= this.state.nextRegion, 'regions are appended in ascending order');
    const file = this.current ?? (await this.startFile());
    const path = join(this.dir, dataFileName(file.fileIndex));
    this.track(writeExactly(file.handle, data, file.bytes, path));
    this.unsigned.push({ regionIndex, location: { path, offsetBytes: file.bytes, bytes: data.length } });
    file.bytes += data.length;
    file.regions += 1;
    this.state = { ...this.state, nextRegion: regionIndex + 1, storedRegions: this.state.storedRegions + 1, dataBytes: this.state.dataBytes + data.length };
    if (file.regions === this.regionsPerFile) await this.commit(regionIndex + 1);
    else while (this.inFlight.size >= this.writesInFlightMax) await Promise.race(this.inFlight);
  }

  private track(write: Promise<void>): void {
    const tracked = write.finally(() => this.inFlight.delete(tracked));
    tracked.catch(() => undefined); // awaited by drain, or by the race above
    this.inFlight.add(tracked);
  }

  private async startFile(): Promise<CurrentFile> {
    const fileIndex = Math.floor(this.state.storedRegions / this.regionsPerFile);
    const path = join(this.dir, dataFileName(fileIndex));
    const handle = await open(path, 'w', 0o644).catch((error: unknown) => {
      throw fromSystemError(error, 'create data file', path);
    });
    this.current = { fileIndex, handle, bytes: 0, regions: 0 };
    return this.current;
  }

  /**
   * Commits every region below `nextRegion`: the writes issued complete now; signing, the
   * syncs and the state record follow in the background. While one commit runs the next is
   * skipped (unless forced): the one after covers it, so commits come as often as the media
   * takes them, at most every 64 MiB. A full file is closed once synced.
   */
  async commit(nextRegion: number, options: { force?: boolean } = {}): Promise<void> {
    if (this.commitError !== undefined) throw this.commitError;
    assert(nextRegion >= this.state.nextRegion, 'a commit never goes back');
    await this.drain();
    if (this.current?.regions === this.regionsPerFile) {
      this.fullFiles.push(this.current.handle);
      this.current = undefined;
    }
    this.state = { ...this.state, nextRegion };
    if (this.committing) {
      if (!options.force) return;
      await this.settle();
    }
    this.startCommit();
  }

  /** Signs the regions written since the last commit, records them, syncs, then records the state; one at a time. */
  private startCommit(): void {
    const state = this.state;
    const regions = this.unsigned.splice(0);
    const full = this.fullFiles.splice(0);
    const files = this.current ? [...full, this.current.handle] : full;
    const job = (async () => {
      const records = await this.signedRecords(regions);
      await writeExactly(this.sigs, records, this.sigsBytes, sigsPathOf(this.dir));
      this.sigsBytes += records.length;
      assert(this.sigsBytes === state.storedRegions * this.recordBytes, 'sigs.part holds one record per stored region');
      for (const file of files) await file.datasync();
      await this.sigs.datasync();
      await writeExportState(this.dir, state);
      for (const file of full) await file.close();
    })();
    this.committing = job.finally(() => (this.committing = undefined));
    this.committing.catch((error: unknown) => (this.commitError ??= error));
  }

  /** sigs.part records (u32le region index ‖ signature) of `regions`, in order, signed by the pool's workers. */
  private async signedRecords(regions: readonly { regionIndex: number; location: RegionLocation }[]): Promise<Buffer> {
    const records = Buffer.alloc(regions.length * this.recordBytes);
    const width = this.recordBytes - 4;
    const items = regions.map((region, position) => ({ regionIndex: position, location: region.location }));
    let signed = 0;
    for await (const batch of this.signer.sign(items)) {
      batch.regionIndexes.forEach((position, i) => {
        const at = position * this.recordBytes;
        records.writeUInt32LE(regions[position]!.regionIndex, at);
        records.set(batch.signatures.subarray(i * width, (i + 1) * width), at + 4);
      });
      signed += batch.regionIndexes.length;
    }
    assert(signed === regions.length, 'every region written was signed');
    return records;
  }

  private async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  /** Waits for the commit in flight; its failure (or an earlier one's) is thrown here. */
  async settle(): Promise<void> {
    await this.committing;
    if (this.commitError !== undefined) throw this.commitError;
  }

  /** Closes every file; nothing more is committed (after an error this is a crash's state). */
  async close(): Promise<void> {
    await Promise.allSettled(this.inFlight);
    await this.committing?.catch(() => undefined);
    for (const file of this.fullFiles.splice(0)) await file.close();
    await this.current?.handle.close();
    this.current = undefined;
    await this.sigs.close();
  }
}

/** Opens `path` for writing at `committedBytes`, cutting off anything after it; refuses a shorter file. */
async function openForAppend(path: string, committedBytes: number): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, committedBytes === 0 ? 'w' : 'r+', 0o644);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw fromSystemError(error, 'open', path);
    throw shorterThanCommitted(path, 0, committedBytes);
  }
  const { size } = await handle.stat();
  if (size < committedBytes) {
    await handle.close();
    throw shorterThanCommitted(path, size, committedBytes);
  }
  await handle.truncate(committedBytes);
  return handle;
}

function shorterThanCommitted(path: string, actualBytes: number, committedBytes: number): TidemarkError {
  return new TidemarkError(
    'INCOMPLETE',
    `${path} holds ${actualBytes} bytes, but the unfinished export committed ${committedBytes}: the directory was changed`,
    'add --restart to export anew into this directory',
  );
}

/** Removes data files numbered `fromFile` and up (written after the last commit). */
async function removeFilesFrom(dir: string, fromFile: number): Promise<void> {
  for (const name of (await listEntries(dir)).keys()) {
    if (!isDataFileName(name) || Number(name.slice(5, 11)) < fromFile) continue;
    await rm(join(dir, name), { force: true }).catch((error: unknown) => {
      throw fromSystemError(error, 'remove', join(dir, name));
    });
  }
}
