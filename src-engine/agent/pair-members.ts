// What an agent knows of the pairs its volumes belong to: one member record per pair in the
// volume's catalog directory, `volumes/<volumeId>/pairs/<pairId>.json`. The listing is the
// list. A secondary member locks the volume (Volume.setWriteLock) until it leaves or fails
// over. Design: docs/sync.md "Pair records" and "The secondary's write lock".

import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { moosPredictMax } from '../constants';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { syncDirectory } from '../fsync';
import { hashAlgorithms } from '../signature';
import { defineRecord, readRecord, writeRecord } from '../store';
import type { Volume, WriteAuth, WriteLock } from '../volume';

const uuid = z.string().uuid();

/** Role-change events kept per member (older ones are dropped first). */
export const roleHistoryMax = 256;
export const roleEventSchema = z
  .object({
    generation: z.number().int().positive(),
    role: z.enum(['primary', 'secondary']),
    event: z.enum(['failover', 'failover-forced', 'failback', 'migrate']),
    atMs: z.number().int().nonnegative(),
    /** Who asked: user@host of the orchestrator. */
    by: z.string().max(200),
  })
  .strict();
export type RoleEvent = z.infer<typeof roleEventSchema>;

export const pairMemberSchema = z
  .object({
    pairId: uuid,
    name: z.string().min(1).max(64),
    role: z.enum(['primary', 'secondary']),
    generation: z.number().int().positive(),
    regionBytes: z.number().int().positive(),
    /** The pair's extent: the primary's region count. */
    regionCount: z.number().int().positive(),
    hash: z.enum(hashAlgorithms),
    peer: z.object({ volref: z.string().min(1).max(4200), volumeId: z.string().regex(/^[0-9a-f]{16}$/) }).strict(),
    createdAt: z.string().max(64),
    /** The image this secondary was seeded from (issue 6 images). */
    seed: z
      .object({ imageId: uuid, generation: z.number().int().positive(), pointInTime: z.string().max(64) })
      .strict()
      .nullable(),
    /** A secondary's last consistent snapshot, taken when a sync finished. */
    lcsSnapshotId: z.string().max(64).nullable(),
    /** A primary's MOOS prediction window (seed 003); absent in records older than tracking: the default. */
    predictRegions: z.number().int().min(0).max(moosPredictMax).optional(),
    /**
     * A secondary's protective snapshot (issue 7): taken before a continuous catch-up copies
     * regions out of order, released when in sync. While it exists the volume itself may be
     * inconsistent; the snapshot is the consistent image a failover uses.
     */
    protectSnapshotId: z.string().max(64).nullable().optional(),
    /** A periodic secondary's last applied cycle: the volume is the primary as of that cycle's snapshot. */
    appliedCycle: z.number().int().nonnegative().optional(),
    /**
     * A periodic secondary's cycle staged whole and sealed, not applied yet (a consistency
     * group's prepared vote: docs/replication.md "Consistency groups"). Null or absent: none.
     */
    sealedCycle: z.number().int().positive().nullable().optional(),
    /**
     * Role changes this member went through, oldest first (issue 8, docs/failover.md): like
     * DRBD's generation UUIDs, the histories of two members say whether they are in step, one
     * is behind, or both were primary at once. Absent in records older than failover.
     */
    history: z.array(roleEventSchema).max(roleHistoryMax).optional(),
  })
  .strict();
export const pairMemberKind = defineRecord('tidemark/pair-member', 1, pairMemberSchema);

/** An image import in progress on a volume (docs/image-format.md): sync refuses the volume meanwhile. */
export const importMarkerSchema = z
  .object({
    imageId: uuid,
    manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
    pairId: uuid.nullable(),
    generation: z.number().int().nonnegative(),
    /** Regions below it are imported (committed: the volume was flushed before this was written). */
    nextRegion: z.number().int().nonnegative(),
    startedAt: z.string().max(64),
  })
  .strict();
export const importMarkerKind = defineRecord('tidemark/import-marker', 1, importMarkerSchema);
export type ImportMarker = z.infer<typeof importMarkerSchema>;
export type PairMember = z.infer<typeof pairMemberKind.schema>;
export type PairMemberChange = Partial<
  Pick<PairMember, 'generation' | 'seed' | 'lcsSnapshotId' | 'protectSnapshotId' | 'predictRegions' | 'appliedCycle' | 'sealedCycle'>
