// Write tracking on a primary (seed 003): every write through Tidemark sets OOS for its
// regions and is held until the persisted MOOS superset covers them. Installed as a volume
// write hook, so nothing that writes through the engine escapes it. The shipper takes OOS
// regions (clearing their bits under the volume's write gate, so a write in flight has
// landed and a later one marks them again) and settles each once the secondary holds it.

import { access } from 'node:fs/promises';
import { assert } from '../assert';
import { moosStreamWindowBytes } from '../constants';
import {
  type Bitset,
  MoosPredictor,
  type MoosPredictorOptions,
  createBitmapFile,
  openBitmapFile,
  type BitmapLoadReport,
  type PersistentBitmap,
} from '../bitmap';
import type { Volume, WriteHook } from '../volume';
import { LastWriteClock } from './last-write';

/** The last-write record beside a tracker's MOOS file. */
export const lastWritePathOf = (moosPath: string) => `${moosPath}.last-write`;

export interface TrackerStats {
  /** Host writes tracked since the tracker was attached. */
  writes: number;
}

export interface TrackingState {
  readonly regionCount: number;
  /** Regions out of sync, not being shipped. */
  readonly oosRegions: number;
  /** Regions taken for shipping and not yet settled. */
  readonly inFlightRegions: number;
  /** The persisted superset: what a crash this instant would resend. */
  readonly moosRegions: number;
  /** Age of the oldest write not yet on the secondary (0 when in sync). */
  readonly oldestUnshippedMs: number;
  /** MOOS regions found when tracking started (a crash or a stop with work left). */
  readonly recoveredRegions: number;
  readonly writes: number;
  readonly moosDestages: number;
  readonly predictRegions: number;
  /** When the volume was last written through this tracker (persisted to within a second); null: never. */
  readonly lastWriteAtMs: number | null;
}

/** Dirty-since times are kept for this many regions at most; beyond, ages are those of the oldest kept. */
const agedRegionsMax = 1 << 20;

export class WriteTracker implements WriteHook {
  readonly name = 'tracking';
  readonly stats: TrackerStats = { writes: 0 };
  /** Removes the hook at a quiet moment (no write past the hooks meanwhile). */
  private detach: (() => Promise<void>) | undefined;
  /** Region → when it became unshipped; insertion order is time order, so the first is the oldest. */
  private readonly dirtySinceMs = new Map<number, number>();

  private constructor(
    private readonly volume: Volume,
    readonly predictor: MoosPredictor,
    private readonly moos: PersistentBitmap,
    /** What loading MOOS found: regions recovered from a crash are resent. */
    readonly loadReport: BitmapLoadReport | undefined,
    readonly recoveredRegions: number,
    private readonly lastWrite: LastWriteClock,
  ) {
    const openedAtMs = Date.now();
    for (let r = predictor.oos.nextSetBit(0); r !== -1 && this.dirtySinceMs.size < agedRegionsMax; r = nextAfter(predictor.oos, r))
      this.dirtySinceMs.set(r, openedAtMs);
  }

  /**
   * Opens (or creates) the MOOS bitmap at `moosPath` for `volume` and starts tracking its
   * writes. An existing MOOS means the last run may have crashed: OOS starts as MOOS, so
   * exactly those regions are resent (seed 003), never a full resync.
   */
  static async attach(volume: Volume, moosPath: string, predictRegions: number): Promise<WriteTracker> {
    const lastWrite = await LastWriteClock.open(lastWritePathOf(moosPath));
    const exists = await access(moosPath).then(
      () => true,
      () => false,
    );
    let tracker: WriteTracker;
    if (exists) {
      const { bitmap, report } = await openBitmapFile(moosPath);
      const predictor = new MoosPredictor(bitmap, predictRegions, predictorOptionsOf(volume));
      const recovered = predictor.recoverFromMoos();
      tracker = new WriteTracker(volume, predictor, bitmap, report, recovered, lastWrite);
    } else {
      const bitmap = await createBitmapFile(moosPath, volume.regionCount, 'moos');
      tracker = new WriteTracker(volume, new MoosPredictor(bitmap, predictRegions, predictorOptionsOf(volume)), bitmap, undefined, 0, lastWrite);
    }
    // Attach at a quiet moment: no write may be past the hooks while tracking starts.
    await volume.quiesced(async () => {
      const remove = volume.addWriteHook(tracker);
      tracker.detach = () => volume.quiesced(async () => remove());
    });
    return tracker;
  }

