// `image export SOURCE DIR` (docs/image-format.md, seed 001: "a reference snapshot of the local
// volume is created, and the reference snapshot data is stored to a removable medium"): snapshot
// the source, stream its realized regions from the snapshot, store the non-zero ones in split
// data files with their signatures, commit every 64 MiB; finish with index.bin and manifest.json.
// The same command resumes an unfinished export; its data files equal an uninterrupted one's.

import { randomUUID } from 'node:crypto';
import { lstat, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { exportSnapshotLabelPrefix, type AgentApi, type SnapshotInfo } from '../agent';
import { assert } from '../assert';
import { Bitset } from '../bitmap';
import { regionBytesDefault } from '../constants';
import { TidemarkError, fromSystemError, usageError } from '../errors';
import { createUserDirectories } from '../fsync';
import { validatePairName, type EndpointResolver, type PairRecord, type PairStore, type VolumeEndpoint } from '../replication';
import { SignaturePool, hashAlgorithmDefault, signatureBytes, type HashAlgorithm } from '../signature';
import { formatBytes } from '../size';
import { isAllZero } from './checksum';
import { finishImage } from './export-finish';
import { readExportState, removeExportState, stateDirOf, writeExportState, type ExportState } from './export-state';
import { ImageAppender } from './export-writer';
import {
  commitBytesDefault,
  dataFilesMax,
  exportStateDirName,
  fat32FileBytesMax,
  indexFileBytes,
  indexName,
  isDataFileName,
  manifestName,
  regionsPerFileFor,
  splitBytesDefault,
  splitBytesMin,
} from './layout';
import { readManifest } from './manifest';
import { fatFileSystemTypes, fileSystemOf, listEntries, syncDirectoryIfSupported } from './media';
import { PhaseProgress, type ImageProgress } from './progress';
import { readRuns } from './run-reader';

export interface ImageExportOptions {
  /** A pair of this home (its primary is exported) or a VOLREF. */
  readonly source: string;
  readonly dir: string;
  readonly resolver: EndpointResolver;
  /** This home's pairs, for a SOURCE that names one. */
  readonly pairs?: PairStore;
  readonly splitBytes?: number;
  /** Default: the pair's hash, else xxh3-128. */
  readonly hash?: HashAlgorithm;
  /** Region size for a source this home has not registered (it is adopted: snapshots need it). */
  readonly regionBytes?: number;
  /** Abandon an unfinished export in DIR and begin anew. */
  readonly restart?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: ImageProgress) => void;
  readonly onWarning?: (message: string) => void;
  /** Tests: commit after this many bytes read (default 64 MiB). */
  readonly commitBytes?: number;
}

export interface ImageExportSummary {
  readonly imageId: string;
  readonly dir: string;
  readonly manifestSha256: string;
  readonly source: string;
  readonly pair: { readonly pairId: string; readonly name: string; readonly generation: number } | null;
  readonly pointInTime: string;
  readonly hash: HashAlgorithm;
  readonly regions: number;
  readonly storedRegions: number;
  readonly files: number;
  readonly bytesStored: number;
  /** This run's: regions and bytes written to the data files (a resumed export counts only its part). */
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly resumed: boolean;
  readonly durationMs: number;
}

export const exportSnapshotLabel = (imageId: string) => `${exportSnapshotLabelPrefix}${imageId}`;

interface ExportSource {
  readonly endpoint: VolumeEndpoint;
  readonly pair: PairRecord | undefined;
}

export async function exportImage(options: ImageExportOptions): Promise<ImageExportSummary> {
  const source = await resolveSource(options);
  return new ExportRun(options, source, resolve(options.dir)).run();
}

async function pathExists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

function isPairName(name: string): boolean {
  try {
    validatePairName(name);
    return true;
  } catch {
    return false;
  }
}