>;

function checkPairId(pairId: string): void {
  if (!uuid.safeParse(pairId).success) throw new TidemarkError('USAGE', `"${pairId}" is not a pair id`, 'pair ids are UUIDs; see `tidemark pair show`');
}

/** The lock a secondary member puts on its volume. */
export function secondaryLock(member: PairMember, volumePath: string): WriteLock {
  return {
    pairId: member.pairId,
    generation: member.generation,
    message: `volume ${volumePath} is the secondary of pair "${member.name}" and is read-only until failover`,
    hint: `write to the primary ${member.peer.volref}, or run \`tidemark failover ${member.name}\``,
  };
}

/** The member records of one registered volume, cached and kept in step with its lock. */
export class PairMembers {
  private constructor(
    private readonly dir: string,
    private readonly volume: Volume,
    private members: Map<string, PairMember>,
    private importMarker: ImportMarker | null,
  ) {}

  /** Promotions under way: the generation each fenced secondary's lock is at (see fenceAt). */
  private readonly fences = new Map<string, number>();

  private get markerPath(): string {
    return join(this.dir, '..', 'import.json');
  }

  get importing(): ImportMarker | null {
    return this.importMarker;
  }

  /** Records (or, with null, removes) the volume's import marker; a locked volume needs its pair's auth. */
  async markImport(marker: ImportMarker | null, auth: WriteAuth | undefined): Promise<void> {
    this.volume.checkWriteLock(auth);
    if (marker === null) {
      await rm(this.markerPath, { force: true });
      await syncDirectory(join(this.dir, '..'));
    } else {
      await writeRecord(this.markerPath, importMarkerKind, importMarkerSchema.parse(marker));
    }
    this.importMarker = marker;
  }

