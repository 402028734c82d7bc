// Named tracking bitmaps of a volume ("change maps", seed 004): each records every region
// written through the volume since it was created or last cleared, durably before the write
// lands. Periodic replication's current/next maps will be two of them. An index record maps
// each name to its bitmap file, so a swap of two names is one atomic record write.
// Layout: docs/home-layout.md.

import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { assert } from '../assert';
import { createBitmapFile, openBitmapFile, type Bitset, type PersistentBitmap } from '../bitmap';
import { changeMapsPerVolumeMax } from '../constants';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { createDirectories } from '../fsync';
import { defineRecord, readRecord, writeRecord } from '../store';
import type { Volume, WriteHook } from '../volume';

export const changeMapNamePattern = /^[a-z0-9-]{1,32}$/;
const bitmapIdPattern = /^[0-9a-f]{16}$/;

export const changeMapsRecordKind = defineRecord(
  'tidemark/change-maps',
  1,
  z.object({ maps: z.array(z.object({ name: z.string().regex(changeMapNamePattern), bitmapId: z.string().regex(bitmapIdPattern) })) }),
);

export interface ChangeMapInfo {
  readonly name: string;
  /** The bitmap file's id: a swap exchanges the ids of two names. */
  readonly bitmapId: string;
  readonly regionCount: number;
  readonly setCount: number;
}

interface Entry {
  readonly bitmapId: string;
  readonly bitmap: PersistentBitmap;
}

/** Refuses a name other than 1–32 of a-z, 0-9 and '-'. */
export function checkChangeMapName(name: string): void {
  if (!changeMapNamePattern.test(name)) {
    throw new TidemarkError(
      'USAGE',
      `"${name.slice(0, 64)}" is not a bitmap name: use 1 to 32 characters from a-z, 0-9 and -`,
      'name the bitmap like "next" or "failback-2"',
    );
  }
}

/**
 * Every bitmap records every write (one write hook for all), and every change to the set of
 * maps or to their bits runs with the volume quiesced: a write in flight has its bit set but
 * its data not yet landed, so clearing that bit, or swapping maps, under it would lose it.
 */
export class ChangeMaps implements WriteHook {
  readonly name = 'change-maps';
  private readonly maps = new Map<string, Entry>();
  private detach: (() => void) | undefined;
  private closed = false;

  private constructor(
    private readonly volume: Volume,
    private readonly directory: string,
  ) {}

  private get recordPath(): string {
    return join(this.directory, 'bitmaps.json');
  }

  private get filesDirectory(): string {
    return join(this.directory, 'bitmaps');
  }

  private filePath(bitmapId: string): string {
    return join(this.filesDirectory, `${bitmapId}.tmbm`);
  }

  /** Opens the change maps of `volume` kept in `directory` (its catalog directory) and starts recording. */
  static async open(volume: Volume, directory: string): Promise<ChangeMaps> {
    const maps = new ChangeMaps(volume, directory);
    try {
      await maps.load();
    } catch (error) {
      await maps.closeBitmaps();
      throw error;
    }
    // Attached at a quiet moment: no write may be past the hooks while recording starts.
    await volume.quiesced(async () => {
      maps.detach = volume.addWriteHook(maps);
    });
    return maps;
  }

  private async load(): Promise<void> {
    const record = await readRecord(this.recordPath, changeMapsRecordKind);
    for (const { name, bitmapId } of record?.maps ?? []) {
      // Segments that fail verification load all-set: a superset only costs a resend.
      const { bitmap } = await openBitmapFile(this.filePath(bitmapId));
      this.maps.set(name, { bitmapId, bitmap });
      if (bitmap.bitCount !== this.volume.regionCount) {
        throw new TidemarkError(
          'METADATA_CORRUPT',
          `bitmap "${name}" (${bitmap.path}) has ${bitmap.bitCount} regions but volume ${this.volume.path} has ${this.volume.regionCount}`,
          `move ${this.recordPath} aside to drop the volume's bitmaps, then create them again`,
        );
      }
    }
    await this.removeOrphans();
  }