/** A pair of this home by that name, if SOURCE is one; a name that is also a file here is ambiguous. */
async function resolveSource(options: ImageExportOptions): Promise<ExportSource> {
  const name = options.source;
  const pair = options.pairs && isPairName(name) ? await options.pairs.get(name) : undefined;
  if (!pair) return { endpoint: await options.resolver.resolve(name), pair: undefined };
  if (await pathExists(name)) {
    throw usageError(
      `"${name}" is both a pair of this home and a file in this directory`,
      `write ./${name} to export the file, or run the command from another directory to export the pair`,
    );
  }
  return { endpoint: await options.resolver.resolve(pair.primary.volref), pair };
}

/** Abandons an unfinished export in `dir`: its snapshot is deleted, its files removed. */
export async function abandonExport(dir: string, resolver: EndpointResolver): Promise<{ imageId: string } | undefined> {
  const state = await readExportState(resolve(dir));
  if (!state) return undefined;
  const endpoint = await resolver.resolve(state.source);
  const snapshot = await findExportSnapshot(endpoint, state);
  if (snapshot) await endpoint.agent.snapshotDelete(endpoint.path, snapshot.snapshotId);
  await removeImageFiles(resolve(dir));
  return { imageId: state.imageId };
}

async function findExportSnapshot(endpoint: VolumeEndpoint, state: ExportState): Promise<SnapshotInfo | undefined> {
  const { snapshots } = await endpoint.agent.snapshotList(endpoint.path);
  return snapshots.find((s) => (state.snapshotId ? s.snapshotId === state.snapshotId : s.label === exportSnapshotLabel(state.imageId)));
}

/** Removes what an export writes: data files, index.bin, a manifest's temporary file, the state directory. */
async function removeImageFiles(dir: string): Promise<void> {
  for (const name of (await listEntries(dir)).keys()) {
    if (isDataFileName(name) || name === indexName || name === `.${manifestName}.part`) {
      await rm(join(dir, name), { force: true }).catch((error: unknown) => {
        throw fromSystemError(error, 'remove', join(dir, name));
      });
    }
  }
  await removeExportState(dir);
}

interface Counters {
  regionsTransferred: number;
  bytesTransferred: number;
}

class ExportRun {
  private readonly agent: AgentApi;
  private readonly path: string;
  private readonly startedMs = performance.now();
  private readonly counters: Counters = { regionsTransferred: 0, bytesTransferred: 0 };
  private resumed = false;
  /** The realization map read just before a new snapshot was taken (see realizedRegions). */
  private realizedBefore: Bitset | undefined;

  constructor(
    private readonly options: ImageExportOptions,
    private readonly source: ExportSource,
    private readonly dir: string,
  ) {
    this.agent = source.endpoint.agent;
    this.path = source.endpoint.path;
  }

  async run(): Promise<ImageExportSummary> {
    await this.makeDirectory();
    const existing = await readExportState(this.dir);
    const manifest = await readManifest(this.dir, () => undefined);
    if (manifest && existing?.imageId === manifest.manifest.imageId) {
      this.resumed = true;
      return this.cleanUp(existing, manifest.manifestSha256);
    }
    if (manifest || (await pathExists(join(this.dir, manifestName)))) {
      throw new TidemarkError('ALREADY_EXISTS', `${this.dir} already holds an image`, 'export into an empty directory, or remove that image first');
    }
    let state = existing && !this.options.restart ? await this.resume(existing) : undefined;
    if (!state) {
      if (existing) await abandonExport(this.dir, this.options.resolver);
      state = await this.begin();
    }
    state = await this.pass(state);
    const finished = await finishImage(this.dir, state);
    return this.cleanUp(state, finished.manifestSha256);
  }

  private async makeDirectory(): Promise<void> {
    try {
      await createUserDirectories(this.dir);
    } catch (error) {
      throw fromSystemError(error, 'create image directory', this.dir);
    }
    await syncDirectoryIfSupported(dirname(this.dir));
  }

