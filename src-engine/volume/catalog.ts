// The volume catalog in a Tidemark home: which volumes Tidemark created or adopted, with
// their region size and tracked realization map. Layout: docs/home-layout.md.

import { createHash } from 'node:crypto';
import { open, readdir, realpath, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { createBitmapFile, openBitmapFile, type PersistentBitmap } from '../bitmap';
import { regionBytesDefault } from '../constants';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { createDirectories, createUserDirectories, syncDirectory } from '../fsync';
import { defineRecord, readRecord, writeRecord } from '../store';
import { FileBackend } from './backend';
import { RegionGeometry, validateRegionBytes, validateRegionCount, validateVolumeBytes } from './geometry';
import { RealizedTracker, zeroScanRealized } from './realized';
import { Volume } from './volume';

export const volumeRecordKind = defineRecord(
  'tidemark/volume',
  1,
  z.object({
    volumeId: z.string().regex(/^[0-9a-f]{16}$/),
    path: z.string().min(1),
    kind: z.enum(['file', 'block']),
    sizeBytes: z.number().int().positive(),
    regionBytes: z.number().int().positive(),
    createdAt: z.string(),
  }),
);
export type VolumeRecord = z.infer<typeof volumeRecordKind.schema>;

export interface OpenedVolume {
  readonly volume: Volume;
  readonly record: VolumeRecord | undefined;
  readonly realized: RealizedTracker | undefined;
  close(): Promise<void>;
}

export interface VolumeInfo {
  readonly path: string;
  readonly kind: 'file' | 'block';
  readonly volumeId: string | null;
  readonly sizeBytes: number;
  readonly regionBytes: number;
  readonly regions: number;
  readonly realizedRegions: number;
  readonly realizedSource: 'tracked' | 'zero-scan';
}

/** Closes the volume, then its realization map, even when the first close fails. */
async function closeBoth(volume: Volume, bitmap: PersistentBitmap | undefined): Promise<void> {
  try {
    await volume.close();
  } finally {
    await bitmap?.close();
  }
}

export class VolumeCatalog {
  constructor(readonly homeDir: string) {}

  /** A stable id for a volume path: the first 64 bits of SHA-256 of its canonical path. */
  static volumeIdFor(canonicalPath: string): string {
    return createHash('sha256').update(canonicalPath).digest('hex').slice(0, 16);
  }

  volumeDir(volumeId: string): string {
    return join(this.homeDir, 'volumes', volumeId);
  }

  private recordPath(volumeId: string): string {
    return join(this.volumeDir(volumeId), 'volume.json');
  }

  realizedPath(volumeId: string): string {
    return join(this.volumeDir(volumeId), 'realized.tmbm');
  }

  /** Where the volume's snapshots live, one directory each (snapshot/ owns what is inside). */
  snapshotsDir(volumeId: string): string {
    return join(this.volumeDir(volumeId), 'snapshots');
  }

  /** Creates a sparse file volume of `sizeBytes` at `path` and registers it. Refuses to overwrite. */
  async create(path: string, sizeBytes: number, regionBytes = regionBytesDefault): Promise<VolumeRecord> {
    validateVolumeBytes(sizeBytes);
    validateRegionBytes(regionBytes);
    validateRegionCount(sizeBytes, regionBytes);
    const absolutePath = resolve(path);
    await this.createSparseFile(absolutePath, sizeBytes);
    let volumeDirectory: string | undefined;
    try {
      const canonicalPath = await realpath(absolutePath);
      const volumeId = VolumeCatalog.volumeIdFor(canonicalPath);
      volumeDirectory = this.volumeDir(volumeId);
      // The file did not exist, so metadata under its id (snapshots, bitmaps) is a deleted file's.
      await rm(volumeDirectory, { recursive: true, force: true });
      await createDirectories(volumeDirectory, 0o700);
      const geometry = new RegionGeometry(sizeBytes, regionBytes);
      await (await createBitmapFile(this.realizedPath(volumeId), geometry.regionCount, 'realized')).close();
      const record: VolumeRecord = { volumeId, path: canonicalPath, kind: 'file', sizeBytes, regionBytes, createdAt: new Date().toISOString() };
      await writeRecord(this.recordPath(volumeId), volumeRecordKind, record);
      return record;
    } catch (error) {
      // Nothing half-made stays behind: the new file and its metadata go together.
      await rm(absolutePath, { force: true });
      if (volumeDirectory) await rm(volumeDirectory, { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * Registers an existing file or block device (its data untouched): a record, and a
   * realization map seeded by a zero scan so it is a superset of the regions holding data.
   * Registering an already-registered volume returns its record when the region size agrees.
   */
  async adopt(path: string, regionBytes = regionBytesDefault, options: { signal?: AbortSignal } = {}): Promise<VolumeRecord> {
    validateRegionBytes(regionBytes);
    const existing = await this.lookup(path);
    if (existing) {
      if (existing.regionBytes !== regionBytes) {
        throw new TidemarkError(
          'SIZE_MISMATCH',
          `volume ${existing.path} is registered with regions of ${existing.regionBytes} bytes, not ${regionBytes}`,
          `use --region-size ${existing.regionBytes}, or remove the volume from the home first`,
        );
      }
      return existing;
    }
    const canonicalPath = await realpath(resolve(path));
    const backend = await FileBackend.open(canonicalPath, { readOnly: true });
    const volume = new Volume(backend, regionBytes);
    const volumeId = VolumeCatalog.volumeIdFor(canonicalPath);
    try {
      validateRegionCount(backend.sizeBytes, regionBytes);
      const realizedBits = await zeroScanRealized(volume, options);
      await rm(this.volumeDir(volumeId), { recursive: true, force: true }); // a deleted file's leftovers
      await createDirectories(this.volumeDir(volumeId), 0o700);
      const bitmap = await createBitmapFile(this.realizedPath(volumeId), volume.regionCount, 'realized');
      try {
        bitmap.bits.unionWith(realizedBits);
        bitmap.markChanged(0, volume.regionCount);
        await bitmap.destage();
      } finally {
        await bitmap.close();
      }
      const record: VolumeRecord = {
        volumeId,
        path: canonicalPath,
        kind: backend.kind,
        sizeBytes: backend.sizeBytes,
        regionBytes,
        createdAt: new Date().toISOString(),
      };
      await writeRecord(this.recordPath(volumeId), volumeRecordKind, record);
      return record;
    } catch (error) {
      await rm(this.volumeDir(volumeId), { recursive: true, force: true }).catch(() => undefined);
      throw error;
    } finally {
      await volume.close();
    }
  }

  private async createSparseFile(path: string, sizeBytes: number): Promise<void> {
    try {
      for (const created of await createUserDirectories(dirname(path))) await syncDirectory(dirname(created));
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.truncate(sizeBytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await syncDirectory(dirname(path));
    } catch (error) {
      if (errnoCode(error) === 'EEXIST') {
        throw new TidemarkError(
          'ALREADY_EXISTS',
          `cannot create volume ${path}: a file is already there`,
          'choose another path, or remove the old file if its data is not needed',
        );
      }
      await rm(path, { force: true }).catch(() => undefined);
      throw fromSystemError(error, 'create volume', path);
    }
  }

  /** The catalog record for `path`, if Tidemark registered it. */
  async lookup(path: string): Promise<VolumeRecord | undefined> {
    let canonicalPath: string;
    try {
      canonicalPath = await realpath(resolve(path));
    } catch (error) {
      throw fromSystemError(error, 'open volume', path);
    }
    return readRecord(this.recordPath(VolumeCatalog.volumeIdFor(canonicalPath)), volumeRecordKind);
  }

  /** Every volume registered in this home. Unreadable records are skipped (reported by open). */
  async list(): Promise<VolumeRecord[]> {
    let ids: string[];
    try {
      ids = await readdir(join(this.homeDir, 'volumes'));
    } catch {
      return [];
    }
    const records = await Promise.all(ids.map((id) => readRecord(this.recordPath(id), volumeRecordKind).catch(() => undefined)));
    return records.filter((r): r is VolumeRecord => r !== undefined).sort((a, b) => a.path.localeCompare(b.path));
  }

  /** Removes a volume's registration (its metadata); the volume's data is not touched. */
  async forget(path: string): Promise<void> {
    const record = await this.lookup(path).catch(() => undefined);
    if (record) await rm(this.volumeDir(record.volumeId), { recursive: true, force: true });
  }

  /** Opens a volume; a registered one gets its region size and realization tracking. */
  async open(path: string, options: { readOnly?: boolean; regionBytes?: number } = {}): Promise<OpenedVolume> {
    const record = await this.lookup(path);
    const backend = await FileBackend.open(resolve(path), { readOnly: options.readOnly ?? false });
    let bitmap: PersistentBitmap | undefined;
    try {
      if (record && backend.sizeBytes !== record.sizeBytes) {
        throw new TidemarkError(
          'SIZE_MISMATCH',
          `volume ${path} is ${backend.sizeBytes} bytes but was registered with ${record.sizeBytes}`,
          'the file was resized outside Tidemark; restore its size, or remove its record from the home to adopt it afresh',
        );
      }
      const regionBytes = record?.regionBytes ?? options.regionBytes ?? regionBytesDefault;
      const volume = new Volume(backend, regionBytes, { volumeId: record?.volumeId });
      if (record) bitmap = await this.openRealized(record, volume.regionCount, options.readOnly ?? false);
      const writable = !(options.readOnly ?? false);
      const realized = bitmap ? new RealizedTracker(bitmap, writable ? volume : undefined) : undefined;
      if (realized && writable) volume.addWriteHook(realized);
      return { volume, record, realized, close: () => closeBoth(volume, bitmap) };
    } catch (error) {
      await bitmap?.close().catch(() => undefined);
      await backend.close();
      throw error;
    }
  }

  /** Opens a registered volume's realization map, refusing one made for another region count. */
  private async openRealized(record: VolumeRecord, regionCount: number, readOnly: boolean): Promise<PersistentBitmap> {
    const path = this.realizedPath(record.volumeId);
    const { bitmap } = await openBitmapFile(path, readOnly ? 'r' : 'r+');
    if (bitmap.bitCount !== regionCount) {
      await bitmap.close().catch(() => undefined);
      throw new TidemarkError(
        'METADATA_CORRUPT',
        `realization map ${path} has ${bitmap.bitCount} regions but volume ${record.path} has ${regionCount}`,
        'the map belongs to another geometry; remove the volume from the home (its data is untouched) and register it again',
      );
    }
    return bitmap;
  }

  /** Size, regions and realization of a volume (tracked when registered, zero-scanned otherwise). */
  async info(path: string, options: { regionBytes?: number; signal?: AbortSignal } = {}): Promise<VolumeInfo> {
    const opened = await this.open(path, { readOnly: true, regionBytes: options.regionBytes });
    try {
      const { volume, record, realized } = opened;
      const realizedBits = realized ? realized.snapshot() : await zeroScanRealized(volume, { signal: options.signal });
      return {
        path: record?.path ?? resolve(path),
        kind: volume.backend.kind,
        volumeId: record?.volumeId ?? null,
        sizeBytes: volume.sizeBytes,
        regionBytes: volume.regionBytes,
        regions: volume.regionCount,
        realizedRegions: realizedBits.popcount(),
        realizedSource: realized ? 'tracked' : 'zero-scan',
      };
    } finally {
      await opened.close();
    }
  }
}