  /** Files no record names: a create or delete interrupted by a crash. */
  private async removeOrphans(): Promise<void> {
    let files: string[];
    try {
      files = await readdir(this.filesDirectory);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return;
      throw fromSystemError(error, 'list bitmaps in', this.filesDirectory);
    }
    const kept = new Set([...this.maps.values()].map((e) => `${e.bitmapId}.tmbm`));
    for (const file of files) if (!kept.has(file)) await rm(join(this.filesDirectory, file), { force: true });
  }

  beforeWrite(firstRegion: number, lastRegion: number): Promise<void> | undefined {
    const end = lastRegion + 1;
    let pending: Promise<void>[] | undefined;
    for (const { bitmap } of this.maps.values()) if (!bitmap.rangeSetDurably(firstRegion, end)) (pending ??= []).push(bitmap.setRangeDurable(firstRegion, end));
    return pending && Promise.all(pending).then(() => undefined);
  }

  private entry(name: string): Entry {
    checkChangeMapName(name);
    const entry = this.maps.get(name);
    if (!entry)
      throw new TidemarkError('NOT_FOUND', `volume ${this.volume.path} has no bitmap "${name}"`, 'list the bitmaps of the volume, or create this one first');
    return entry;
  }

  private info(name: string): ChangeMapInfo {
    const { bitmapId, bitmap } = this.entry(name);
    return { name, bitmapId, regionCount: bitmap.bitCount, setCount: bitmap.bits.popcount() };
  }

  private async writeIndex(): Promise<void> {
    const maps = [...this.maps].map(([name, e]) => ({ name, bitmapId: e.bitmapId })).sort((a, b) => a.name.localeCompare(b.name));
    await writeRecord(this.recordPath, changeMapsRecordKind, { maps });
  }

  list(): ChangeMapInfo[] {
    return [...this.maps.keys()].sort().map((name) => this.info(name));
  }

  /** Creates an empty map that records every write from now on. */
  async create(name: string): Promise<ChangeMapInfo> {
    checkChangeMapName(name);
    return this.volume.quiesced(async () => {
      if (this.maps.has(name))
        throw new TidemarkError('ALREADY_EXISTS', `volume ${this.volume.path} already has a bitmap "${name}"`, 'use it, or delete it first');
      if (this.maps.size >= changeMapsPerVolumeMax) {
        throw new TidemarkError(
          'USAGE',
          `volume ${this.volume.path} already has ${changeMapsPerVolumeMax} bitmaps`,
          'delete bitmaps that are no longer needed',
        );
      }
      const bitmapId = randomBytes(8).toString('hex');
      await createDirectories(this.filesDirectory, 0o700);
      const bitmap = await createBitmapFile(this.filePath(bitmapId), this.volume.regionCount, 'change-map');
      this.maps.set(name, { bitmapId, bitmap });
      assert(this.maps.size <= changeMapsPerVolumeMax, 'change maps within their limit');
      try {
        await this.writeIndex();
      } catch (error) {
        this.maps.delete(name);
        await bitmap.close();
        await rm(this.filePath(bitmapId), { force: true });
        throw error;
      }
      return this.info(name);
    });
  }

  /** Whether region `regionIndex` is marked (a write in flight has already marked it). */
  marked(name: string, regionIndex: number): boolean {
    return this.entry(name).bitmap.bits.get(regionIndex);
  }

  /** A copy of the map's bits (bits of writes in flight are already set). */
  read(name: string): Bitset {
    return this.entry(name).bitmap.bits.clone();
  }

  /**
   * A periodic cycle's rotation, for a caller holding the volume's writes (a snapshot at the
   * same instant): `current` takes what `next` recorded (a union: what a failed cycle left in
   * `current` stays), then `next` starts empty. `current` is durable first, so a crash in
   * between leaves both set (sent twice, never lost).
   */
  async rotateQuiesced(current: string, next: string): Promise<void> {
    const into = this.entry(current).bitmap;
    const from = this.entry(next).bitmap;
    assert(into !== from, 'two names never share a bitmap');
    into.bits.unionWith(from.bits);
    into.markChanged(0, into.bitCount);
    await into.destage();
    from.clearRange(0, from.bitCount);
    await from.destage();
  }

