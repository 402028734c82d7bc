// `image import DIR VOLREF` (docs/image-format.md): the image is untrusted input, so before
// anything is written its structure is checked and every data file still to import is read and
// signed (pre-verify). Then a marker makes sync refuse the volume, and regions go in ascending:
// each stored region hashed in memory and compared with index.bin before it is written (with
// the pair's WriteAuth on a secondary), a region not stored reclaimed where the target holds
// data. Progress is committed (flush, then the marker) every 64 MiB and at each data file's end;
// the same command resumes. Finally the secondary's member records the seed.

import { resolve } from 'node:path';
import type { AgentApi, ImportMarker, PairMember, WriteAuth } from '../agent';
import { assert } from '../assert';
import { Bitset } from '../bitmap';
import { TidemarkError } from '../errors';
import { acquirePairLock, type EndpointResolver, type PairStore, type VolumeEndpoint } from '../replication';
import { RegionSigner } from './checksum';
import { readStoredRegions, type StoredRegion } from './data-files';
import { SignatureStream, type CheckedIndex } from './index-file';
import { authOf, checkTargetFits, readTarget, resumeRegion, type TargetState } from './import-target';
import { checkData, inspectImage, type InspectedImage } from './inspect';
import { commitBytesDefault, dataFileBytes, dataFileCount, dataFileName, indexName, placeOf, shortfallBytes } from './layout';
import { problemError, throwingSink } from './problems';
import { PhaseProgress, type ImageProgress } from './progress';

export interface ImageImportOptions {
  readonly dir: string;
  /** The volume to import into: created from the manifest when nothing is there. */
  readonly target: string;
  readonly resolver: EndpointResolver;
  /** This home's pairs: an import into the secondary of one holds the pair's lock (no sync meanwhile). */
  readonly pairs?: PairStore;
  /** Abandon an unfinished import on the target and import this image from the start. */
  readonly restart?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: ImageProgress) => void;
  /** Tests: commit at least this often (default 64 MiB). */
  readonly commitBytes?: number;
}

export interface ImageImportSummary {
  readonly imageId: string;
  readonly dir: string;
  readonly target: string;
  readonly pair: { readonly pairId: string; readonly name: string } | null;
  readonly pointInTime: string;
  readonly regions: number;
  readonly storedRegions: number;
  /** This run's: stored regions written, regions reclaimed (data on the target, none in the image), bytes written. */
  readonly regionsTransferred: number;
  readonly regionsReclaimed: number;
  readonly bytesTransferred: number;
  readonly resumed: boolean;
  readonly durationMs: number;
}

export async function importImage(options: ImageImportOptions): Promise<ImageImportSummary> {
  const dir = resolve(options.dir);
  const { image } = await inspectImage(dir, throwingSink(dir));
  assert(image?.index !== undefined, 'an image without problems was inspected whole');
  const endpoint = await options.resolver.resolve(options.target);
  return new ImportRun(options, image, endpoint).run();
}

const writesInFlightBytes = 16 * 1024 * 1024;

class ImportRun {
  private readonly agent: AgentApi;
  private readonly path: string;
  private readonly startedMs = performance.now();
  private readonly counters = { regionsTransferred: 0, regionsReclaimed: 0, bytesTransferred: 0 };
  private readonly writes = new Set<Promise<void>>();
  private readonly writesInFlightMax: number;
  private readonly index: CheckedIndex;
  private member: PairMember | null = null;
  private auth: WriteAuth | undefined;
  private marker!: ImportMarker;

  constructor(
    private readonly options: ImageImportOptions,
    private readonly image: InspectedImage,
    private readonly endpoint: VolumeEndpoint,
  ) {
    this.agent = endpoint.agent;
    this.path = endpoint.path;
    this.writesInFlightMax = Math.min(16, Math.max(2, Math.floor(writesInFlightBytes / image.layout.regionBytes)));
    assert(image.index !== undefined, 'an image is imported with its checked index.bin');
    this.index = image.index;
  }

  async run(): Promise<ImageImportSummary> {
    const target = await readTarget(this.endpoint);
    checkTargetFits(this.endpoint, target, this.image);
    this.member = target.member;
    this.auth = authOf(target.member);
    const lock = await this.lockPair(target.member);
    try {
      const fromRegion = resumeRegion(this.endpoint, target.marker, this.image, this.options.restart ?? false);
      await this.preVerify(fromRegion);
      await this.ensureTarget(target);
      await this.mark(fromRegion, fromRegion > 0 ? target.marker : null);
      await this.importRegions(fromRegion);
      await this.finish();
      return this.summary(fromRegion > 0);
    } finally {
      await lock?.release();
    }
  }