  static async open(volumeDir: string, volume: Volume): Promise<PairMembers> {
    const dir = join(volumeDir, 'pairs');
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw fromSystemError(error, 'list pair members of', volume.path);
    }
    const members = new Map<string, PairMember>();
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const member = await readRecord(join(dir, name), pairMemberKind);
      if (member) members.set(member.pairId, member);
    }
    const importMarker = (await readRecord(join(volumeDir, 'import.json'), importMarkerKind)) ?? null;
    const result = new PairMembers(dir, volume, members, importMarker);
    result.applyLock();
    return result;
  }

  list(): PairMember[] {
    return [...this.members.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(pairId: string): PairMember | undefined {
    return this.members.get(pairId);
  }

  require(pairId: string): PairMember {
    checkPairId(pairId);
    const member = this.members.get(pairId);
    if (!member) {
      throw new TidemarkError('NOT_FOUND', `volume ${this.volume.path} is not in pair ${pairId}`, 'see `tidemark pair list`; the pair may have been deleted');
    }
    return member;
  }

  /** Records a membership; the same record again is a no-op. A secondary is locked before this returns. */
  async join(member: PairMember): Promise<PairMember> {
    const parsed = pairMemberKind.schema.parse(member);
    const existing = this.members.get(parsed.pairId);
    if (existing) {
      if (existing.role !== parsed.role) {
        throw new TidemarkError(
          'ALREADY_EXISTS',
          `volume ${this.volume.path} is already the ${existing.role} of pair "${existing.name}"`,
          'delete that pair first, or choose another volume',
        );
      }
      return existing;
    }
    this.checkJoinable(parsed);
    await this.write({ ...parsed });
    return parsed;
  }

  private checkJoinable(member: PairMember): void {
    for (const other of this.members.values()) {
      if (other.role === 'secondary' || member.role === 'secondary') {
        throw new TidemarkError(
          'ALREADY_EXISTS',
          `volume ${this.volume.path} is already the ${other.role} of pair "${other.name}"; a secondary belongs to one pair and nothing else`,
          'choose another volume, or delete that pair first',
        );
      }
    }
    if (member.regionBytes !== this.volume.regionBytes || member.regionCount > this.volume.regionCount) {
      throw new TidemarkError(
        'SIZE_MISMATCH',
        `volume ${this.volume.path} has ${this.volume.regionCount} regions of ${this.volume.regionBytes} bytes; the pair needs ${member.regionCount} of ${member.regionBytes}`,
        'use a secondary at least as large as the primary',
      );
    }
  }

  async update(pairId: string, change: PairMemberChange): Promise<PairMember> {
    const member = { ...this.require(pairId), ...change };
    await this.write(pairMemberKind.schema.parse(member));
    return member;
  }

  /**
   * Changes the member's role at a new generation, recording the event; a secondary is locked
   * (at the new generation) before this returns, a primary unlocked once its record says so.
   */
  async changeRole(pairId: string, event: RoleEvent): Promise<PairMember> {
    const member = this.require(pairId);
    if (event.generation <= member.generation) {
      throw new TidemarkError(
        'STALE',
        `pair "${member.name}" is at generation ${member.generation} on ${this.volume.path}; a role change to generation ${event.generation} is older`,
        'see `tidemark pair show`: another role change happened meanwhile',
      );
    }
    const history = [...(member.history ?? []), event].slice(-roleHistoryMax);
    const changed: PairMember = { ...member, role: event.role, generation: event.generation, history, protectSnapshotId: null, lcsSnapshotId: null };
    delete (changed as { appliedCycle?: number }).appliedCycle;
    delete (changed as { sealedCycle?: number | null }).sealedCycle;
    await this.write(pairMemberKind.schema.parse(changed));
    this.fences.delete(pairId); // the record carries the new generation now
    this.applyLock();
    return changed;
  }

  /**
   * Moves a secondary's lock to `generation` without a role change (a promotion's first step),
   * in memory only: writes carrying the pair's older generation — a shipper or key session from
   * before — are refused from here, while the promotion's own rollback writes at the new one.
   * Not durable on purpose: after a restart no connection from before survives, the record still
   * says the old generation (so a resumed migrate's copy at it still lands), and a retried
   * promotion fences again. The role change (or leaving) ends the fence.
   */
  fenceAt(pairId: string, generation: number): void {
    const member = this.require(pairId);
    if (member.role !== 'secondary' || generation <= member.generation) {
      throw new TidemarkError('STALE', `pair "${member.name}" on ${this.volume.path} cannot be fenced at generation ${generation}`, 'see `tidemark pair show`');
    }
    this.fences.set(pairId, generation);
    this.applyLock();
  }

  /** Ends a fence whose promotion failed (the lock goes back to the record's generation). */
  unfence(pairId: string): void {
    this.fences.delete(pairId);
    this.applyLock();
  }

  /** Forgets the membership (unlocking a secondary); the volume's bytes are untouched. Idempotent. */
  async leave(pairId: string): Promise<void> {
    checkPairId(pairId);
    if (!this.members.has(pairId)) return;
    try {
      await rm(join(this.dir, `${pairId}.json`), { force: true });
      await syncDirectory(this.dir);
    } catch (error) {
      throw fromSystemError(error, 'remove the pair member record of', this.volume.path);
    }
    this.members.delete(pairId);
    this.fences.delete(pairId);
    this.applyLock();
  }

  private async write(member: PairMember): Promise<void> {
    // A lock comes first (a secondary refuses writes before its record says it is one) and goes
    // last (a promoted secondary keeps refusing until its record says primary: meanwhile the
    // agent still sees the old generation, so only the lock stops a stale writer).
    const next = new Map(this.members).set(member.pairId, member);
    const unlocking = this.members.get(member.pairId)?.role === 'secondary' && member.role === 'primary';
    if (!unlocking) this.applyLock(next);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeRecord(join(this.dir, `${member.pairId}.json`), pairMemberKind, member);
    } catch (error) {
      this.applyLock();
      throw error;
    }
    this.members = next;
    if (unlocking) this.applyLock();
  }

  private applyLock(members: ReadonlyMap<string, PairMember> = this.members): void {
    const secondary = [...members.values()].find((m) => m.role === 'secondary');
    const fence = secondary ? this.fences.get(secondary.pairId) : undefined;
    this.volume.setWriteLock(secondary ? secondaryLock(fence === undefined ? secondary : { ...secondary, generation: fence }, this.volume.path) : undefined);
  }
}
