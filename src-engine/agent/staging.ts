// A periodic pair's staging area on its secondary (seed 004, docs/replication.md "Periodic"):
// a cycle's regions arrive into `volumes/<id>/staging/<pairId>/data.img` (sparse, addressed
// like the volume) without touching the volume; apply then writes a redo record naming the
// cycle and its regions, copies them into the volume, flushes it, records the cycle in the
// member and drops the record. A crash during apply finishes it when the volume is next
// opened, so the volume is always exactly the primary at some cycle boundary. Stage, apply
// and redo of one pair run one at a time, in call order (a per-pair lock); other pairs' run
// alongside.

import { constants } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { Bitset } from '../bitmap';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { createDirectories, syncDirectory } from '../fsync';
import { defineRecord, readRecord, writeRecord } from '../store';
import type { Volume, WriteAuth } from '../volume';
import type { PairMembers } from './pair-members';

const stagingRecordKind = defineRecord('tidemark/staging', 1, z.object({ pairId: z.string().uuid(), cycle: z.number().int().positive() }).strict());
/** A cycle and its regions (a bitset, base64): what an apply copies (its redo record), or what a seal holds. */
const cycleRegionsSchema = z
  .object({ pairId: z.string().uuid(), cycle: z.number().int().positive(), regionCount: z.number().int().positive(), words: z.string().max(400_000_000) })
  .strict();
const redoRecordKind = defineRecord('tidemark/staging-redo', 1, cycleRegionsSchema);
/** A cycle staged whole: its regions, durable in data.img (the prepared vote of a group's two-phase apply). */
const sealRecordKind = defineRecord('tidemark/staging-seal', 1, cycleRegionsSchema);

/**
 * Test-only: milliseconds to wait before copying each region in an apply (not in the redo an
 * open runs), so a test can kill the agent in the middle of one
 * (test/integration/periodic-apply-kill.test.ts). Never set in production; read at each apply.
 */
export const testApplyDelayEnv = 'TIDEMARK_TEST_APPLY_DELAY_MS';

function testApplyDelayMs(): number {
  const value = Number(process.env[testApplyDelayEnv] ?? 0);
  return Number.isFinite(value) && value > 0 ? Math.min(value, 60_000) : 0;
}