  /** No sync of the pair from this home meanwhile (a sync orchestrated elsewhere finds the marker). */
  private async lockPair(member: PairMember | null): Promise<Awaited<ReturnType<typeof acquirePairLock>> | undefined> {
    const store = this.options.pairs;
    if (!member || !store) return undefined;
    const record = (await store.list()).find((r) => r.pairId === member.pairId);
    return record ? acquirePairLock(store.pairDir(record.name), record.name, 'image import') : undefined;
  }

  /** Reads and signs every data file from the one holding `fromRegion`'s region on: a bad one refuses the import before any write. */
  private async preVerify(fromRegion: number): Promise<void> {
    const { layout } = this.image;
    const firstOrdinal = this.index.stored.popcount(0, fromRegion);
    if (firstOrdinal === layout.storedRegions) return;
    const firstFile = placeOf(layout, firstOrdinal).fileIndex;
    let bytesTotal = 0;
    for (let k = firstFile; k < dataFileCount(layout); k++) bytesTotal += dataFileBytes(layout, k);
    const progress = new PhaseProgress('check', bytesTotal, this.options.onProgress);
    await checkData(this.image, throwingSink(this.image.dir), { firstFile, signal: this.options.signal, onBytes: (bytes) => progress.add(bytes) });
    progress.report();
  }

  /** Creates the target from the manifest when absent; registers (adopts) one this home does not know. */
  private async ensureTarget(target: TargetState): Promise<void> {
    const { volume } = this.image.manifest;
    if (!target.exists) await this.agent.volumeCreate(this.path, volume.sizeBytes, volume.regionBytes);
    else if (!target.registered) await this.agent.volumeAdopt(this.path, volume.regionBytes);
    else return;
    const info = await this.agent.volumeInfo(this.path);
    checkTargetFits(this.endpoint, { ...target, sizeBytes: info.sizeBytes, regionBytes: info.regionBytes }, this.image);
  }

  private async mark(nextRegion: number, previous: ImportMarker | null): Promise<void> {
    const { manifest, manifestSha256 } = this.image;
    this.marker = {
      imageId: manifest.imageId,
      manifestSha256,
      pairId: this.member?.pairId ?? null,
      generation: this.member?.generation ?? manifest.pair?.generation ?? 0,
      nextRegion,
      startedAt: previous?.startedAt ?? new Date().toISOString(),
    };
    await this.agent.importMark(this.path, this.marker, { auth: this.auth });
  }

  /** Regions from `fromRegion` on: stored ones checked and written, the gaps between them reclaimed where realized. */
  private async importRegions(fromRegion: number): Promise<void> {
    const { dir, layout, manifest } = this.image;
    const realized = await this.targetRealized();
    const firstOrdinal = this.index.stored.popcount(0, fromRegion);
    const signatures = await SignatureStream.open(dir, manifest, this.index, firstOrdinal);
    const signer = await RegionSigner.create(manifest.hash);
    const progress = new PhaseProgress('import', this.storedBytesFrom(firstOrdinal), this.options.onProgress);
    const commitBytes = this.options.commitBytes ?? commitBytesDefault;
    let done = fromRegion;
    let sinceCommitBytes = 0;
    try {
      const regions = readStoredRegions(dir, layout, firstOrdinal, layout.storedRegions, { stored: this.index.stored, signal: this.options.signal });
      for await (const region of regions) {
        await this.reclaimGap(realized, done, region.regionIndex);
        this.checkRegion(region, signer.sign(region.data), await signatures.next());
        await this.write(region);
        done = region.regionIndex + 1;
        progress.add(region.data.length);
        sinceCommitBytes += region.data.length;
        const endsFile = (region.ordinal + 1) % layout.regionsPerFile === 0;
        if (sinceCommitBytes >= commitBytes || endsFile) {
          await this.commit(done);
          sinceCommitBytes = 0;
        }
      }
      await this.reclaimGap(realized, done, layout.regionCount);
      done = layout.regionCount;
      progress.report();
    } catch (error) {
      throw await this.stopped(error, done);
    } finally {
      await signatures.close();
    }
  }

  /** Bytes of the stored regions from `firstOrdinal` on (all whole but perhaps the volume's last). */
  private storedBytesFrom(firstOrdinal: number): number {
    const { layout } = this.image;
    const regions = layout.storedRegions - firstOrdinal;
    return regions * layout.regionBytes - (regions > 0 && layout.lastRegionStored ? shortfallBytes(layout) : 0);
  }

  /** The target's realized regions over the image's extent (a larger target's tail is never touched). */
  private async targetRealized(): Promise<Bitset> {
    const map = await this.agent.realizedMap(this.path);
    const regionCount = this.image.layout.regionCount;
    assert(map.regionCount >= regionCount, 'the target holds every region of the image');
    const bits = new Bitset(regionCount);
    bits.copyWordsFrom(map.words.subarray(0, Math.ceil(regionCount / 32)), 0);
    return bits;
  }