  /** Checks that an unfinished export is this one and still has its snapshot. */
  private async resume(state: ExportState): Promise<ExportState> {
    if (state.source !== this.source.endpoint.volref) {
      throw usageError(
        `${this.dir} holds an unfinished export of ${state.source}, not of ${this.source.endpoint.volref}`,
        `run \`tidemark image export ${state.pair?.name ?? state.source} ${this.dir}\` to finish it, or add --restart to export ${this.options.source} instead`,
      );
    }
    this.resumed = true;
    const snapshot = await findExportSnapshot(this.source.endpoint, state);
    if (snapshot && state.snapshotId) return state;
    if (state.snapshotId) {
      throw new TidemarkError(
        'INCOMPLETE',
        `the reference snapshot of the unfinished export in ${this.dir} is gone from ${state.source}`,
        'add --restart to export anew into this directory',
      );
    }
    return this.takeSnapshot(state, snapshot); // a crash came between recording the export and its snapshot
  }

  /** Records a new export, then takes its snapshot (found again by label if a crash comes in between). */
  private async begin(): Promise<ExportState> {
    await this.checkEmpty();
    const { endpoint, pair } = this.source;
    const volumeId = await this.registeredVolumeId();
    const info = await this.agent.volumeInfo(this.path);
    await this.checkSourceState(pair);
    const splitBytes = this.options.splitBytes ?? splitBytesDefault;
    const hash = this.options.hash ?? pair?.hash ?? hashAlgorithmDefault;
    const state: ExportState = {
      imageId: randomUUID(),
      source: endpoint.volref,
      volumeId,
      pair: pair ? { pairId: pair.pairId, name: pair.name, generation: pair.generation } : null,
      sizeBytes: info.sizeBytes,
      regionBytes: info.regionBytes,
      regionCount: info.regions,
      hash,
      splitBytes,
      snapshotId: null,
      pointInTime: null,
      startedAt: new Date().toISOString(),
      nextRegion: 0,
      storedRegions: 0,
      dataBytes: 0,
    };
    await this.checkMedia(state, info.realizedRegions);
    await createUserDirectories(stateDirOf(this.dir));
    await writeExportState(this.dir, state);
    return this.takeSnapshot(state, undefined);
  }

  private async takeSnapshot(state: ExportState, existing: SnapshotInfo | undefined): Promise<ExportState> {
    if (!existing) {
      const map = await this.agent.realizedMap(this.path);
      this.realizedBefore = new Bitset(map.regionCount, map.words);
    }
    const snapshot = existing ?? (await this.agent.snapshotCreate(this.path, { label: exportSnapshotLabel(state.imageId) }));
    const next = { ...state, snapshotId: snapshot.snapshotId, pointInTime: new Date(snapshot.createdAtMs).toISOString() };
    await writeExportState(this.dir, next);
    return next;
  }

  /** Nothing but an image belongs in DIR: a new export starts in an empty directory. */
  private async checkEmpty(): Promise<void> {
    const names = [...(await listEntries(this.dir)).keys()].filter((name) => name !== exportStateDirName);
    if (names.length === 0) return;
    const listed = names.slice(0, 3).join(', ') + (names.length > 3 ? ', …' : '');
    throw new TidemarkError(
      'ALREADY_EXISTS',
      `${this.dir} is not empty (it holds ${listed})`,
      'export into an empty directory: nothing else belongs in an image directory',
    );
  }

  /** The source's volume id; a volume this home has not registered is adopted (snapshots need it). */
  private async registeredVolumeId(): Promise<string> {
    const state = await this.agent.volumeState(this.path);
    if (state.volumeId) return state.volumeId;
    const regionBytes = this.options.regionBytes ?? regionBytesDefault;
    this.options.onWarning?.(
      `registering ${this.source.endpoint.volref} in the home on ${this.source.endpoint.where} (regions of ${formatBytes(regionBytes)}) to snapshot it`,
    );
    return (await this.agent.volumeAdopt(this.path, regionBytes)).volumeId;
  }

