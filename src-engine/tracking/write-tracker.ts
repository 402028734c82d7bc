// Write tracking on a primary (seed 003): every write through Tidemark sets OOS for its
// regions and is held until the persisted MOOS superset covers them. Installed as a volume
// write hook, so nothing that writes through the engine escapes it.

import { access } from 'node:fs/promises';
import { type Bitset, MoosPredictor, createBitmapFile, openBitmapFile, type BitmapLoadReport, type PersistentBitmap } from '../bitmap';
import type { Volume, WriteHook } from '../volume';

export interface TrackerStats {
  /** Host writes tracked since the tracker was attached. */
  writes: number;
}

export class WriteTracker implements WriteHook {
  readonly name = 'tracking';
  readonly stats: TrackerStats = { writes: 0 };
  /** Removes the hook at a quiet moment (no write past the hooks meanwhile). */
  private detach: (() => Promise<void>) | undefined;

  private constructor(
    readonly predictor: MoosPredictor,
    private readonly moos: PersistentBitmap,
    /** What loading MOOS found: regions recovered from a crash are resent. */
    readonly loadReport: BitmapLoadReport | undefined,
    readonly recoveredRegions: number,
  ) {}

  /**
   * Opens (or creates) the MOOS bitmap at `moosPath` for `volume` and starts tracking its
   * writes. An existing MOOS means the last run may have crashed: OOS starts as MOOS, so
   * exactly those regions are resent (seed 003), never a full resync.
   */
  static async attach(volume: Volume, moosPath: string, predictRegions: number): Promise<WriteTracker> {
    const exists = await access(moosPath).then(
      () => true,
      () => false,
    );
    let tracker: WriteTracker;
    if (exists) {
      const { bitmap, report } = await openBitmapFile(moosPath);
      const predictor = new MoosPredictor(bitmap, predictRegions);
      const recovered = predictor.recoverFromMoos();
      tracker = new WriteTracker(predictor, bitmap, report, recovered);
    } else {
      const bitmap = await createBitmapFile(moosPath, volume.regionCount, 'moos');
      tracker = new WriteTracker(new MoosPredictor(bitmap, predictRegions), bitmap, undefined, 0);
    }
    // Attach at a quiet moment: no write may be past the hooks while tracking starts.
    await volume.quiesced(async () => {
      const remove = volume.addWriteHook(tracker);
      tracker.detach = () => volume.quiesced(async () => remove());
    });
    return tracker;
  }

  async beforeWrite(firstRegion: number, lastRegion: number): Promise<void> {
    await this.predictor.recordWrite(firstRegion, lastRegion);
    this.stats.writes += 1;
  }

  get oos(): Bitset {
    return this.predictor.oos;
  }

  get moosBits(): Bitset {
    return this.moos.bits;
  }

  get moosDestages(): number {
    return this.moos.stats.destages;
  }

  async close(): Promise<void> {
    const detach = this.detach;
    this.detach = undefined;
    await detach?.();
    await this.moos.close();
  }
}