  /** Sets the given regions, durably, as writes to them would have (a failback's resync map seeding a periodic pair's next map). */
  async mark(name: string, regionIndexes: readonly number[]): Promise<void> {
    const { bitmap } = this.entry(name);
    for (const r of regionIndexes) {
      if (!Number.isSafeInteger(r) || r < 0 || r >= bitmap.bitCount)
        throw new TidemarkError(
          'USAGE',
          `region ${r} is outside bitmap "${name}" of ${this.volume.path} (${bitmap.bitCount} regions)`,
          'mark regions within the volume',
        );
    }
    for (const r of regionIndexes) bitmap.set(r);
    await bitmap.destage(); // one sync for all of them (a clear racing it may have cleared some: its business)
  }

  /** Clears the given regions (all when absent) and makes that durable. */
  async clear(name: string, regionIndexes?: readonly number[]): Promise<void> {
    const regionCount = this.entry(name).bitmap.bitCount;
    for (const r of regionIndexes ?? []) {
      if (!Number.isSafeInteger(r) || r < 0 || r >= regionCount) {
        throw new TidemarkError(
          'USAGE',
          `region ${r} is outside bitmap "${name}" of ${this.volume.path} (${regionCount} regions)`,
          'clear regions within the volume',
        );
      }
    }
    await this.volume.quiesced(async () => {
      const { bitmap } = this.entry(name);
      if (regionIndexes === undefined) bitmap.clearRange(0, bitmap.bitCount);
      else for (const r of regionIndexes) bitmap.clear(r);
      await bitmap.destage();
      // Quiesced: no write can have set a bit since.
      assert(regionIndexes !== undefined || !bitmap.bits.anySet(), 'a cleared map is empty');
    });
  }

  async delete(name: string): Promise<void> {
    this.entry(name);
    await this.volume.quiesced(async () => {
      const entry = this.entry(name);
      this.maps.delete(name);
      try {
        await this.writeIndex();
      } catch (error) {
        this.maps.set(name, entry);
        throw error;
      }
      await entry.bitmap.close();
      await rm(this.filePath(entry.bitmapId), { force: true });
    });
  }

  /**
   * Exchanges the bitmaps of names `a` and `b`. Crash-safe: the index record is replaced
   * atomically, and both bitmaps record every write throughout, so either mapping that
   * survives a crash is right.
   */
  async swap(a: string, b: string): Promise<void> {
    this.checkSwap(a, b);
    await this.volume.quiesced(() => this.swapQuiesced(a, b));
  }

  /** Throws what `swap` would for these names, before any work. */
  checkSwap(a: string, b: string): void {
    this.entry(a);
    this.entry(b);
    if (a === b) throw new TidemarkError('USAGE', `cannot swap bitmap "${a}" with itself`, 'name two different bitmaps');
  }

  /** `swap` for a caller that already holds the volume's writes (`volume.quiesced`): a snapshot taken at the same instant. */
  async swapQuiesced(a: string, b: string): Promise<void> {
    const [entryA, entryB] = [this.entry(a), this.entry(b)];
    assert(entryA.bitmapId !== entryB.bitmapId, 'two names never share a bitmap');
    this.maps.set(a, entryB).set(b, entryA);
    try {
      await this.writeIndex();
    } catch (error) {
      this.maps.set(a, entryA).set(b, entryB);
      throw error;
    }
  }

  /** Stops recording and closes every map; not from inside `volume.quiesced()`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const detach = this.detach;
    this.detach = undefined;
    if (detach) await this.volume.quiesced(async () => detach());
    await this.closeBitmaps();
  }

  private async closeBitmaps(): Promise<void> {
    const results = await Promise.allSettled([...this.maps.values()].map((e) => e.bitmap.close()));
    this.maps.clear();
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  }
}
