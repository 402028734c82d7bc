// Periodic replication (seed 004, docs/replication.md "Periodic"): each cycle takes a snapshot
// S_k of the primary and, at the same instant, rotates the change maps — `current` takes what
// `since` recorded (the regions written since S_{k-1}), `since` starts empty — then ships
// current's regions read from S_k into the secondary's staging area and applies them there
// under a redo record. The secondary volume changes only inside an apply, so it is always
// exactly the primary at some cycle boundary. A durable cursor (pair dir `cycle.json`)
// resumes a cycle interrupted anywhere; a cycle whose apply is recorded is only cleaned up.

import { join } from 'node:path';
import { z } from 'zod';
import { Bitset } from '../bitmap';
import { TidemarkError, isTidemarkError } from '../errors';
import { rm } from 'node:fs/promises';
import { syncDirectory } from '../fsync';
import { defineRecord, readRecord, writeRecord } from '../store';
import type { PairEndpoints, VolumeEndpoint } from './endpoints';
import { recordCycle } from './cycle-history';
import { checkPairMembers, wireBytesOf } from './members';
import type { PairRecord, PairStore } from './pair-store';
import { runsOf } from './continuous';
import { cancelled } from './sync/conveyor';
import { sinceMapName } from './sync/names';
import { TokenBucket } from './sync/token-bucket';

export const currentMapName = (pairId: string) => `p${pairId.replace(/-/g, '').slice(0, 12)}-cur`;
export const cycleSnapshotLabel = (pairId: string, cycle: number) => `tidemark-cycle ${pairId} ${cycle}`;

export const cycleCursorKind = defineRecord(
  'tidemark/cycle',
  1,
  z
    .object({
      cycle: z.number().int().positive(),
      phase: z.enum(['freezing', 'shipping']),
      snapshotId: z.string().uuid().nullable(),
      pointInTime: z.string().nullable(),
      startedAt: z.string(),
    })
    .strict(),
);
type CycleCursor = z.infer<typeof cycleCursorKind.schema>;

export interface CycleProgress {
  readonly pair: string;
  readonly cycle: number;
  readonly phase: 'freezing' | 'shipping' | 'applying' | 'done';
  readonly regionsDone: number;
  readonly regionsTotal: number;
  readonly bytesTransferred: number;
}

export interface CycleOptions {
  readonly store: PairStore;
  readonly pair: PairRecord;
  readonly endpoints: PairEndpoints;
  readonly signal?: AbortSignal;
  readonly limitRateBytesPerSecond?: number;
  readonly onProgress?: (progress: CycleProgress) => void;
  readonly onWarning?: (message: string) => void;
}

export interface CycleSummary {
  readonly pair: string;
  readonly cycle: number;
  readonly resumed: boolean;
  readonly regions: number;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  /** The primary's instant the secondary now holds. */
  readonly pointInTime: string;
  readonly snapshotLifetimeMs: number;
  readonly wireBytes: number;
  readonly durationMs: number;
}

const stagesInFlight = 8;
/** Freezes again after a cycle's snapshot was deleted, per run: a snapshot deleted again every time fails the run (the next one freezes anew). */
export const refreezesMax = 3;