  /** Undefined when the write may go on at once (its MOOS bits durable, the last-write record recent): the common case costs no promise. */
  beforeWrite(firstRegion: number, lastRegion: number): Promise<void> | undefined {
    const nowMs = Date.now();
    this.noteDirty(firstRegion, lastRegion, nowMs);
    this.stats.writes += 1;
    if (this.predictor.tryRecordWrite(firstRegion, lastRegion) && this.lastWrite.tryRecord(nowMs)) return undefined;
    return Promise.all([this.predictor.recordWrite(firstRegion, lastRegion), this.lastWrite.record(nowMs)]).then(() => undefined);
  }

  /** Remembers when each region became unshipped (a region out of sync has its time already). */
  private noteDirty(firstRegion: number, lastRegion: number, nowMs: number): void {
    if (this.dirtySinceMs.size >= agedRegionsMax) return;
    const oos = this.predictor.oos;
    for (let r = firstRegion; r <= lastRegion; r++) if (!oos.get(r) && !this.dirtySinceMs.has(r)) this.dirtySinceMs.set(r, nowMs);
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

  state(): TrackingState {
    const oldest = this.dirtySinceMs.values().next();
    return {
      regionCount: this.oos.bitCount,
      oosRegions: this.oos.popcount(),
      inFlightRegions: this.predictor.inFlight.popcount(),
      moosRegions: this.moos.bits.popcount(),
      oldestUnshippedMs: oldest.done ? 0 : Math.max(0, Date.now() - oldest.value),
      recoveredRegions: this.recoveredRegions,
      writes: this.stats.writes,
      moosDestages: this.moos.stats.destages,
      predictRegions: this.predictor.predictRegions,
      lastWriteAtMs: this.lastWrite.lastWriteAtMs,
    };
  }

  /**
   * Takes up to `regionsMax` OOS regions from `fromRegion` on (wrapping around), in order,
   * for shipping. Runs with writes held: a write in flight has set its bit but not landed its
   * data, so its region may only be read once it has; a write after this marks it again.
   */
  async take(regionsMax: number, fromRegion = 0): Promise<number[]> {
    assert(Number.isSafeInteger(regionsMax) && regionsMax > 0, 'take at least one region');
    return this.volume.quiesced(async () => {
      const taken: number[] = [];
      const oos = this.oos;
      const inFlight = this.predictor.inFlight;
      const start = Math.min(Math.max(0, fromRegion), oos.bitCount);
      for (const [from, to] of [
        [start, oos.bitCount],
        [0, start],
      ] as const) {
        for (let r = oos.nextSetBit(from, to); r !== -1 && taken.length < regionsMax; r = r + 1 < to ? oos.nextSetBit(r + 1, to) : -1) {
          // Written again while its last take is still in flight: taken again once that settles.
          if (inFlight.get(r)) continue;
          this.predictor.take(r);
          taken.push(r);
        }
      }
      return taken;
    });
  }

  /** Settles taken regions: `shipped` are durable on the secondary, `failed` are out of sync again. */
  settle(shipped: readonly number[], failed: readonly number[]): void {
    for (const r of failed) this.predictor.settle(r, false);
    for (const r of shipped) {
      this.predictor.settle(r, true);
      // Written again since it was taken: still unshipped, with its first write's age.
      if (!this.oos.get(r)) this.dirtySinceMs.delete(r);
    }
  }

  /**
   * Stops tracking. A clean stop first narrows MOOS to OOS ∪ in flight, so the next start
   * resends exactly the regions not yet shipped.
   */
  async close(): Promise<void> {
    const detach = this.detach;
    this.detach = undefined;
    await detach?.();
    try {
      await this.predictor.compact();
    } finally {
      await this.moos.close();
      await this.lastWrite.close();
    }
  }
}

/** Streams of writes get windows of up to `moosStreamWindowBytes` (at least the predict window). */
function predictorOptionsOf(volume: Volume): MoosPredictorOptions {
  return { streamWindowMaxRegions: Math.max(1, Math.floor(moosStreamWindowBytes / volume.regionBytes)) };
}

function nextAfter(bits: Bitset, r: number): number {
  return r + 1 < bits.bitCount ? bits.nextSetBit(r + 1) : -1;
}
