// One sync engine for every method (docs/sync.md "One engine: rounds"): round 0 passes over
// the pair's extent choosing regions per method, reading the live primary while the `since`
// change map records every write; each tail freezes `since` into the durable todo under a
// fresh primary snapshot P and conveys those regions from P; rounds repeat until nothing is
// pending (or eight rounds), then the secondary takes its last consistent snapshot (seed 000).

import { randomUUID } from 'node:crypto';
import { assert } from '../../assert';
import { Bitset } from '../../bitmap';
import { MiB } from '../../constants';
import { TidemarkError, isTidemarkError } from '../../errors';
import { ProgressMeter } from '../../progress';
import type { AgentApi, WriteAuth } from '../../agent';
import type { PairEndpoints, VolumeEndpoint } from '../endpoints';
import type { PairRecord, PairStore } from '../pair-store';
import { checkPairMembers, wireBytesOf } from '../members';
import { checkNoCycleInProgress } from '../groups';
import { Conveyor } from './conveyor';
import { CursorStore, type SyncCursor, type SyncMethod, type SyncTotals } from './cursor';
import { acquirePairLock } from './lock';
import { lcsSnapshotLabel, sinceMapName, swapMapName, syncSnapshotLabel, syncSnapshotPrefix } from './names';
import { selectRegions, type Selection } from './select';
import { TokenBucket } from '../../token-bucket';

export type SyncMethodChoice = SyncMethod | 'auto';

export interface SyncProgress {
  readonly pair: string;
  readonly syncId: string;
  readonly method: SyncMethod;
  readonly round: number;
  readonly phase: 'pass' | 'tail' | 'finish';
  readonly regionsDone: number;
  readonly regionsTotal: number;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly bytesPerSecond: number;
  readonly etaMs: number | undefined;
  /** Regions written on the primary since the point being conveyed (sent again later). */
  readonly marked: number;
}

export interface SyncOptions {
  readonly store: PairStore;
  readonly pair: PairRecord;
  readonly endpoints: PairEndpoints;
  readonly method: SyncMethodChoice;
  readonly restart?: boolean;
  readonly limitRateBytesPerSecond?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: SyncProgress) => void;
  /** Tests: rounds before giving up on a busy primary (default 8). */
  readonly roundsMax?: number;
  readonly commitIntervalMs?: number;
  /** W in bytes: written but uncommitted at most (default 64 MiB); what a crash can make the next run send again. */
  readonly windowBytes?: number;
  readonly onWarning?: (message: string) => void;
  /** Each region as its write to the secondary is acknowledged (the console's heatmap). */
  readonly onConveyed?: (regionIndex: number) => void;
}

export interface SyncSummary {
  readonly pair: string;
  readonly syncId: string;
  readonly method: SyncMethod;
  readonly scope: SyncCursor['scope'];
  readonly resumed: boolean;
  readonly rounds: number;
  readonly regions: number;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly regionsReclaimed: number;
  readonly regionsCompared: number;
  readonly signatureBytes: number;
  /** RPC bytes both ways on the agent connections during this run (0 for in-process agents). */
  readonly wireBytes: number;
  readonly pendingRegions: number;
  readonly pointInTime: string;
  readonly secondarySnapshotId: string;
  readonly primarySnapshot: { readonly lifetimeMs: number; readonly cowBytesPeak: number };
  readonly durationMs: number;
  readonly totals: SyncTotals;
}

const roundsMaxDefault = 8;

/** Writes in flight to the secondary: up to 16 MiB, 2 to 16 writes. */
export function syncWritesInFlight(regionBytes: number): number {
  return Math.min(16, Math.max(2, Math.floor((16 * MiB) / regionBytes)));
}

/** W: regions sent but not committed at most; a crash makes the next run send at most these again. */
export function syncWindowRegions(regionBytes: number, windowBytes = 64 * MiB): number {
  return Math.max(4, syncWritesInFlight(regionBytes), Math.floor(windowBytes / regionBytes));
}

