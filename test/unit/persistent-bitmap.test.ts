// PersistentBitmap regressions found in review, each replayed step by step on a simulated
// disk: recovery sequences across several crashes, and a failed fdatasync.
import { describe, expect, it } from 'vitest';
import { MoosPredictor, PersistentBitmap } from '../../src-engine/bitmap';
import { bitmapSlotBytes, bitmapSuperblockBytes } from '../../src-engine/constants';
import { CrashError, SimFile, SyncFailure } from '../sim/sim-file';

/** Runs a destage whose first write is torn after `tornBytes` bytes by a crash. */
async function tornDestage(bitmap: PersistentBitmap, file: SimFile, tornBytes = 20): Promise<void> {
  file.armCrash(0, tornBytes);
  await expect(bitmap.destage()).rejects.toBeInstanceOf(CrashError);
}

async function restart(file: SimFile): Promise<{ file: SimFile; bitmap: PersistentBitmap }> {
  const next = SimFile.from(file.volatile);
  return { file: next, bitmap: (await PersistentBitmap.load(next)).bitmap };
}

function slotBytes(image: Uint8Array, slot: 0 | 1): Uint8Array {
  const offset = bitmapSuperblockBytes + slot * bitmapSlotBytes;
  return image.slice(offset, offset + bitmapSlotBytes);
}

describe('PersistentBitmap recovery', () => {
  it('a second recovery never lets the stale surviving slot outrank the new image', async () => {
    // Life 1: a crash tears a destage of segment 0.
    let file = new SimFile();
    let bitmap = await PersistentBitmap.create(file, 1000, 'moos');
    bitmap.set(1);
    await bitmap.destage();
    bitmap.set(2);
    await tornDestage(bitmap, file);
    // Life 2: recovered; two destages; another crash tears the next one.
    ({ file, bitmap } = await restart(file));
    bitmap.clearRange(0, 1000);
    bitmap.set(10);
    await bitmap.destage();
    bitmap.set(11);
    await bitmap.destage();
    bitmap.set(12);
    await tornDestage(bitmap, file);
    // Life 3: recovered again; the first image written must outrank the surviving slot.
    ({ file, bitmap } = await restart(file));
    bitmap.clearRange(0, 1000);
    bitmap.set(300);
    await bitmap.destage();
    await bitmap.ensureDurable(300, 301);
    expect(bitmap.durableGet(300)).toBe(true);
    const { bitmap: afterPowerLoss, report } = await PersistentBitmap.load(SimFile.from(file.durable));
    expect(report.recovered).toEqual([]);
    expect([...afterPowerLoss.bits.indexes()]).toEqual([300]);
  });
});

class FlakySyncFile extends SimFile {
  failNextSync = false;
  constructor() {
    super();
    this.failSync = () => {
      const fail = this.failNextSync;
      this.failNextSync = false;
      return fail;
    };
  }
}

describe('PersistentBitmap after a failed fdatasync', () => {
  it('does not acknowledge a bit the failed pass dropped, even if writeback later persists that pass', async () => {
    const file = new FlakySyncFile();
    const moos = await PersistentBitmap.create(file, 1000, 'moos');
    const predictor = new MoosPredictor(moos, 0);
    await predictor.recordWrite(5, 5); // MOOS {5} durable
    predictor.markShipped(5, 5);
    file.failNextSync = true;
    // Prediction clears 5 in memory (shipped); the slot is written, the sync fails.
    await expect(predictor.recordWrite(9, 9)).rejects.toBeInstanceOf(SyncFailure);
    expect(moos.durableGet(5)).toBe(false);
    const syncsBefore = file.syncs;
    await predictor.recordWrite(5, 5); // the host writes region 5 again
    expect(file.syncs - syncsBefore).toBe(1); // acknowledged only after a pass that synced
    // Power loss with every unsynced write persisted by writeback.
    const { bitmap: afterCrash } = await PersistentBitmap.load(SimFile.from(file.imageWith(() => true)));
    expect(afterCrash.bits.get(5)).toBe(true);
    expect(moos.stats.failedDestages).toBe(1);
  });

  it('retries into the same slot, never over the slot holding the last synced image', async () => {
    const file = new FlakySyncFile();
    const bitmap = await PersistentBitmap.create(file, 1000, 'retry');
    bitmap.set(1);
    await bitmap.destage(); // newest image in B
    const syncedB = slotBytes(file.durable, 1);
    bitmap.set(2);
    file.failNextSync = true;
    await expect(bitmap.destage()).rejects.toBeInstanceOf(SyncFailure);
    expect(bitmap.dirty).toBe(true);
    bitmap.set(3);
    await bitmap.destage();
    expect(slotBytes(file.durable, 1)).toEqual(syncedB);
    const { bitmap: reloaded, report } = await PersistentBitmap.load(SimFile.from(file.durable));
    expect(report.recovered).toEqual([]);
    expect([...reloaded.bits.indexes()]).toEqual([1, 2, 3]);
  });

  it('keeps only the intersection of the old and the failed image durable', async () => {
    const file = new FlakySyncFile();
    const bitmap = await PersistentBitmap.create(file, 1000, 'intersect');
    bitmap.setRange(0, 10);
    await bitmap.destage();
    bitmap.clearRange(0, 5);
    bitmap.setRange(20, 25);
    file.failNextSync = true;
    await expect(bitmap.destage()).rejects.toBeInstanceOf(SyncFailure);
    expect([...bitmap.durableBits().indexes()]).toEqual([5, 6, 7, 8, 9]);
  });
});

describe('PersistentBitmap under a pass in flight', () => {
  it('a bit set again while a pass that snapshotted it clear is in flight is not durable until a later pass', async () => {
    const file = new SimFile();
    const bitmap = await PersistentBitmap.create(file, 100, 'moos');
    await bitmap.setRangeDurable(5, 6);
    bitmap.clearRange(5, 6); // dropped in memory (MOOS's lazy clearing)
    const pass = bitmap.destage(); // snapshots the segment without bit 5, synchronously
    bitmap.setRange(5, 6); // a write marks it again
    expect(bitmap.durableGet(5)).toBe(true); // on disk from the first pass, for now
    expect(bitmap.durableNow(5, 6)).toBe(false); // the pass in flight will clear it there
    await bitmap.ensureDurable(5, 6);
    await pass;
    expect(bitmap.durableNow(5, 6)).toBe(true);
    const { bitmap: afterPowerLoss } = await PersistentBitmap.load(SimFile.from(file.durable));
    expect(afterPowerLoss.bits.get(5)).toBe(true);
  });

  it('a bit the pass in flight writes set stays durable: no wait for it', async () => {
    const file = new SimFile();
    const bitmap = await PersistentBitmap.create(file, 100, 'moos');
    await bitmap.setRangeDurable(5, 6);
    bitmap.setRange(40, 41);
    const pass = bitmap.destage(); // its image holds bit 5 too
    expect(bitmap.durableNow(5, 6)).toBe(true);
    expect(bitmap.durableNow(40, 41)).toBe(false);
    await pass;
    expect(bitmap.durableNow(40, 41)).toBe(true);
  });
});