  /** A pair's primary must be its primary at the record's generation; no volume mid-import is exported. */
  private async checkSourceState(pair: PairRecord | undefined): Promise<void> {
    const state = await this.agent.volumeState(this.path);
    if (state.importing) {
      throw new TidemarkError(
        'INCOMPLETE',
        `${this.source.endpoint.volref} holds an unfinished image import (image ${state.importing.imageId}): its data is not a point in time`,
        'finish the import first (run the same `tidemark image import` again)',
      );
    }
    if (!pair) return;
    const member = state.members.find((m) => m.pairId === pair.pairId);
    if (!member || member.role !== 'primary') {
      throw new TidemarkError(
        'NOT_FOUND',
        `${pair.primary.volref} is not the primary of pair "${pair.name}" (its agent has no record of it)`,
        'see `tidemark pair show`',
      );
    }
    if (member.generation !== pair.generation) {
      throw new TidemarkError(
        'STALE',
        `pair "${pair.name}" is at generation ${pair.generation} here but ${member.generation} on ${this.source.endpoint.where}`,
        'a role change happened elsewhere; see `tidemark pair show` before exporting',
      );
    }
  }

  /** The split, the number of files and the free space fit the media (checked before anything is written). */
  private async checkMedia(state: ExportState, realizedRegions: number): Promise<void> {
    const { splitBytes, regionBytes } = state;
    if (!Number.isSafeInteger(splitBytes) || splitBytes < Math.max(regionBytes, splitBytesMin)) {
      throw usageError(
        `--split ${formatBytes(splitBytes)} is less than a region (${formatBytes(regionBytes)}) or 1 MiB`,
        `use --split ${formatBytes(Math.max(regionBytes, splitBytesMin)).replace(' ', '')} or more`,
      );
    }
    const filesMax = Math.ceil(realizedRegions / regionsPerFileFor(splitBytes, regionBytes));
    if (filesMax > dataFilesMax) {
      throw usageError(`--split ${formatBytes(splitBytes)} would need up to ${filesMax} data files, more than ${dataFilesMax}`, 'raise --split');
    }
    const media = await fileSystemOf(this.dir);
    if (fatFileSystemTypes.has(media.type) && splitBytes > fat32FileBytesMax) {
      throw usageError(`${this.dir} is on a FAT file system, whose files hold at most 4 GiB − 1 byte`, 'use --split 4095MiB or less (the default)');
    }
    const neededBytes = realizedRegions * regionBytes + indexFileBytes(state.regionCount, realizedRegions, signatureBytes(state.hash));
    if (neededBytes > media.freeBytes) {
      throw new TidemarkError(
        'NO_SPACE',
        `${this.dir} has ${formatBytes(media.freeBytes)} free, the export needs up to ${formatBytes(neededBytes)} (the source's ${realizedRegions} realized regions)`,
        'free space there, or export to larger media',
      );
    }
  }

  /** Streams the realized regions from `nextRegion` on out of the snapshot into the data files. */
  private async pass(state: ExportState): Promise<ExportState> {
    if (state.nextRegion === state.regionCount) return state;
    const realized = await this.realizedRegions(state);
    const signer = await SignaturePool.start(state.hash);
    try {
      const appender = await ImageAppender.open(this.dir, state, signer);
      try {
        return await this.copy(state, realized, appender);
      } finally {
        await appender.close();
      }
    } finally {
      await signer.dispose();
    }
  }

  private async copy(state: ExportState, realized: Bitset, appender: ImageAppender): Promise<ExportState> {
    const progress = new PhaseProgress('export', realized.popcount(state.nextRegion) * state.regionBytes, this.options.onProgress);
    const commitBytes = this.options.commitBytes ?? commitBytesDefault;
    let doneRegion = state.nextRegion;
    let sinceCommitBytes = 0;
    try {
      const reads = readRuns(this.agent, this.path, realized.runs(state.nextRegion), { snapshotId: state.snapshotId!, signal: this.options.signal });
      for await (const { regionIndex, data } of reads) {
        if (!isAllZero(data)) {
          await appender.append(regionIndex, data);
          this.counters.regionsTransferred += 1;
          this.counters.bytesTransferred += data.length;
        }
        doneRegion = regionIndex + 1;
        progress.add(data.length);
        sinceCommitBytes += data.length;
        if (sinceCommitBytes >= commitBytes) {
          await appender.commit(doneRegion);
          sinceCommitBytes = 0;
        }
      }
      await appender.commit(state.regionCount, { force: true });
      await appender.settle();
      progress.report();
      return { ...state, nextRegion: state.regionCount, storedRegions: appender.storedRegions, dataBytes: appender.dataBytes };
    } catch (error) {
      throw await this.stopped(error, appender, doneRegion, state.regionCount);
    }
  }