/** Runs (or resumes) a sync of `pair`; one at a time per pair (BUSY otherwise). */
export async function runSync(options: SyncOptions): Promise<SyncSummary> {
  const pairDir = options.store.pairDir(options.pair.name);
  const lock = await acquirePairLock(pairDir, options.pair.name, 'sync');
  try {
    await checkNoCycleInProgress(options.store, options.pair);
    return await new SyncRun(options, new CursorStore(pairDir)).run();
  } finally {
    await lock.release();
  }
}

interface Counters {
  regionsTransferred: number;
  bytesTransferred: number;
  regionsReclaimed: number;
  regionsCompared: number;
  signatureBytes: number;
}

class SyncRun {
  private readonly primary: VolumeEndpoint;
  private readonly secondary: VolumeEndpoint;
  private readonly pair: PairRecord;
  private regionCount = 0;
  private lastRegionBytes = 0;
  private readonly since: string;
  private readonly swap: string;
  private readonly auth: WriteAuth;
  private readonly bucket: TokenBucket | undefined;
  private readonly startedAtMs = performance.now();
  private readonly wireBytesAtStart: number;
  private readonly counters: Counters = { regionsTransferred: 0, bytesTransferred: 0, regionsReclaimed: 0, regionsCompared: 0, signatureBytes: 0 };
  private cursor!: SyncCursor;
  private resumed = false;
  /** Sync snapshots this run holds on the primary, and since when at least one has been held. */
  private snapshotsHeld = 0;
  private heldSinceMs = 0;
  private snapshotLifetimeMs = 0;
  private cowBytesPeak = 0;
  private lastProgressMs = 0;
  private meter: ProgressMeter | undefined;
  private readonly bytesMeter = new ProgressMeter(Number.MAX_SAFE_INTEGER);
  private marked = 0;

  constructor(
    private readonly options: SyncOptions,
    private readonly cursors: CursorStore,
  ) {
    this.pair = options.pair;
    this.primary = options.endpoints.primary;
    this.secondary = options.endpoints.secondary;
    this.since = sinceMapName(this.pair.pairId);
    this.swap = swapMapName(this.pair.pairId);
    this.auth = { pairId: this.pair.pairId, generation: this.pair.generation };
    this.wireBytesAtStart = wireBytesOf(options.endpoints);
    const rate = options.limitRateBytesPerSecond;
    this.bucket = rate === undefined ? undefined : new TokenBucket(rate, this.pair.regionBytes);
  }

  private get p(): AgentApi {
    return this.primary.agent;
  }

  async run(): Promise<SyncSummary> {
    this.regionCount = await this.checkMembers();
    await this.start();
    try {
      if (this.cursor.phase === 'pass' && this.cursor.scope === 'pending') await this.freeze(0);
      else if (this.cursor.phase === 'pass') await this.pass();
      // Rounds go on while what is pending shrinks: a writer that stopped converges in a round
      // or two; one that keeps writing would keep every round busy (and a snapshot held), so
      // its regions stay pending for the next sync or for replication.
      let previousPending = Number.POSITIVE_INFINITY;
      for (;;) {
        await this.tail();
        const pending = await this.sinceCount();
        const shrinking = pending < previousPending;
        previousPending = pending;
        if (pending === 0 || !shrinking || this.cursor.round + 1 >= (this.options.roundsMax ?? roundsMaxDefault)) break;
        await this.freeze(this.cursor.round + 1);
      }
      return await this.finish();
    } catch (error) {
      throw this.explain(error);
    }
  }