/** Runs tasks per key one at a time, in call order (a promise chain per key); other keys run alongside. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    // The last task of a key removes its entry: the map holds only keys with work queued.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

function wordsOf(regionCount: number, regionIndexes: readonly number[]): Bitset {
  const bits = new Bitset(regionCount);
  for (const r of regionIndexes) bits.set(r);
  return bits;
}

export class PairStaging {
  /** The open staging file per pair while a cycle arrives. */
  private readonly handles = new Map<string, Promise<FileHandle>>();
  /**
   * One stage, apply or redo of a pair at a time. They interleave at their awaits otherwise:
   * two stages of a new cycle each reset the area (the later reset deletes what the earlier
   * stage wrote), a stage of the next cycle discards the area an apply is copying from, an
   * apply issued behind stages copies regions not staged yet.
   */
  private readonly locks = new KeyedLock();

  constructor(
    private readonly volumeDir: string,
    private readonly volume: Volume,
    private readonly members: PairMembers,
  ) {}

  private dir(pairId: string): string {
    return join(this.volumeDir, 'staging', pairId);
  }

  private checkSecondary(pairId: string, auth: WriteAuth | undefined): void {
    const member = this.members.require(pairId);
    if (member.role !== 'secondary') {
      throw new TidemarkError(
        'USAGE',
        `volume ${this.volume.path} is the ${member.role} of pair "${member.name}": only a secondary stages cycles`,
        "stage on the pair's secondary",
      );
    }
    this.volume.checkWriteLock(auth);
  }

  /** Writes one region of `cycle` into the staging area; a staging area of another cycle is discarded first. */
  stage(pairId: string, cycle: number, regionIndex: number, data: Uint8Array, auth: WriteAuth | undefined): Promise<void> {
    return this.locks.run(pairId, () => this.stageLocked(pairId, cycle, regionIndex, data, auth));
  }

  private async stageLocked(pairId: string, cycle: number, regionIndex: number, data: Uint8Array, auth: WriteAuth | undefined): Promise<void> {
    this.checkSecondary(pairId, auth);
    const span = this.volume.geometry.region(regionIndex);
    if (data.length !== span.bytes)
      throw new TidemarkError('USAGE', `region ${regionIndex} holds ${span.bytes} bytes, got ${data.length}`, 'stage whole regions');
    const dir = this.dir(pairId);
    await this.unseal(pairId);
    const current = await readRecord(join(dir, 'staging.json'), stagingRecordKind);
    if (current?.cycle !== cycle) {
      if (await readRecord(join(dir, 'redo.json'), redoRecordKind)) {
        throw new TidemarkError(
          'BUSY',
          `cycle ${current?.cycle} of pair ${pairId} is being applied to ${this.volume.path}`,
          'wait for it (reopening the volume finishes it)',
        );
      }
      await this.closeHandle(pairId);
      await rm(join(dir, 'data.img'), { force: true });
      await createDirectories(dir, 0o700);
      await writeRecord(join(dir, 'staging.json'), stagingRecordKind, { pairId, cycle });
    }
    const handle = await this.handle(pairId);
    try {
      await handle.write(data, 0, data.length, span.offsetBytes);
    } catch (error) {
      throw fromSystemError(error, 'stage a region into', join(dir, 'data.img'));
    }
  }

  /** A region staged after the seal: the area is no longer what was sealed (the member's summary goes first). */
  private async unseal(pairId: string): Promise<void> {
    if (this.members.require(pairId).sealedCycle == null) return;
    await this.members.update(pairId, { sealedCycle: null });
    await rm(join(this.dir(pairId), 'seal.json'), { force: true });
  }

  private handle(pairId: string): Promise<FileHandle> {
    let handle = this.handles.get(pairId);
    if (!handle) {
      const path = join(this.dir(pairId), 'data.img');
      handle = open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
      this.handles.set(pairId, handle);
      handle.catch(() => this.handles.delete(pairId));
    }
    return handle;
  }

  private async closeHandle(pairId: string): Promise<void> {
    const handle = this.handles.get(pairId);
    this.handles.delete(pairId);
    await (await handle?.catch(() => undefined))?.close();
  }

  /** Closes the staging files, each after its pair's work under way. */
  async close(): Promise<void> {
    for (const pairId of [...this.handles.keys()]) await this.locks.run(pairId, () => this.closeHandle(pairId));
  }

  /**
   * Runs `work` while no stage, apply or redo of the pair runs (a role change: an apply in
   * progress finishes first, and none starts until the member's new role is recorded).
   */
  exclusive<T>(pairId: string, work: () => Promise<T>): Promise<T> {
    return this.locks.run(pairId, work);
  }

  /**
   * Applies `cycle`: its staged regions (those listed; each must have been staged) go into the
   * volume under a redo record; the member records the cycle. Idempotent for an applied cycle.
   */
  apply(pairId: string, cycle: number, regionIndexes: readonly number[], auth: WriteAuth | undefined): Promise<void> {
    return this.locks.run(pairId, () => this.applyLocked(pairId, cycle, regionIndexes, auth));
  }

  private async applyLocked(pairId: string, cycle: number, regionIndexes: readonly number[], auth: WriteAuth | undefined): Promise<void> {
    this.checkSecondary(pairId, auth);
    const member = this.members.require(pairId);
    if ((member.appliedCycle ?? 0) >= cycle) return;
    await this.recordStaged(pairId, cycle, regionIndexes, 'redo.json', redoRecordKind);
    await this.redoLocked(pairId, testApplyDelayMs());
  }

  /**
   * Seals `cycle`: its staged regions (those listed, each staged) are made durable and recorded
   * with it, and the member records `sealedCycle` — without touching the volume. A consistency
   * group seals every member before applying any, so that a failover can finish the cycle on
   * every member from its seal alone (applySealed) once one member has applied it.
   * Idempotent; nothing for an applied cycle.
   */
  seal(pairId: string, cycle: number, regionIndexes: readonly number[], auth: WriteAuth | undefined): Promise<void> {
    return this.locks.run(pairId, async () => {
      this.checkSecondary(pairId, auth);
      if ((this.members.require(pairId).appliedCycle ?? 0) >= cycle) return;
      await this.recordStaged(pairId, cycle, regionIndexes, 'seal.json', sealRecordKind);
      await this.members.update(pairId, { sealedCycle: cycle });
    });
  }

  /** Applies the sealed `cycle` from its seal (a failover finishing a group's cycle: the primary, and its change map, may be gone). */
  applySealed(pairId: string, cycle: number, auth: WriteAuth | undefined): Promise<void> {
    return this.locks.run(pairId, async () => {
      this.checkSecondary(pairId, auth);
      if ((this.members.require(pairId).appliedCycle ?? 0) >= cycle) return;
      const seal = await readRecord(join(this.dir(pairId), 'seal.json'), sealRecordKind);
      if (seal?.cycle !== cycle || this.members.require(pairId).sealedCycle !== cycle) {
        throw new TidemarkError(
          'INCOMPLETE',
          `cycle ${cycle} of pair ${pairId} is not sealed on ${this.volume.path}${seal ? ` (cycle ${seal.cycle} is)` : ''}`,
          'ship and seal the cycle again',
        );
      }
      const bits = Bitset.fromBytes(seal.regionCount, Buffer.from(seal.words, 'base64'));
      await this.applyLocked(pairId, cycle, [...bits.indexes()], auth);
    });
  }

  /** Every listed region belongs to the staged cycle (a cycle of no regions stages nothing), and each is within the volume. */
  private async checkStaged(pairId: string, cycle: number, regionIndexes: readonly number[]): Promise<void> {
    const current = await readRecord(join(this.dir(pairId), 'staging.json'), stagingRecordKind);
    if (regionIndexes.length > 0 && current?.cycle !== cycle) {
      throw new TidemarkError('INCOMPLETE', `nothing of cycle ${cycle} is staged on ${this.volume.path}`, 'ship the cycle again');
    }
    for (const r of regionIndexes) this.volume.geometry.region(r);
  }

  /**
   * Makes the cycle's staged regions durable, then records them with the cycle in `file` (the
   * redo record of an apply, or the seal). Every index is checked first: none is recorded
   * that the volume does not have.
   */
  private async recordStaged(
    pairId: string,
    cycle: number,
    regionIndexes: readonly number[],
    file: 'redo.json' | 'seal.json',
    kind: typeof redoRecordKind,
  ): Promise<void> {
    const dir = this.dir(pairId);
    await this.checkStaged(pairId, cycle, regionIndexes);
    await this.closeHandle(pairId);
    await createDirectories(dir, 0o700); // a cycle with nothing to ship staged nothing
    if (regionIndexes.length > 0) await this.syncStaged(dir);
    const bits = wordsOf(this.volume.regionCount, regionIndexes);
    await writeRecord(join(dir, file), kind, { pairId, cycle, regionCount: bits.bitCount, words: Buffer.from(bits.toBytes()).toString('base64') });
  }

  private async syncStaged(dir: string): Promise<void> {
    const handle = await open(join(dir, 'data.img'), 'r');
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  /**
   * Removes the pair's staging area (a promoted member: what it staged or sealed is never
   * applied). Call inside `exclusive`: no stage, apply or redo of the pair runs meanwhile.
   */
  async discardLocked(pairId: string): Promise<void> {
    await this.closeHandle(pairId);
    const dir = this.dir(pairId);
    if (await readRecord(join(dir, 'redo.json'), redoRecordKind)) return; // finished at the next open, as always
    await rm(dir, { recursive: true, force: true });
  }

  /** Finishes a recorded apply (after a crash, at open): copies, flushes, records the cycle, drops the staging area. */
  redo(pairId: string): Promise<boolean> {
    return this.locks.run(pairId, () => this.redoLocked(pairId));
  }

  private async redoLocked(pairId: string, delayMs = 0): Promise<boolean> {
    const dir = this.dir(pairId);
    const record = await readRecord(join(dir, 'redo.json'), redoRecordKind);
    if (!record) return false;
    const bits = Bitset.fromBytes(record.regionCount, Buffer.from(record.words, 'base64'));
    const member = this.members.get(pairId);
    const auth = member ? { pairId, generation: member.generation } : undefined;
    let handle: FileHandle | undefined;
    try {
      if (bits.anySet()) handle = await open(join(dir, 'data.img'), 'r');
      for (let r = bits.nextSetBit(0); r !== -1; r = r + 1 < bits.bitCount ? bits.nextSetBit(r + 1) : -1) {
        if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
        const span = this.volume.geometry.region(r);
        const data = Buffer.alloc(span.bytes);
        await handle!.read(data, 0, span.bytes, span.offsetBytes);
        await this.volume.write(span.offsetBytes, data, auth);
      }
      await this.volume.flush();
    } catch (error) {
      throw fromSystemError(error, `apply cycle ${record.cycle} of pair ${pairId} to`, this.volume.path);
    } finally {
      await handle?.close();
    }
    if (member) await this.members.update(pairId, { appliedCycle: record.cycle, sealedCycle: null });
    await rm(join(dir, 'redo.json'), { force: true });
    await rm(dir, { recursive: true, force: true });
    await syncDirectory(join(this.volumeDir, 'staging')).catch((error: unknown) => {
      if (errnoCode(error) !== 'ENOENT') throw error;
    });
    return true;
  }

  /** Redo records left by a crash, one per pair: finished now. */
  async recover(): Promise<number[]> {
    const recovered: number[] = [];
    for (const member of this.members.list()) {
      const record = await readRecord(join(this.dir(member.pairId), 'redo.json'), redoRecordKind);
      if (record && (await this.redo(member.pairId))) recovered.push(record.cycle);
    }
    return recovered;
  }
}
