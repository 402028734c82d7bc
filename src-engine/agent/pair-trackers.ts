// Write tracking of a primary volume, one tracker per pair it is the primary of (seed 003):
// OOS in memory, MOOS persisted at `volumes/<id>/pairs/<pairId>.moos.tmbm`. The agent that
// opens the volume attaches them before the first write passes, so every write through any
// Tidemark process is tracked; a restart after a crash resends exactly the MOOS regions.

import { access, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { moosPredictDefault } from '../constants';
import { openBitmapFile } from '../bitmap';
import { TidemarkError, errnoCode } from '../errors';
import { WriteTracker, lastWritePathOf } from '../tracking';
import type { Volume } from '../volume';
import type { PairMember } from './pair-members';

export class PairTrackers {
  private readonly trackers = new Map<string, WriteTracker>();

  private constructor(
    private readonly pairsDir: string,
    private readonly volume: Volume,
  ) {}

  static async open(volumeDir: string, volume: Volume, members: readonly PairMember[]): Promise<PairTrackers> {
    const trackers = new PairTrackers(join(volumeDir, 'pairs'), volume);
    try {
      for (const member of members) await trackers.attach(member);
    } catch (error) {
      await trackers.close().catch(() => undefined);
      throw error;
    }
    return trackers;
  }

  private moosPath(pairId: string): string {
    return join(this.pairsDir, `${pairId}.moos.tmbm`);
  }

  /**
   * A demotion killed between its member record and dropping the tracker leaves a secondary
   * with a MOOS file: its regions (a superset of what was unshipped at the lock) go durably into
   * the demotion's unshipped map before the file goes, so a retried demotion reports them
   * (agent/role-change.ts). Returns how many pairs it folded.
   */
  async foldOrphans(members: readonly PairMember[], fold: (pairId: string, regions: readonly number[]) => Promise<void>): Promise<number> {
    let folded = 0;
    for (const member of members.filter((m) => m.role === 'secondary')) {
      const path = this.moosPath(member.pairId);
      const present = await access(path).then(
        () => true,
        (error: unknown) => {
          if (errnoCode(error) === 'ENOENT') return false;
          throw error;
        },
      );
      if (!present) continue;
      const opened = await openBitmapFile(path, 'r');
      const regions = [...opened.bitmap.bits.indexes()].filter((r) => r < this.volume.regionCount);
      await opened.bitmap.close();
      await fold(member.pairId, regions);
      await rm(path, { force: true });
      await rm(lastWritePathOf(path), { force: true });
      folded += 1;
    }
    return folded;
  }

  /** Starts tracking for a primary member (idempotent); a secondary has nothing to track. */
  async attach(member: PairMember): Promise<void> {
    if (member.role !== 'primary' || this.trackers.has(member.pairId)) return;
    const tracker = await WriteTracker.attach(this.volume, this.moosPath(member.pairId), member.predictRegions ?? moosPredictDefault);
    this.trackers.set(member.pairId, tracker);
  }

  has(pairId: string): boolean {
    return this.trackers.has(pairId);
  }

  get(pairId: string): WriteTracker {
    const tracker = this.trackers.get(pairId);
    if (!tracker) {
      throw new TidemarkError(
        'NOT_FOUND',
        `volume ${this.volume.path} is not the primary of pair ${pairId}: nothing is tracked for it here`,
        "ship from the pair's primary (see `tidemark pair show`)",
      );
    }
    return tracker;
  }

  /** Stops tracking for a pair that is gone and removes its MOOS. */
  async detach(pairId: string): Promise<void> {
    const tracker = this.trackers.get(pairId);
    this.trackers.delete(pairId);
    await tracker?.close();
    await rm(this.moosPath(pairId), { force: true });
    await rm(lastWritePathOf(this.moosPath(pairId)), { force: true });
  }

  /** Stops tracking cleanly (MOOS narrowed to what is unshipped), keeping the files. */
  async close(): Promise<void> {
    const results = await Promise.allSettled([...this.trackers.values()].map((t) => t.close()));
    this.trackers.clear();
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  }
}