  private explain(error: unknown): unknown {
    if (!isTidemarkError(error)) return error;
    const where = this.cursor.phase === 'pass' ? `at region ${this.cursor.nextRegion} of ${this.regionCount}` : `in round ${this.cursor.round + 1}`;
    const resume = `run \`tidemark sync ${this.pair.name}\` to resume`;
    if (error.code === 'CANCELLED') return new TidemarkError('CANCELLED', `sync of ${this.pair.name} cancelled ${where}`, resume);
    if (error.code === 'PERMISSION' || error.code === 'STALE' || error.code === 'USAGE') return error;
    return new TidemarkError(
      error.code,
      `sync of ${this.pair.name} stopped ${where}: ${error.message}`,
      `${error.hint ? `${error.hint}; then ` : ''}${resume}`,
      {
        cause: error,
      },
    );
  }

  /** Both agents agree they are this pair at this generation; returns the extent. */
  private async checkMembers(): Promise<number> {
    const checked = await checkPairMembers(this.pair, this.options.endpoints, 'syncing');
    this.lastRegionBytes = checked.lastRegionBytes;
    return checked.primary.regionCount;
  }

  /** Resumes the cursor, or begins round 0. */
  private async start(): Promise<void> {
    let cursor = await this.cursors.read();
    const explicit = this.options.method === 'auto' ? undefined : this.options.method;
    if (cursor && cursor.generation !== this.pair.generation) {
      this.options.onWarning?.(`an unfinished sync of generation ${cursor.generation} was abandoned: the pair is at generation ${this.pair.generation}`);
      cursor = await this.abandon(cursor);
    }
    if (cursor && this.options.restart) cursor = await this.abandon(cursor);
    if (cursor && explicit && explicit !== cursor.method) {
      throw new TidemarkError(
        'USAGE',
        `an unfinished ${cursor.method} sync of ${this.pair.name} exists; it cannot resume as ${explicit}`,
        `run \`tidemark sync ${this.pair.name}\` to resume it, or add --restart to begin a ${explicit} sync`,
      );
    }
    if (cursor && (await this.resumable(cursor))) {
      this.cursor = cursor;
      this.resumed = true;
      await this.deleteStraySnapshots();
      const held = await this.snapshotExists(cursor.snapshotId);
      if (held) this.snapshotHeld(+1); // this run holds it from now on
      // A tail whose P is gone freezes again: the todo keeps what was not conveyed, since has the rest.
      if (cursor.phase === 'tail' && !held) await this.freeze(cursor.round);
      return;
    }
    if (cursor) await this.abandon(cursor);
    const chosen = explicit ? { method: explicit, scope: 'extent' as const } : await this.autoMethod();
    await this.begin(chosen.method, chosen.scope);
  }

  private async resumable(cursor: SyncCursor): Promise<boolean> {
    const maps = await this.p.bitmapList(this.primary.path);
    const since = maps.find((m) => m.name === this.since);
    if (!since) {
      this.options.onWarning?.(`the primary's change map of the unfinished sync is gone; the sync starts over`);
      return false;
    }
    if (cursor.phase === 'pass' && cursor.method === 'early' && !(await this.snapshotExists(cursor.snapshotId))) {
      this.options.onWarning?.(`the early sync's snapshot is gone; the sync starts over`);
      return false;
    }
    return true;
  }

  private async snapshotExists(snapshotId: string | null): Promise<boolean> {
    if (snapshotId === null) return false;
    return (await this.p.snapshotList(this.primary.path)).snapshots.some((s) => s.snapshotId === snapshotId);
  }

  /** Deletes what an abandoned cursor held on the primary; returns undefined. */
  private async abandon(cursor: SyncCursor): Promise<undefined> {
    if (cursor.snapshotId && (await this.snapshotExists(cursor.snapshotId))) await this.p.snapshotDelete(this.primary.path, cursor.snapshotId);
    await this.cursors.remove();
    return undefined;
  }

  /** Sync snapshots of this pair other than the cursor's: made just before a crash, or left by an abandoned sync. */
  private async deleteStraySnapshots(): Promise<void> {
    const prefix = syncSnapshotPrefix(this.pair.pairId);
    const { snapshots } = await this.p.snapshotList(this.primary.path);
    for (const s of snapshots)
      if (s.label.startsWith(prefix) && s.snapshotId !== this.cursor?.snapshotId) await this.p.snapshotDelete(this.primary.path, s.snapshotId);
  }