  /** A cancelled export commits what it did; any other failure leaves the last commit, as a crash would. */
  private async stopped(error: unknown, appender: ImageAppender, doneRegion: number, regionCount: number): Promise<unknown> {
    const cancelled = this.options.signal?.aborted || (error instanceof TidemarkError && error.code === 'CANCELLED');
    const resume = `run the same \`tidemark image export\` again to resume`;
    if (!cancelled) {
      if (!(error instanceof TidemarkError)) return error;
      return new TidemarkError(
        error.code,
        `export to ${this.dir} stopped at region ${doneRegion} of ${regionCount}: ${error.message}`,
        `${error.hint ? `${error.hint}; then ` : ''}${resume}`,
        {
          cause: error,
        },
      );
    }
    await appender.commit(doneRegion, { force: true });
    await appender.settle();
    return new TidemarkError('CANCELLED', `export to ${this.dir} cancelled at region ${doneRegion} of ${regionCount}`, resume);
  }

  /**
   * A superset of the regions holding data at the snapshot: only a reclaim clears a realized
   * bit, and the agent leaves bits set while it lists an export snapshot. A region reclaimed
   * just after the snapshot, before it is listed, loses its bit; the map read just before the
   * snapshot still has it, unless the region was also written between that read and the
   * snapshot (two windows of microseconds; only sync and import reclaim, on a secondary).
   */
  private async realizedRegions(state: ExportState): Promise<Bitset> {
    const map = await this.agent.realizedMap(this.path);
    assert(map.regionCount === state.regionCount, `the realization map covers the ${state.regionCount} regions of the source`);
    const realized = new Bitset(map.regionCount, map.words);
    return this.realizedBefore ? realized.unionWith(this.realizedBefore) : realized;
  }

  /** After the manifest: the state goes, the snapshot goes, the pair records the reference. */
  private async cleanUp(state: ExportState, manifestSha256: string): Promise<ImageExportSummary> {
    await removeExportState(this.dir);
    const endpoint = state.source === this.source.endpoint.volref ? this.source.endpoint : await this.options.resolver.resolve(state.source);
    const snapshot = await findExportSnapshot(endpoint, state);
    if (snapshot) await endpoint.agent.snapshotDelete(endpoint.path, snapshot.snapshotId);
    await this.recordReference(state, manifestSha256);
    const files = Math.ceil(state.storedRegions / regionsPerFileFor(state.splitBytes, state.regionBytes));
    return {
      imageId: state.imageId,
      dir: this.dir,
      manifestSha256,
      source: state.source,
      pair: state.pair,
      pointInTime: state.pointInTime!,
      hash: state.hash,
      regions: state.regionCount,
      storedRegions: state.storedRegions,
      files,
      bytesStored: state.dataBytes,
      ...this.counters,
      resumed: this.resumed,
      durationMs: Math.round(performance.now() - this.startedMs),
    };
  }

  private async recordReference(state: ExportState, manifestSha256: string): Promise<void> {
    const pair = state.pair;
    const store = this.options.pairs;
    if (!pair || !store) return;
    const record = await store.get(pair.name);
    if (record?.pairId !== pair.pairId) {
      this.options.onWarning?.(`pair "${pair.name}" was deleted during the export; the image is not recorded as its reference`);
      return;
    }
    await store.update(pair.name, { reference: { imageId: state.imageId, manifestSha256, generation: pair.generation, pointInTime: state.pointInTime! } });
  }
}