  /** Regions [from, to) are not in the image: those holding data on the target are reclaimed (they read as zeros after). */
  private async reclaimGap(realized: Bitset, from: number, to: number): Promise<void> {
    for (const run of realized.runs(from, to)) {
      await this.agent.reclaimRegions(this.path, run.start, run.end - run.start, { auth: this.auth });
      this.counters.regionsReclaimed += run.end - run.start;
    }
  }

  /** The bytes in memory, the very ones to be written, match index.bin. */
  private checkRegion(region: StoredRegion, signature: Uint8Array, expected: Uint8Array): void {
    if (Buffer.from(signature).equals(expected)) return;
    throw problemError(this.image.dir, {
      file: dataFileName(region.fileIndex),
      kind: 'altered',
      detail: `region ${region.regionIndex} (at byte ${region.offsetBytes} of the file) does not match its signature in ${indexName}; the import stopped before writing it`,
    });
  }

  private async write(region: StoredRegion): Promise<void> {
    const write = this.agent.writeRegion(this.path, region.regionIndex, region.data, { auth: this.auth }).then(() => {
      this.counters.regionsTransferred += 1;
      this.counters.bytesTransferred += region.data.length;
    });
    const tracked = write.finally(() => this.writes.delete(tracked));
    tracked.catch(() => undefined); // awaited by drain, or by the race below
    this.writes.add(tracked);
    while (this.writes.size >= this.writesInFlightMax) await Promise.race(this.writes);
  }

  private async drain(): Promise<void> {
    while (this.writes.size > 0) await Promise.all(this.writes);
  }

  /** Regions below `nextRegion` are durable on the target, then the marker says so. */
  private async commit(nextRegion: number): Promise<void> {
    await this.drain();
    await this.agent.flush(this.path);
    this.marker = { ...this.marker, nextRegion };
    await this.agent.importMark(this.path, this.marker, { auth: this.auth });
  }

  /** A cancelled import commits what it did; any other failure leaves the marker at the last commit. */
  private async stopped(error: unknown, done: number): Promise<unknown> {
    const regionCount = this.image.layout.regionCount;
    const resume = `run the same \`tidemark image import\` again to resume`;
    const cancelled = this.options.signal?.aborted || (error instanceof TidemarkError && error.code === 'CANCELLED');
    if (!cancelled) {
      await Promise.allSettled(this.writes);
      if (!(error instanceof TidemarkError) || error.code === 'METADATA_CORRUPT') return error;
      return new TidemarkError(
        error.code,
        `import into ${this.endpoint.volref} stopped at region ${done} of ${regionCount}: ${error.message}`,
        `${error.hint ? `${error.hint}; then ` : ''}${resume}`,
        {
          cause: error,
        },
      );
    }
    await this.commit(done);
    return new TidemarkError('CANCELLED', `import into ${this.endpoint.volref} cancelled at region ${done} of ${regionCount}`, resume);
  }

  /**
   * Everything durable, the member seeded, the marker gone: sync may run. The secondary no
   * longer holds its last consistent snapshot's point nor the last sync's, so both are dropped:
   * a sync conveying only what was written since the last one would miss what the image undid.
   */
  private async finish(): Promise<void> {
    await this.drain();
    await this.agent.flush(this.path);
    const { manifest } = this.image;
    if (this.member) {
      const seed = { imageId: manifest.imageId, generation: manifest.pair?.generation ?? this.member.generation, pointInTime: manifest.pointInTime };
      await this.agent.pairUpdate(this.path, this.member.pairId, { seed, lcsSnapshotId: null });
      await this.dropSnapshot(this.member.lcsSnapshotId);
      await this.forgetLastSync(this.member);
    }
    await this.agent.importMark(this.path, null, { auth: this.auth });
  }

  private async dropSnapshot(snapshotId: string | null): Promise<void> {
    if (snapshotId === null) return;
    const { snapshots } = await this.agent.snapshotList(this.path);
    if (snapshots.some((s) => s.snapshotId === snapshotId)) await this.agent.snapshotDelete(this.path, snapshotId);
  }

  /** When this home orchestrates the pair, its record's last sync no longer describes the secondary. */
  private async forgetLastSync(member: PairMember): Promise<void> {
    const store = this.options.pairs;
    const record = store && (await store.list()).find((r) => r.pairId === member.pairId);
    if (record?.lastSync) await store!.update(record.name, { lastSync: null });
  }

  private summary(resumed: boolean): ImageImportSummary {
    const { manifest } = this.image;
    return {
      imageId: manifest.imageId,
      dir: this.image.dir,
      target: this.endpoint.volref,
      pair: this.member ? { pairId: this.member.pairId, name: this.member.name } : null,
      pointInTime: manifest.pointInTime,
      regions: manifest.volume.regionCount,
      storedRegions: manifest.storedRegions,
      ...this.counters,
      resumed,
      durationMs: Math.round(performance.now() - this.startedMs),
    };
  }
}