  /**
   * docs/sync.md "auto": after a finished sync whose marks are intact, only what was written
   * since (tardy over the pending set); a fresh pair, tardy; with both realization maps
   * tracked (every registered volume: after an image import too), realized; else, seeded,
   * signature; else tardy.
   */
  private async autoMethod(): Promise<{ method: SyncMethod; scope: SyncCursor['scope'] }> {
    const [sm, pRealized, sRealized, maps] = await Promise.all([
      this.secondary.agent.volumeState(this.secondary.path).then((s) => s.members.find((m) => m.pairId === this.pair.pairId)!),
      this.p.realizedMap(this.primary.path),
      this.secondary.agent.realizedMap(this.secondary.path),
      this.p.bitmapList(this.primary.path),
    ]);
    const last = this.pair.lastSync;
    const marksIntact = last && last.generation === this.pair.generation && sm.lcsSnapshotId !== null && maps.some((m) => m.name === this.since);
    if (marksIntact) return { method: 'tardy', scope: 'pending' };
    if (sm.lcsSnapshotId === null && sm.seed === null) return { method: 'tardy', scope: 'extent' };
    if (pRealized.source === 'tracked' && sRealized.source === 'tracked') return { method: 'realized', scope: 'extent' };
    return { method: sm.seed !== null ? 'signature' : 'tardy', scope: 'extent' };
  }

  /**
   * Round 0: a fresh `since` (seed 000: all bits initialised to 0) and for early its snapshot;
   * the pending scope keeps `since` as it is (it holds what the secondary lacks).
   */
  private async begin(method: SyncMethod, scope: SyncCursor['scope']): Promise<void> {
    await this.options.store.update(this.pair.name, { lastSync: null });
    const maps = await this.p.bitmapList(this.primary.path);
    if (scope === 'pending')
      assert(
        maps.some((m) => m.name === this.since),
        'a pending-scope sync has its since map',
      );
    else if (maps.some((m) => m.name === this.since)) await this.p.bitmapClear(this.primary.path, this.since);
    else await this.p.bitmapCreate(this.primary.path, this.since);
    const syncId = randomUUID();
    this.cursor = {
      syncId,
      method,
      scope,
      generation: this.pair.generation,
      round: 0,
      phase: 'pass',
      nextRegion: 0,
      snapshotId: null,
      snapshotCreatedAt: null,
      sinceBitmapId: null,
      sparse: await this.secondaryKnownEmpty(method),
      startedAt: new Date().toISOString(),
      totals: { regionsTransferred: 0, bytesTransferred: 0, regionsReclaimed: 0 },
    };
    await this.deleteStraySnapshots();
    if (method === 'early') {
      const p = await this.p.snapshotCreate(this.primary.path, { label: syncSnapshotLabel(this.pair.pairId, syncId, 0) });
      this.cursor = { ...this.cursor, snapshotId: p.snapshotId, snapshotCreatedAt: new Date(p.createdAtMs).toISOString() };
      this.snapshotHeld(+1);
    }
    await this.cursors.write(this.cursor);
  }

  /** Tardy and early skip primary-unrealized regions when the secondary holds nothing (zeros onto zeros). */
  private async secondaryKnownEmpty(method: SyncMethod): Promise<boolean> {
    if (method !== 'tardy' && method !== 'early') return false;
    const [p, s] = await Promise.all([this.p.realizedMap(this.primary.path), this.secondary.agent.realizedMap(this.secondary.path)]);
    if (p.source !== 'tracked' || s.source !== 'tracked') return false;
    return new Bitset(s.regionCount, s.words).popcount(0, this.regionCount) === 0;
  }

  private async sinceCount(): Promise<number> {
    const map = (await this.p.bitmapList(this.primary.path)).find((m) => m.name === this.since);
    assert(map !== undefined, 'the since map exists while a sync runs');
    return map.setCount;
  }