/** Runs (or resumes) one cycle of a periodic pair. Hold the pair's lock. */
export async function runCycle(options: CycleOptions): Promise<CycleSummary> {
  const { store, pair, endpoints } = options;
  const startMs = performance.now();
  const wireAtStart = wireBytesOf(endpoints);
  const checked = await checkPairMembers(pair, endpoints, 'replicating');
  const auth = { pairId: pair.pairId, generation: checked.secondary.generation };
  const cursorPath = join(store.pairDir(pair.name), 'cycle.json');
  const p = endpoints.primary;
  const s = endpoints.secondary;
  const current = currentMapName(pair.pairId);
  let cursor = await readRecord(cursorPath, cycleCursorKind);
  const resumed = cursor !== undefined;
  const applied = checked.secondary.appliedCycle ?? 0;

  if (cursor?.phase === 'freezing') cursor = await recoverFreeze(options, cursor, cursorPath);
  if (!cursor) cursor = await freeze(options, applied + 1, cursorPath);
  const { cycle } = cursor;
  let regions: number[] = [];
  let bytesTransferred = 0;
  if (applied < cycle) {
    for (let refreezes = 0; ; refreezes++) {
      // `current` also records writes after S_k: read now, its extra regions carry S_k's bytes (what the secondary has).
      const map = await p.agent.bitmapRead(p.path, current);
      regions = [...new Bitset(map.regionCount, map.words).indexes()].filter((r) => r < checked.primary.regionCount);
      try {
        bytesTransferred = await ship(options, cycle, cursor.snapshotId!, regions, auth);
        break;
      } catch (error) {
        if (refreezes >= refreezesMax || !(await snapshotGone(p, cursor.snapshotId!, error))) throw error;
        // S_k was deleted under the cycle (`snapshot delete`, the agent API): freeze again.
        // Nothing is lost. Nothing of cycle k was applied, so the secondary still holds
        // S_{k-1}. `current` holds every region written since S_{k-1} up to the lost S_k, and
        // (a change map keeps recording) every region written after it; it is cleared only
        // after an apply. The new freeze's rotation is a union, `current ∪= since` with
        // `since` emptied, run under the same hold of writes as the new snapshot S_k'; so
        // `current` covers every region that differs between S_{k-1} and S_k', and shipping
        // it from S_k' brings the secondary to S_k'. The regions already staged from S_k are
        // all in `current` (it only grew), so each is staged again from S_k' before the apply,
        // which copies only the regions listed; ship() returns only once no stage of S_k's
        // bytes is still under way. The cycle keeps its number (the secondary applied k-1).
        cursor = await freeze(options, cycle, cursorPath);
      }
    }
    options.onProgress?.({ pair: pair.name, cycle, phase: 'applying', regionsDone: regions.length, regionsTotal: regions.length, bytesTransferred });
    await s.agent.stageApply(s.path, pair.pairId, cycle, regions, { auth });
  }
  const snapshotId = cursor.snapshotId!;
  const snapshotCreatedMs = cursor.pointInTime ? Date.parse(cursor.pointInTime) : Date.now();
  // Applied: `current` starts the next cycle empty (what was written since S_k is in `since` too).
  await p.agent.bitmapClear(p.path, current);
  // The sync's last consistent snapshot only costs copy-on-write from here on.
  if (checked.secondary.lcsSnapshotId) {
    await s.agent.pairUpdate(s.path, pair.pairId, { lcsSnapshotId: null });
    await s.agent.snapshotDelete(s.path, checked.secondary.lcsSnapshotId).catch(ignoreNotFound);
  }
  await p.agent.snapshotDelete(p.path, snapshotId).catch(ignoreNotFound);
  const summary: CycleSummary = {
    pair: pair.name,
    cycle,
    resumed,
    regions: checked.primary.regionCount,
    regionsTransferred: regions.length,
    bytesTransferred,
    pointInTime: cursor.pointInTime ?? new Date(snapshotCreatedMs).toISOString(),
    snapshotLifetimeMs: Math.max(0, Date.now() - snapshotCreatedMs),
    wireBytes: wireBytesOf(endpoints) - wireAtStart,
    durationMs: Math.round(performance.now() - startMs),
  };
  // Before the cursor goes: a crash in between finishes the cycle again and replaces the entry.
  await recordCycle(store.pairDir(pair.name), summary, options.onWarning);
  await removeRecord(cursorPath);
  options.onProgress?.({ pair: pair.name, cycle, phase: 'done', regionsDone: regions.length, regionsTotal: regions.length, bytesTransferred });
  return summary;
}

/** The cursor goes with its directory entry durable: a crash after never redoes a finished cycle. */
export async function removeRecord(path: string): Promise<void> {
  await rm(path, { force: true });
  await syncDirectory(join(path, '..'));
}

export function ignoreNotFound(error: unknown): void {
  if (!isTidemarkError(error) || error.code !== 'NOT_FOUND') throw error;
}

/** Shipping failed NOT_FOUND and the cycle's snapshot is no longer on the primary (someone deleted it). */
export async function snapshotGone(p: VolumeEndpoint, snapshotId: string, error: unknown): Promise<boolean> {
  if (!isTidemarkError(error) || error.code !== 'NOT_FOUND') return false;
  return !(await p.agent.snapshotList(p.path)).snapshots.some((x) => x.snapshotId === snapshotId);
}

/** Takes S_k and rotates the maps at its instant, with the cursor written first. */
async function freeze(options: CycleOptions, cycle: number, cursorPath: string): Promise<CycleCursor> {
  const { pair, endpoints } = options;
  const p = endpoints.primary;
  const since = sinceMapName(pair.pairId);
  const current = currentMapName(pair.pairId);
  options.onProgress?.({ pair: pair.name, cycle, phase: 'freezing', regionsDone: 0, regionsTotal: 0, bytesTransferred: 0 });
  const maps = await p.agent.bitmapList(p.path);
  const sinceMap = maps.find((m) => m.name === since);
  if (!sinceMap) {
    throw new TidemarkError(
      'INCOMPLETE',
      `pair "${pair.name}" has no record of what was written since its last sync on ${p.volref}`,
      `run \`tidemark sync ${pair.name}\` first (replicate does when the pair was never synced)`,
    );
  }
  if (!maps.some((m) => m.name === current)) await p.agent.bitmapCreate(p.path, current);
  const freezing: CycleCursor = {
    cycle,
    phase: 'freezing',
    snapshotId: null,
    pointInTime: null,
    startedAt: new Date().toISOString(),
  };
  await writeRecord(cursorPath, cycleCursorKind, freezing);
  const snapshot = await p.agent.snapshotCreate(p.path, { label: cycleSnapshotLabel(pair.pairId, cycle), rotateMaps: [current, since] });
  const shipping: CycleCursor = { ...freezing, phase: 'shipping', snapshotId: snapshot.snapshotId, pointInTime: new Date(snapshot.createdAtMs).toISOString() };
  await writeRecord(cursorPath, cycleCursorKind, shipping);
  return shipping;
}

