// Point-in-time snapshots of a volume. Two kinds: a reflink clone (COPYFILE_FICLONE) where the
// filesystem shares extents, and otherwise copy-on-write: before a region of the volume is
// first overwritten, its old bytes go to a sparse store file and a persisted validation
// bitmap records that the store now holds them. Format: docs/snapshot-format.md.

import { randomUUID } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { copyFile, mkdir, open, realpath, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { assert } from '../assert';
import { createBitmapFile, openBitmapFile, type PersistentBitmap } from '../bitmap';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { syncDirectory } from '../fsync';
import type { RegionLocation } from '../signature';
import { defineRecord, requireRecord, writeRecord } from '../store';
import type { Volume, WriteHook } from '../volume';

export const snapshotRecordKind = defineRecord(
  'tidemark/snapshot',
  1,
  z.object({
    snapshotId: z.string().min(1),
    kind: z.enum(['reflink', 'cow']),
    volumePath: z.string(),
    sizeBytes: z.number().int().positive(),
    regionBytes: z.number().int().positive(),
    createdAt: z.string(),
    label: z.string(),
  }),
);
export type SnapshotRecord = z.infer<typeof snapshotRecordKind.schema>;

export type ReflinkPolicy = 'auto' | 'never' | 'always';

const recordFile = 'snapshot.json';
const storeFile = 'store.img';
const cloneFile = 'clone.img';
const validFile = 'valid.tmbm';

/** Snapshot ids are UUIDs, so an id is also a safe directory name. */
export const snapshotIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The record a snapshot directory holds once the snapshot is complete (createSnapshot writes it last). */
export function snapshotRecordPath(directory: string): string {
  return join(directory, recordFile);
}

export interface SnapshotStats {
  /** Regions copied into the store (copy-on-write); each region is copied at most once. */
  regionsCopied: number;
}

export interface Snapshot {
  readonly record: SnapshotRecord;
  readonly directory: string;
  readonly stats: SnapshotStats;
  read(offsetBytes: number, bytes: number): Promise<Buffer>;
  readRegion(regionIndex: number): Promise<Buffer>;
  /**
   * Where region `regionIndex` of the snapshot lives at this instant. A region not yet copied
   * aside is located on the volume, and a host write may replace those bytes right after:
   * to hash a snapshot use `signSnapshot`, which re-checks; this is for inspection.
   */
  locate(regionIndex: number): RegionLocation;
  /** Regions copied aside so far (copy-on-write snapshots); undefined for reflink clones. */
  copiedRegions(): number | undefined;
  /** Stops tracking and releases the store. Not from inside `volume.quiesced()`. */
  delete(): Promise<void>;
  /**
   * Stops tracking but keeps the store (reopen with openSnapshot). Not from inside
   * `volume.quiesced()`. From the moment it starts, reads fail (see `checkOpen`); `deleted`
   * says in their error that the snapshot was deleted (a registry closes what it deletes).
   */
  close(options?: SnapshotCloseOptions): Promise<void>;
  /**
   * Throws once the snapshot is closed or deleted: NOT_FOUND for a deleted one. Bytes read
   * from the volume after its copy-on-write hook is gone may be newer than the snapshot, so a
   * reader that got bytes or signatures other than through `read` checks this after getting
   * them (signSnapshotBatches does, per batch); `read` checks by itself.
   */
  checkOpen(): void;
}

export interface SnapshotCloseOptions {
  /** The snapshot is closed because it is being deleted. */
  readonly deleted?: boolean;
}

export interface CreateSnapshotOptions {
  readonly label?: string;
  readonly reflink?: ReflinkPolicy;
  /** A UUID chosen by the caller (a registry names the directory by it); a fresh one by default. */
  readonly snapshotId?: string;
  /**
   * Runs with the volume's writes held, just before the snapshot is written: work that must
   * happen at the snapshot's instant (a periodic cycle rotates its change maps; a consistency
   * group takes its other members' snapshots). If it fails, no snapshot is taken. A crash
   * after it and before the snapshot is durable leaves its work done and no snapshot.
   */
  readonly atPointInTime?: () => Promise<void>;
}

/** Takes a snapshot of `volume` in `directory` (created; must not exist). */
export async function createSnapshot(volume: Volume, directory: string, options: CreateSnapshotOptions = {}): Promise<Snapshot> {
  const policy = options.reflink ?? 'auto';
  const snapshotId = options.snapshotId ?? randomUUID();
  assert(snapshotIdPattern.test(snapshotId), `snapshot id ${snapshotId} is a UUID`);
  try {
    await mkdir(directory, { recursive: false, mode: 0o700 });
    // The new directory's entry must survive a crash before anything inside it counts.
    await syncDirectory(dirname(directory));
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') await rm(directory, { recursive: true, force: true });
    throw fromSystemError(error, 'create snapshot directory', directory);
  }
  try {
    return await volume.quiesced(async () => {
      const record: SnapshotRecord = {
        snapshotId,
        kind: 'cow',
        volumePath: volume.path,
        sizeBytes: volume.sizeBytes,
        regionBytes: volume.regionBytes,
        createdAt: new Date().toISOString(),
        label: options.label ?? '',
      };
      await options.atPointInTime?.();
      if (policy !== 'never' && volume.backend.kind === 'file' && (await tryReflink(volume, directory, policy))) {
        const reflinkRecord = { ...record, kind: 'reflink' as const };
        await writeRecord(join(directory, recordFile), snapshotRecordKind, reflinkRecord);
        return new ReflinkSnapshot(reflinkRecord, directory, volume);
      }
      return await createCowSnapshot(volume, directory, record);
    });
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
}

/** Creates the store and validation map of a copy-on-write snapshot; closes both if a step fails. */
async function createCowSnapshot(volume: Volume, directory: string, record: SnapshotRecord): Promise<CowSnapshot> {
  let store: FileHandle;
  try {
    store = await open(join(directory, storeFile), 'wx+', 0o600);
  } catch (error) {
    throw fromSystemError(error, 'create snapshot store', join(directory, storeFile));
  }
  let valid: PersistentBitmap | undefined;
  try {
    await store.truncate(volume.sizeBytes);
    await store.sync();
    valid = await createBitmapFile(join(directory, validFile), volume.regionCount, 'snapshot-valid');
    await writeRecord(join(directory, recordFile), snapshotRecordKind, record);
    return CowSnapshot.attach(record, directory, volume, store, valid);
  } catch (error) {
    await valid?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw fromSystemError(error, 'create snapshot store', join(directory, storeFile));
  }
}

async function tryReflink(volume: Volume, directory: string, policy: ReflinkPolicy): Promise<boolean> {
  const target = join(directory, cloneFile);
  try {
    await volume.flush();
    await copyFile(volume.path, target, fsConstants.COPYFILE_FICLONE_FORCE);
    const handle = await open(target, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await syncDirectory(directory);
    return true;
  } catch (error) {
    await rm(target, { force: true });
    const unsupported = ['ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EINVAL', 'ENOSYS', 'ENOTTY'].includes(errnoCode(error) ?? '');
    if (policy === 'always' || !unsupported) {
      throw new TidemarkError(
        unsupported ? 'UNSUPPORTED' : 'IO',
        `cannot reflink-clone ${volume.path} into ${directory}: ${errnoCode(error) ?? String(error)}`,
        unsupported
          ? 'use a filesystem with reflinks (XFS, Btrfs) or let Tidemark use a copy-on-write snapshot'
          : 'check free space and permissions there, then retry',
        { cause: error },
      );
    }
    return false;
  }
}

/** True when both paths name the same file (the record keeps the path the volume was opened by). */
async function samePath(a: string, b: string): Promise<boolean> {
  if (a === b) return true;
  const [canonicalA, canonicalB] = await Promise.all([realpath(a).catch(() => a), realpath(b).catch(() => b)]);
  return canonicalA === canonicalB;
}

async function checkSnapshotOf(record: SnapshotRecord, volume: Volume, directory: string): Promise<void> {
  if (!(await samePath(record.volumePath, volume.path))) {
    throw new TidemarkError(
      'USAGE',
      `snapshot ${directory} was taken of ${record.volumePath}, not of ${volume.path}`,
      'open it with the volume it was taken of',
    );
  }
  if (record.sizeBytes !== volume.sizeBytes || record.regionBytes !== volume.regionBytes) {
    throw new TidemarkError('SIZE_MISMATCH', `snapshot ${directory} does not match volume ${volume.path}`, 'open it with the volume it was taken of');
  }
}

/** Reopens a snapshot after a restart; a copy-on-write one resumes tracking `volume`. */
export async function openSnapshot(volume: Volume, directory: string): Promise<Snapshot> {
  const record = await requireRecord(
    join(directory, recordFile),
    snapshotRecordKind,
    'the snapshot directory is incomplete; delete it and take a new snapshot',
  );
  await checkSnapshotOf(record, volume, directory);
  if (record.kind === 'reflink') return new ReflinkSnapshot(record, directory, volume);
  const { bitmap, report } = await openBitmapFile(join(directory, validFile));
  if (report.recovered.length > 0) {
    await bitmap.close();
    // For a validation map neither direction is safe: a wrong bit reads the wrong bytes.
    throw new TidemarkError(
      'METADATA_CORRUPT',
      `snapshot ${directory} is damaged: ${report.recovered.length} segment(s) of its validation map failed verification (${report.recovered[0]!.reason})`,
      'delete this snapshot and take a new one; resync from a fresh snapshot',
    );
  }
  let store: FileHandle;
  try {
    store = await open(join(directory, storeFile), 'r+');
  } catch (error) {
    await bitmap.close();
    throw fromSystemError(error, 'open snapshot store', directory);
  }
  // Attached with the volume still, so no write already past the hooks lands uncopied.
  return volume.quiesced(async () => CowSnapshot.attach(record, directory, volume, store, bitmap));
}

/** Where a region's snapshot bytes are now, and whether that is the live volume. */
export interface SnapshotRegionLocation {
  readonly location: RegionLocation;
  readonly onVolume: boolean;
}

export abstract class SnapshotBase implements Snapshot {
  readonly stats: SnapshotStats = { regionsCopied: 0 };
  /** Set as close() starts, before tracking stops: nothing read after that can be trusted. */
  private ended: 'closed' | 'deleted' | undefined;

  constructor(
    readonly record: SnapshotRecord,
    readonly directory: string,
    protected readonly volume: Volume,
  ) {}

  /**
   * Where region `regionIndex` lives now, and whether that is the live volume. A region on
   * the volume may be copied aside and overwritten right after: a reader that does not hold
   * the volume still re-checks `copiedAside` once it has read (signSnapshot does).
   */
  abstract whereIs(regionIndex: number): SnapshotRegionLocation;
  /** True once the region's snapshot bytes are in the store (never true for reflink clones). */
  abstract copiedAside(regionIndex: number): boolean;
  abstract copiedRegions(): number | undefined;
  abstract close(options?: SnapshotCloseOptions): Promise<void>;
  /** The bytes of [offsetBytes, offsetBytes + bytes) as of the snapshot, the span checked; `read` checks the snapshot is open around it. */
  protected abstract readSpan(offsetBytes: number, bytes: number): Promise<Buffer>;

  get regionCount(): number {
    return this.volume.regionCount;
  }

  locate(regionIndex: number): RegionLocation {
    return this.whereIs(regionIndex).location;
  }

  /** Marks the snapshot closed (or deleted); false when it already was. Call first thing in close(). */
  protected markClosed(options: SnapshotCloseOptions = {}): boolean {
    if (this.ended) return false;
    this.ended = options.deleted ? 'deleted' : 'closed';
    return true;
  }

  checkOpen(): void {
    if (this.ended === 'deleted') {
      throw new TidemarkError(
        'NOT_FOUND',
        `snapshot ${this.record.snapshotId} of ${this.volume.path} was deleted while being read`,
        'take a new snapshot and read that one; delete a snapshot only once nothing reads it',
      );
    }
    if (this.ended === 'closed') {
      throw new TidemarkError(
        'CANCELLED',
        `snapshot ${this.record.snapshotId} of ${this.volume.path} was closed while being read (its volume was closed)`,
        'read it again once the agent has the volume open again',
      );
    }
  }

  async read(offsetBytes: number, bytes: number): Promise<Buffer> {
    this.checkOpen();
    this.checkSpan(offsetBytes, bytes);
    let data: Buffer;
    try {
      data = await this.readSpan(offsetBytes, bytes);
    } catch (error) {
      this.checkOpen(); // a store closed under the read fails it: say why
      throw error;
    }
    // Closed meanwhile: a region read from the volume may already hold a newer write.
    this.checkOpen();
    return data;
  }

  async readRegion(regionIndex: number): Promise<Buffer> {
    const span = this.volume.geometry.region(regionIndex);
    return this.read(span.offsetBytes, span.bytes);
  }

  protected checkSpan(offsetBytes: number, bytes: number): void {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || !Number.isSafeInteger(bytes) || bytes < 0 || offsetBytes + bytes > this.record.sizeBytes) {
      throw new TidemarkError('USAGE', `read of ${bytes} bytes at ${offsetBytes} is outside snapshot ${this.directory}`, 'address bytes within the volume');
    }
  }

  async delete(): Promise<void> {
    try {
      await this.close({ deleted: true });
    } finally {
      await rm(this.directory, { recursive: true, force: true });
    }
  }
}

class ReflinkSnapshot extends SnapshotBase {
  private handle: Promise<FileHandle> | undefined;

  private clone(): Promise<FileHandle> {
    this.handle ??= open(join(this.directory, cloneFile), 'r');
    return this.handle;
  }

  protected async readSpan(offsetBytes: number, bytes: number): Promise<Buffer> {
    const buffer = Buffer.alloc(bytes);
    await readFully(await this.clone(), buffer, offsetBytes);
    return buffer;
  }

  whereIs(regionIndex: number): SnapshotRegionLocation {
    const span = this.volume.geometry.region(regionIndex);
    return { location: { path: join(this.directory, cloneFile), offsetBytes: span.offsetBytes, bytes: span.bytes }, onVolume: false };
  }

  copiedAside(): boolean {
    return false;
  }

  copiedRegions(): undefined {
    return undefined;
  }

  async close(options?: SnapshotCloseOptions): Promise<void> {
    this.markClosed(options);
    const handle = this.handle;
    this.handle = undefined;
    // A clone that never opened has nothing to close.
    const opened = await handle?.catch(() => undefined);
    await opened?.close();
  }
}

async function readFully(handle: FileHandle, buffer: Buffer, offsetBytes: number): Promise<void> {
  let done = 0;
  while (done < buffer.length) {
    const { bytesRead } = await handle.read(buffer, done, buffer.length - done, offsetBytes + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  buffer.fill(0, done);
}

/**
 * Copy-on-write: the hook copies a region's old bytes to the store, syncs the store, then
 * sets and destages the region's validation bit, and only then lets the volume write go on.
 * A crash at any point leaves either the region unvalidated with the volume unchanged, or
 * the region validated with its old bytes safe in the store.
 */
class CowSnapshot extends SnapshotBase implements WriteHook {
  readonly name = 'snapshot-cow';
  private readonly copying = new Map<number, Promise<void>>();
  private readonly scratches: Buffer[] = [];
  private detach: (() => void) | undefined;

  private constructor(
    record: SnapshotRecord,
    directory: string,
    volume: Volume,
    private readonly store: FileHandle,
    private readonly valid: PersistentBitmap,
  ) {
    super(record, directory, volume);
  }

  static attach(record: SnapshotRecord, directory: string, volume: Volume, store: FileHandle, valid: PersistentBitmap): CowSnapshot {
    const snapshot = new CowSnapshot(record, directory, volume, store, valid);
    snapshot.detach = volume.addWriteHook(snapshot);
    return snapshot;
  }

  async beforeWrite(firstRegion: number, lastRegion: number): Promise<void> {
    const regions: number[] = [];
    for (let r = firstRegion; r <= lastRegion; r++) regions.push(r);
    await this.copyBefore(regions);
  }

  /**
   * A batch of writes announced (`Volume.prepareWrites`): every region of it not yet copied
   * aside is copied in one job — the store synced once and the validation map destaged once
   * for the batch, instead of once per first write — so the writes then pass this hook at once.
   */
  async prepareWrites(regionIndexes: readonly number[]): Promise<void> {
    await this.copyBefore([...new Set(regionIndexes)].sort((a, b) => a - b));
  }

  /** Resolves once every region of `regions` (distinct) has its snapshot bytes durable in the store. */
  private async copyBefore(regions: readonly number[]): Promise<void> {
    const waits: Promise<void>[] = [];
    const mine: number[] = [];
    for (const r of regions) {
      const running = this.copying.get(r);
      if (running) waits.push(running);
      else if (!this.valid.durableGet(r)) mine.push(r);
    }
    if (mine.length > 0) {
      const job = this.copyAside(mine);
      for (const r of mine) this.copying.set(r, job);
      try {
        await job;
      } finally {
        for (const r of mine) this.copying.delete(r);
      }
    }
    await Promise.all(waits);
  }

  /**
   * Copies `regions` aside: each region's current bytes into the store (up to
   * `copyReadsInFlight` at a time, through reused scratch buffers; all-zero regions are not
   * stored: the store is sparse), then one store sync, then the validation bits set and
   * destaged once. Only then does any of their writes go on (docs/snapshot-format.md).
   */
  private async copyAside(regions: readonly number[]): Promise<void> {
    let stored = 0;
    let next = 0;
    const copyNext = async (scratch: Buffer): Promise<void> => {
      while (next < regions.length) {
        const span = this.volume.geometry.region(regions[next++]!);
        const data = scratch.subarray(0, span.bytes);
        await this.volume.readInto(data, span.offsetBytes);
        this.stats.regionsCopied += 1;
        // Zeros (a region never written, say) need no copy: the store is sparse, its holes read as zeros.
        if (isAllZero(data)) continue;
        stored += 1;
        let done = 0;
        try {
          while (done < data.length) done += (await this.store.write(data, done, data.length - done, span.offsetBytes + done)).bytesWritten;
        } catch (error) {
          throw fromSystemError(error, 'copy a region into snapshot store', join(this.directory, storeFile));
        }
      }
    };
    const scratches = Array.from({ length: Math.min(copyReadsInFlight, regions.length) }, () => this.takeScratch());
    try {
      await Promise.all(scratches.map(copyNext));
    } finally {
      for (const scratch of scratches) this.returnScratch(scratch);
    }
    if (stored > 0) await this.store.datasync();
    for (const r of regions) this.valid.set(r);
    await this.valid.destage();
    for (const r of regions) assert(this.valid.durableGet(r), 'validation bit durable before the volume write');
  }

  private takeScratch(): Buffer {
    return this.scratches.pop() ?? Buffer.allocUnsafe(this.volume.regionBytes);
  }

  /** Keeps a few region-sized buffers for the next copies (a fresh 1 MiB buffer costs a page fault per page). */
  private returnScratch(scratch: Buffer): void {
    if (this.scratches.length < copyReadsInFlight && scratch.length <= scratchKeptBytesMax) this.scratches.push(scratch);
  }

  protected async readSpan(offsetBytes: number, bytes: number): Promise<Buffer> {
    const result = Buffer.alloc(bytes);
    if (bytes === 0) return result;
    const { first, last } = this.volume.geometry.regionsOf(offsetBytes, bytes);
    for (let r = first; r <= last; r++) {
      const span = this.volume.geometry.region(r);
      const from = Math.max(offsetBytes, span.offsetBytes);
      const to = Math.min(offsetBytes + bytes, span.offsetBytes + span.bytes);
      const target = result.subarray(from - offsetBytes, to - offsetBytes);
      if (!this.valid.bits.get(r)) {
        await this.volume.backend.pread(target, from);
        // The volume is written only after the bit is set; if it is still clear, the bytes
        // just read are the snapshot's. Otherwise a copy raced us: read the store instead.
        if (!this.valid.bits.get(r)) continue;
        await this.copying.get(r);
      }
      await readFully(this.store, target, from);
    }
    return result;
  }

  whereIs(regionIndex: number): SnapshotRegionLocation {
    const span = this.volume.geometry.region(regionIndex);
    const onVolume = !this.copiedAside(regionIndex);
    return { location: { path: onVolume ? this.volume.path : join(this.directory, storeFile), offsetBytes: span.offsetBytes, bytes: span.bytes }, onVolume };
  }

  /** The bit is set in memory once the store holds the region, and before the volume write. */
  copiedAside(regionIndex: number): boolean {
    return this.valid.bits.get(regionIndex);
  }

  copiedRegions(): number {
    return this.valid.bits.popcount();
  }

  async close(options?: SnapshotCloseOptions): Promise<void> {
    if (!this.markClosed(options)) return;
    const detach = this.detach;
    this.detach = undefined;
    try {
      // Under the gate, so once it returns no write is running this hook and none will.
      if (detach) await this.volume.quiesced(async () => detach());
      // A failed copy already failed its write; closing must still release the files.
      await Promise.allSettled(this.copying.values());
    } finally {
      try {
        await this.valid.close();
      } finally {
        await this.store.close();
      }
    }
  }
}

/** Regions read at once while copying a batch aside. */
const copyReadsInFlight = 4;
/** Scratch buffers above this size are not kept between copies. */
const scratchKeptBytesMax = 4 * 1024 * 1024;

let zeroBytes = Buffer.alloc(0);

/** One memcmp against a shared zero buffer. */
function isAllZero(data: Buffer): boolean {
  if (zeroBytes.length < data.length) zeroBytes = Buffer.alloc(data.length);
  return data.compare(zeroBytes, 0, data.length) === 0;
}