  private conveyor(commit: (acked: readonly number[], inFlight: ReadonlySet<number>) => Promise<void>): Conveyor {
    const regionBytes = this.pair.regionBytes;
    const writesInFlightMax = syncWritesInFlight(regionBytes);
    return new Conveyor({
      secondary: this.secondary,
      auth: this.auth,
      writesInFlightMax,
      windowRegions: syncWindowRegions(regionBytes, this.options.windowBytes),
      commitIntervalMs: this.options.commitIntervalMs ?? 1000,
      bucket: this.bucket,
      signal: this.options.signal,
      commit,
      onWritten: (regionIndex, bytes) => {
        this.options.onConveyed?.(regionIndex);
        this.counters.regionsTransferred += 1;
        this.counters.bytesTransferred += bytes;
      },
    });
  }

  private totals(): SyncTotals {
    return this.cursor.totals;
  }

  /** Adds what was committed since the last commit to the durable totals. */
  private committedTotals(acked: readonly number[]): SyncTotals {
    const t = this.cursor.totals;
    const bytes = acked.reduce((sum, r) => sum + this.regionBytesOf(r), 0);
    return { ...t, regionsTransferred: t.regionsTransferred + acked.length, bytesTransferred: t.bytesTransferred + bytes };
  }

  private regionBytesOf(regionIndex: number): number {
    return regionIndex === this.regionCount - 1 ? this.lastRegionBytes : this.pair.regionBytes;
  }

  /** Round 0's pass: regions of the extent chosen per method, from the live primary (early: from its snapshot). */
  private async pass(): Promise<void> {
    const { method } = this.cursor;
    const early = method === 'early';
    let frontier = this.cursor.nextRegion;
    const conveyor = this.conveyor(async (acked, inFlight) => {
      const nextRegion = Math.min(frontier, ...inFlight);
      assert(nextRegion >= this.cursor.nextRegion, 'the pass cursor never goes back');
      this.cursor = { ...this.cursor, nextRegion, totals: this.committedTotals(acked) };
      await this.cursors.write(this.cursor);
      this.marked = await this.sinceCount();
    });
    this.meter = new ProgressMeter(this.regionCount - this.cursor.nextRegion);
    const base = this.cursor.nextRegion;
    const selection: Selection = await selectRegions({
      method,
      sparse: this.cursor.sparse,
      primary: this.primary,
      secondary: this.secondary,
      hash: this.pair.hash,
      regionCount: this.regionCount,
      signal: this.options.signal,
      auth: this.auth,
      onSignatures: (regions, bytes) => {
        this.counters.regionsCompared += regions;
        this.counters.signatureBytes += bytes;
      },
      onReclaimed: (regions) => (this.counters.regionsReclaimed += regions),
    });
    try {
      for await (const window of selection.windows(this.cursor.nextRegion)) {
        for (const run of window.runs) {
          const read = this.p.readRegions(this.primary.path, run.start, run.end - run.start, {
            signal: this.options.signal,
            ...(early ? { snapshotId: this.cursor.snapshotId! } : { skipMarked: this.since }),
          });
          for await (const region of read) {
            await conveyor.send(region.regionIndex, region.data);
            frontier = region.regionIndex + 1;
            this.progress('pass', frontier - base);
          }
          frontier = run.end;
        }
        frontier = window.end;
        this.progress('pass', frontier - base);
      }
      await conveyor.drain();
    } catch (error) {
      await conveyor.settle();
      throw error;
    }
    assert(frontier === this.regionCount || this.regionCount === 0, 'the pass covered the extent');
    await this.freeze(0);
  }