/**
 * A crash during the freeze: the rotation runs before the snapshot is written, under the same
 * hold of the writes, so a snapshot with the cycle's label means both happened — ship it.
 * Without one the freeze starts over: a rotation that did happen only left `current` larger
 * (the next rotation is a union), nothing is lost.
 */
async function recoverFreeze(options: CycleOptions, cursor: CycleCursor, cursorPath: string): Promise<CycleCursor | undefined> {
  const { pair, endpoints } = options;
  const p = endpoints.primary;
  const label = cycleSnapshotLabel(pair.pairId, cursor.cycle);
  const snapshot = (await p.agent.snapshotList(p.path)).snapshots.find((x) => x.label === label);
  if (snapshot) {
    const shipping: CycleCursor = { ...cursor, phase: 'shipping', snapshotId: snapshot.snapshotId, pointInTime: new Date(snapshot.createdAtMs).toISOString() };
    await writeRecord(cursorPath, cycleCursorKind, shipping);
    return shipping;
  }
  // The cursor stays until the freeze rewrites it: `current` may hold the regions a rotation moved.
  return undefined;
}

/** Stages `regions` read from S_k on the secondary, a few in flight; returns the bytes sent. */
export async function ship(
  options: CycleOptions,
  cycle: number,
  snapshotId: string,
  regions: readonly number[],
  auth: { pairId: string; generation: number },
): Promise<number> {
  const { pair, endpoints, signal } = options;
  const p = endpoints.primary;
  const s = endpoints.secondary;
  const bucket = options.limitRateBytesPerSecond ? new TokenBucket(options.limitRateBytesPerSecond, pair.regionBytes) : undefined;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let done = 0;
  let bytes = 0;
  const report = () =>
    options.onProgress?.({ pair: pair.name, cycle, phase: 'shipping', regionsDone: done, regionsTotal: regions.length, bytesTransferred: bytes });
  report();
  try {
    for (const [first, count] of runsOf(regions)) {
      for await (const { regionIndex, data } of p.agent.readRegions(p.path, first, count, { snapshotId, signal })) {
        if (signal?.aborted) throw cancelled();
        if (failure !== undefined) throw failure;
        await bucket?.take(data.length, signal);
        while (inFlight.size >= stagesInFlight) await Promise.race(inFlight);
        const staged: Promise<void> = s.agent.stageRegion(s.path, pair.pairId, cycle, regionIndex, data, { auth }).then(
          () => {
            done += 1;
            bytes += data.length;
            if (done % 16 === 0) report();
          },
          (error: unknown) => {
            failure ??= error;
          },
        );
        inFlight.add(staged);
        void staged.finally(() => inFlight.delete(staged));
      }
    }
  } finally {
    // Returns (or throws) only once every stage sent has settled: a retry, or a cycle frozen
    // again, never has a stage of this attempt land after its own.
    await Promise.all(inFlight);
  }
  if (failure !== undefined) throw failure;
  report();
  return bytes;
}

/** The pair's unfinished single-pair cycle, if any. */
export function cycleCursorOf(store: PairStore, pair: PairRecord): Promise<{ cycle: number; phase: string } | undefined> {
  return readRecord(join(store.pairDir(pair.name), 'cycle.json'), cycleCursorKind);
}

/** Regions written since the secondary's point in time, plus a cycle's being shipped. */
export async function periodicPending(store: PairStore, pair: PairRecord, p: VolumeEndpoint): Promise<number | null> {
  const maps = await p.agent.bitmapList(p.path);
  const since = maps.find((m) => m.name === sinceMapName(pair.pairId));
  if (!since) return null;
  // While a cycle is unfinished `current` holds its regions (it records later writes too: an overcount).
  const cursor = await cycleCursorOf(store, pair);
  const current = cursor ? (maps.find((m) => m.name === currentMapName(pair.pairId))?.setCount ?? 0) : 0;
  return since.setCount + current;
}