  /**
   * Freezes `since` into the durable todo under a fresh primary snapshot P: the swap map is
   * created first (so it records every write from before P on), then P, then `since` is read
   * (it holds every write before P), then the names are swapped. Design: docs/sync.md "Freeze".
   */
  private async freeze(round: number): Promise<void> {
    const path = this.primary.path;
    const maps = await this.p.bitmapList(path);
    if (maps.some((m) => m.name === this.swap)) await this.p.bitmapDelete(path, this.swap);
    await this.p.bitmapCreate(path, this.swap);
    const previous = this.cursor.snapshotId;
    await this.clearTracked();
    const snapshot = await this.p.snapshotCreate(path, { label: syncSnapshotLabel(this.pair.pairId, this.cursor.syncId, round) });
    this.snapshotHeld(+1);
    const since = await this.p.bitmapRead(path, this.since);
    const sinceBitmapId = (await this.p.bitmapList(path)).find((m) => m.name === this.since)!.bitmapId;
    const todo = await this.cursors.readTodo(this.regionCount);
    assert(since.regionCount === this.regionCount, "the since map covers the pair's extent");
    todo.unionWith(new Bitset(since.regionCount, since.words));
    await this.cursors.writeTodo(todo);
    this.cursor = {
      ...this.cursor,
      round,
      phase: 'tail',
      snapshotId: snapshot.snapshotId,
      snapshotCreatedAt: new Date(snapshot.createdAtMs).toISOString(),
      sinceBitmapId,
    };
    await this.cursors.write(this.cursor);
    if (previous !== null) await this.deleteSnapshot(previous);
    await this.p.bitmapSwap(path, this.since, this.swap);
    await this.p.bitmapDelete(path, this.swap);
  }

  /**
   * Writes tracked on the primary (OOS) before P are the sync's to convey: they are taken and
   * settled as shipped just before P is taken, so replication afterwards ships only what was
   * written after P (a write between this and P is in both: sent twice, never lost).
   */
  private async clearTracked(): Promise<void> {
    const { pairId } = this.pair;
    const taken = await this.p.trackingTake(this.primary.path, pairId, this.regionCount, 0).catch((error: unknown) => {
      if (isTidemarkError(error) && error.code === 'NOT_FOUND') return []; // an agent that does not track this pair
      throw error;
    });
    if (taken.length > 0) await this.p.trackingSettle(this.primary.path, pairId, taken, []);
  }

  /** Conveys the todo from P, clearing each region's bit once it is committed. */
  private async tail(): Promise<void> {
    assert(this.cursor.phase === 'tail' && this.cursor.snapshotId !== null, 'a tail has its snapshot');
    const todo = await this.cursors.readTodo(this.regionCount);
    const total = todo.popcount();
    this.meter = new ProgressMeter(total);
    let done = 0;
    const conveyor = this.conveyor(async (acked) => {
      for (const r of acked) todo.clear(r);
      if (acked.length > 0) await this.cursors.writeTodo(todo);
      this.cursor = { ...this.cursor, totals: this.committedTotals(acked) };
      await this.cursors.write(this.cursor);
      await this.sampleCow();
    });
    try {
      for (const run of [...todo.runs()]) {
        const read = this.p.readRegions(this.primary.path, run.start, run.end - run.start, { signal: this.options.signal, snapshotId: this.cursor.snapshotId });
        for await (const region of read) {
          await conveyor.send(region.regionIndex, region.data);
          this.progress('tail', ++done);
        }
      }
      await conveyor.drain();
    } catch (error) {
      await conveyor.settle();
      throw error;
    }
    assert(todo.popcount() === 0, 'the tail conveyed its todo');
  }

  /** Counts a sync snapshot taken (+1) or deleted (-1): the lifetime is the time at least one is held. */
  private snapshotHeld(change: 1 | -1): void {
    if (change === 1) {
      if (this.snapshotsHeld++ === 0) this.heldSinceMs = performance.now();
      return;
    }
    assert(this.snapshotsHeld > 0, 'a deleted sync snapshot was counted when it was taken or found');
    if (--this.snapshotsHeld === 0) this.snapshotLifetimeMs += performance.now() - this.heldSinceMs;
  }

  /** Deletes a sync snapshot of the primary (sampling its copy-on-write size first), if it still exists. */
  private async deleteSnapshot(snapshotId: string): Promise<void> {
    if (!(await this.snapshotExists(snapshotId))) return;
    await this.sampleCow(snapshotId);
    await this.p.snapshotDelete(this.primary.path, snapshotId);
    this.snapshotHeld(-1);
  }

  private async sampleCow(id = this.cursor.snapshotId): Promise<void> {
    if (id === null) return;
    const info = (await this.p.snapshotList(this.primary.path)).snapshots.find((s) => s.snapshotId === id);
    if (info?.copiedRegions != null) this.cowBytesPeak = Math.max(this.cowBytesPeak, info.copiedRegions * this.pair.regionBytes);
  }

  /** The secondary now equals P: its last consistent snapshot replaces the previous one; P goes. */
  private async finish(): Promise<SyncSummary> {
    const s = this.secondary;
    await s.agent.flush(s.path);
    await this.sampleCow();
    const lcs = await s.agent.snapshotCreate(s.path, { label: lcsSnapshotLabel(this.pair.pairId, this.cursor.syncId) });
    await s.agent.pairUpdate(s.path, this.pair.pairId, { lcsSnapshotId: lcs.snapshotId });
    // Every other LCS of this pair goes: the previous one, and any a run stopped between taking
    // one and recording it left behind (unrecorded, it would hold copy-on-write data forever).
    const lcsPrefix = lcsSnapshotLabel(this.pair.pairId, '');
    for (const old of (await s.agent.snapshotList(s.path)).snapshots) {
      if (old.label.startsWith(lcsPrefix) && old.snapshotId !== lcs.snapshotId) await s.agent.snapshotDelete(s.path, old.snapshotId);
    }
    const pointInTime = this.cursor.snapshotCreatedAt!;
    if (this.cursor.snapshotId !== null) await this.deleteSnapshot(this.cursor.snapshotId);
    const pendingRegions = await this.sinceCount();
    const durationMs = Math.round(performance.now() - this.startedAtMs);
    await this.options.store.update(this.pair.name, {
      lastSync: { syncId: this.cursor.syncId, method: this.cursor.method, finishedAt: new Date().toISOString(), pointInTime, generation: this.pair.generation },
    });
    const totals = this.totals();
    await this.cursors.remove();
    this.progress('finish', this.meter?.snapshot().total ?? 0, true); // the last phase's totals, all done
    return {
      pair: this.pair.name,
      syncId: this.cursor.syncId,
      method: this.cursor.method,
      scope: this.cursor.scope,
      resumed: this.resumed,
      rounds: this.cursor.round + 1,
      regions: this.regionCount,
      ...this.counters,
      wireBytes: wireBytesOf(this.options.endpoints) - this.wireBytesAtStart,
      pendingRegions,
      pointInTime,
      secondarySnapshotId: lcs.snapshotId,
      primarySnapshot: { lifetimeMs: Math.round(this.snapshotLifetimeMs), cowBytesPeak: this.cowBytesPeak },
      durationMs,
      totals,
    };
  }

  private progress(phase: SyncProgress['phase'], done: number, force = false): void {
    const now = performance.now();
    const snapshot = this.meter?.update(Math.max(done, this.meter.snapshot().done));
    if (!this.options.onProgress || (!force && now - this.lastProgressMs < 250)) return;
    this.lastProgressMs = now;
    this.options.onProgress({
      pair: this.pair.name,
      syncId: this.cursor.syncId,
      method: this.cursor.method,
      round: this.cursor.round,
      phase,
      regionsDone: snapshot?.done ?? 0,
      regionsTotal: snapshot?.total ?? 0,
      regionsTransferred: this.counters.regionsTransferred,
      bytesTransferred: this.counters.bytesTransferred,
      bytesPerSecond: this.bytesMeter.update(this.counters.bytesTransferred).ratePerSecond,
      etaMs: snapshot?.etaMs,
      marked: this.marked,
    });
  }
}
