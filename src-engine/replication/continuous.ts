// Continuous replication (seed 003, docs/replication.md): the primary's agent tracks every
// write in OOS (MOOS persisted); the shipper takes OOS regions (their bits cleared with writes
// held, so a later write marks them again), reads them live, writes them to the secondary with
// the pair's auth, flushes it, and only then settles them — until then they stay in MOOS, so a
// crash anywhere resends them. A catch-up (a backlog found when shipping starts or resumes
// after a failure) runs under a protective snapshot of the secondary, released when in sync.

import { assert } from '../assert';
import { runsOf } from '../bitmap';
import { MiB } from '../constants';
import { TidemarkError, isTidemarkError } from '../errors';
import { ProgressMeter, formatDurationMs } from '../progress';
import type { TrackingState, WriteAuth } from '../agent';
import type { PairEndpoints } from './endpoints';
import { checkPairMembers, wireBytesOf } from './members';
import { shipPathOf, type ShipPath } from './direct';
import type { PairRecord } from './pair-store';
import { Conveyor, cancelled, sleepMs } from './sync/conveyor';
import { sinceMapName } from './sync/names';
import { TokenBucket } from '../token-bucket';

export interface ShipProgress {
  readonly pair: string;
  readonly state: 'catching-up' | 'shipping' | 'in-sync' | 'retrying';
  /** Regions out of sync on the primary, not yet taken. */
  readonly oosRegions: number;
  /** Taken and not yet durable on the secondary. */
  readonly inFlightRegions: number;
  /** What a crash of the primary's agent this instant would resend. */
  readonly moosRegions: number;
  readonly lagBytes: number;
  readonly oldestUnshippedMs: number;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly bytesPerSecond: number;
  /** Until the lag is shipped at the current rate (writes meanwhile add to it); undefined while unknown. */
  readonly etaMs: number | undefined;
  /** Regions the session started with (recovered from MOOS, left by a run that stopped, or written meanwhile). */
  readonly backlogRegions: number;
  readonly protectSnapshotId: string | null;
  /** How regions travel: from the primary's host straight to the secondary's, or through this process. */
  readonly path: ShipPath;
}

export interface ShipOptions {
  readonly pair: PairRecord;
  readonly endpoints: PairEndpoints;
  /** Stop at the first moment nothing is out of sync (`replicate --once`); otherwise run until `signal`. */
  readonly once: boolean;
  readonly signal?: AbortSignal;
  readonly limitRateBytesPerSecond?: number;
  readonly onProgress?: (progress: ShipProgress) => void;
  readonly onWarning?: (message: string) => void;
  /** How often an idle shipper looks for new writes (default 20 ms). */
  readonly idlePollMs?: number;
  /** Attempts in a row that may fail (a dropped link, a restarting agent) before giving up; default 8 with --once, unbounded otherwise. */
  readonly attemptsMax?: number;
  /** Take a protective snapshot before a catch-up (default true). */
  readonly protect?: boolean;
  /** 'relayed': through this process even when the pair has a per-pair key (default 'auto': direct when it has one). */
  readonly path?: 'auto' | 'relayed';
  /** Tests: the largest batch taken at once. */
  readonly batchRegionsMax?: number;
  /**
   * After the direct path failed and shipping went on relayed, the direct path is tried again
   * this long after (default 60 s, or $TIDEMARK_TEST_DIRECT_RETRY_MS), doubling after each
   * further failure up to an hour: a long-running `serve` goes back to direct once the key or
   * route works again, without a warning per batch while it does not.
   */
  readonly directRetryMs?: number;
}

export interface ShipSummary {
  readonly pair: string;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  /** MOOS regions found when tracking started on the primary (a crash: exactly these are resent). */
  readonly recoveredRegions: number;
  /** The backlog found when shipping started. */
  readonly backlogRegions: number;
  /** Regions a previous shipper had taken and not settled (requeued). */
  readonly requeuedRegions: number;
  readonly protectSnapshots: number;
  readonly retries: number;
  readonly wireBytes: number;
  readonly durationMs: number;
  readonly inSync: boolean;
  /** The path the last batch took. */
  readonly path: ShipPath;
  /** Times the direct path failed for good (a revoked key, an unreachable address) and shipping went on relayed. */
  readonly directFallbacks: number;
}

export { runsOf };

export const protectSnapshotLabelPrefix = 'tidemark-protect ';
const batchBytes = 64 * MiB;
/** One direct call: the secondary is flushed and the regions settled at the end of each. */
const directCallBytes = 32 * MiB;
const writesInFlight = 8;
const retryDelayMsMax = 5_000;
const directRetryMsDefault = 60_000;
const directRetryMsMax = 3_600_000;
/** Test-only: the first direct retry's delay (ms) when ShipOptions.directRetryMs is not given. */
export const testDirectRetryEnv = 'TIDEMARK_TEST_DIRECT_RETRY_MS';

function directRetryMsOf(options: ShipOptions): number {
  const fromEnv = Number(process.env[testDirectRetryEnv]);
  return options.directRetryMs ?? (Number.isSafeInteger(fromEnv) && fromEnv > 0 ? fromEnv : directRetryMsDefault);
}

/** Ships the pair's tracked changes to its secondary. Hold the pair lock while it runs. */
export async function shipContinuous(options: ShipOptions): Promise<ShipSummary> {
  return new Shipper(options).run();
}

/** Regions taken for shipping, and their realization on the secondary (started at the take). */
interface Batch {
  readonly taken: readonly number[];
  readonly realized: Promise<void>;
}

class Shipper {
  private readonly startMs = performance.now();
  private readonly meter = new ProgressMeter(Number.MAX_SAFE_INTEGER);
  private readonly bucket: TokenBucket | undefined;
  private readonly batchRegions: number;
  private auth!: WriteAuth;
  private protectSnapshotId: string | null = null;
  private regionsTransferred = 0;
  private bytesTransferred = 0;
  private protectSnapshots = 0;
  private retries = 0;
  private requeued = 0;
  private backlog = 0;
  private recovered = 0;
  private nextRegion = 0;
  private readonly wireAtStart: number;
  /** The secondary's last consistent snapshot from the sync, while it still exists. */
  private lcsSnapshotId: string | null = null;
  private path: ShipPath = 'local';
  private directFallbacks = 0;
  /** The pair's own path (direct when it has a per-pair key), whatever this run uses now. */
  private pairPath: ShipPath = 'local';
  /** While relaying after a direct failure: when the direct path is tried again. */
  private directRetryAtMs: number | undefined;
  /** Direct failures since the direct path last worked: the retry delay doubles with each. */
  private directFailuresInRow = 0;
  /** The next batch, taken and being realized while the current one ships. */
  private ahead: Batch | undefined;

  constructor(private readonly options: ShipOptions) {
    const { pair } = options;
    this.batchRegions = Math.max(writesInFlight, Math.min(options.batchRegionsMax ?? Number.MAX_SAFE_INTEGER, Math.floor(batchBytes / pair.regionBytes)));
    this.bucket = options.limitRateBytesPerSecond ? new TokenBucket(options.limitRateBytesPerSecond, pair.regionBytes) : undefined;
    this.wireAtStart = wireBytesOf(options.endpoints);
  }

  private get primary() {
    return this.options.endpoints.primary;
  }

  private get secondary() {
    return this.options.endpoints.secondary;
  }

  async run(): Promise<ShipSummary> {
    const attemptsMax = this.options.attemptsMax ?? (this.options.once ? 8 : Number.POSITIVE_INFINITY);
    let failures = 0;
    for (;;) {
      try {
        const inSync = await this.session();
        return this.summary(inSync);
      } catch (error) {
        if (this.options.signal?.aborted || !retryable(error)) throw this.explain(error);
        failures += 1;
        if (failures >= attemptsMax) throw this.explain(error);
        this.retries += 1;
        const delayMs = Math.min(retryDelayMsMax, 100 * 2 ** Math.min(failures, 6));
        this.options.onWarning?.(`replication of ${this.options.pair.name} interrupted (${(error as Error).message}); retrying in ${delayMs} ms`);
        this.report('retrying', undefined);
        await sleepMs(delayMs, this.options.signal).catch(() => undefined);
        if (this.options.signal?.aborted) throw this.explain(cancelled());
      }
    }
  }

  /** One connected stretch: requeue what a previous shipper left taken, then ship until done. */
  private async session(): Promise<boolean> {
    const checked = await checkPairMembers(this.options.pair, this.options.endpoints, 'replicating');
    this.auth = { pairId: this.options.pair.pairId, generation: checked.secondary.generation };
    this.protectSnapshotId = checked.secondary.protectSnapshotId ?? null;
    this.lcsSnapshotId = checked.secondary.lcsSnapshotId;
    const found = await shipPathOf(this.options.endpoints, this.options.pair.pairId);
    this.pairPath = found;
    this.path = found === 'direct' && (this.options.path === 'relayed' || this.directRetryAtMs !== undefined) ? 'relayed' : found;
    this.requeued += await this.primary.agent.trackingRequeue(this.primary.path, this.options.pair.pairId);
    let state = await this.trackingState();
    if (this.recovered === 0) this.recovered = state.recoveredRegions;
    const backlog = state.oosRegions + state.inFlightRegions;
    this.backlog = Math.max(this.backlog, backlog);
    // A backlog found at the start is a catch-up: the secondary goes out of write order for a while.
    if (backlog > 0 && this.options.protect !== false) await this.protect();
    try {
      for (;;) {
        if (this.options.signal?.aborted) throw cancelled();
        if (state.oosRegions + state.inFlightRegions === 0) {
          await this.release();
          await this.retireSyncMarkers();
          this.report('in-sync', state);
          if (this.options.once) return true;
          await sleepMs(this.options.idlePollMs ?? 20, this.options.signal);
        } else {
          this.report(this.protectSnapshotId ? 'catching-up' : 'shipping', state);
          await this.shipBatch();
        }
        state = await this.trackingState();
      }
    } finally {
      await this.dropAhead();
    }
  }

  private trackingState(): Promise<TrackingState> {
    return this.primary.agent.trackingState(this.primary.path, this.options.pair.pairId);
  }

  /** Takes a batch of OOS regions and starts realizing them on the secondary (none left: undefined). */
  private async takeBatch(): Promise<Batch | undefined> {
    const { pair } = this.options;
    const taken = await this.primary.agent.trackingTake(this.primary.path, pair.pairId, this.batchRegions, this.nextRegion);
    if (taken.length === 0) return undefined;
    // Round robin: the next batch starts after this one (a take wraps around at the end).
    this.nextRegion = taken[taken.length - 1]! + 1;
    // One realization write for the batch, before its data: not one per first write to a region.
    // Under a protective snapshot it also copies the batch's old bytes aside, with one sync.
    const realized = this.secondary.agent.realizeRegions(this.secondary.path, taken, { auth: this.auth });
    realized.catch(() => undefined); // awaited by shipBatch, or by dropAhead
    return { taken, realized };
  }

  /** Gives back the batch taken ahead (a failure or a stop): its regions are out of sync again. */
  private async dropAhead(): Promise<void> {
    const ahead = this.ahead;
    this.ahead = undefined;
    if (ahead === undefined) return;
    await ahead.realized.catch(() => undefined);
    await this.primary.agent.trackingSettle(this.primary.path, this.options.pair.pairId, [], ahead.taken).catch(() => undefined);
  }

  /**
   * Conveys a batch of OOS regions; what did not reach the secondary is out of sync again.
   * The next batch is taken and realized while this one ships, so its copy-on-write on the
   * secondary (a catch-up's protective snapshot) overlaps this batch's writes and flush.
   */
  private async shipBatch(): Promise<void> {
    const { pair } = this.options;
    const batch = this.ahead ?? (await this.takeBatch());
    this.ahead = undefined;
    if (batch === undefined) return;
    const { taken } = batch;
    const unsettled = new Set(taken);
    try {
      await batch.realized;
      // The next batch: a failure to take it is the primary's, never the direct path's.
      this.ahead = await this.takeBatch();
    } catch (error) {
      await this.primary.agent.trackingSettle(this.primary.path, pair.pairId, [], taken).catch(() => undefined);
      throw error;
    }
    this.retryDirectWhenDue();
    const linkBefore = connectionsOf(this.primary.agent);
    try {
      if (this.path === 'direct') await this.shipDirect(taken, unsettled);
      else await this.shipRelayed(taken, unsettled);
    } catch (error) {
      await this.primary.agent.trackingSettle(this.primary.path, pair.pairId, [], [...unsettled]).catch(() => undefined);
      await this.dropAhead();
      if (this.path !== 'direct' || this.options.signal?.aborted) throw error;
      // A link error with the primary still answering — on the same connection (a reconnect means our
      // own link dropped, and the primary's peer writes may still be on their way) — is the
      // primary's host failing to reach the secondary's.
      if (!directRefused(error) && !(retryable(error) && (await this.primaryAnswers()) && connectionsOf(this.primary.agent) === linkBefore)) throw error;
      // The direct path cannot work (a revoked key, an address the primary's host cannot reach): relay.
      this.fallBackToRelaying(error as Error);
      // Nothing of this run is in flight now: whatever a settle above failed to give back goes back (else it stays taken).
      this.requeued += await this.primary.agent.trackingRequeue(this.primary.path, pair.pairId);
      return;
    }
    assert(unsettled.size === 0, 'every taken region settled after a shipped batch');
    if (this.path === 'direct' && this.directRetryAtMs !== undefined) {
      // The direct path works again (a retry after a fallback).
      this.directRetryAtMs = undefined;
      this.directFailuresInRow = 0;
    }
  }

  /** Relays for a while (doubling after each failure in a row); warns on the first of them. */
  private fallBackToRelaying(error: Error): void {
    const { pair } = this.options;
    this.path = 'relayed';
    this.directFallbacks += 1;
    this.directFailuresInRow += 1;
    const delayMs = Math.min(directRetryMsMax, directRetryMsOf(this.options) * 2 ** Math.min(20, this.directFailuresInRow - 1));
    this.directRetryAtMs = performance.now() + delayMs;
    if (this.directFailuresInRow > 1) return; // one warning per outage: the retries are scheduled
    this.options.onWarning?.(
      `direct shipping of ${pair.name} failed (${error.message}); relaying through this process, direct again in ${formatDurationMs(delayMs)} — fix it with \`tidemark pair link ${pair.name}\``,
    );
  }

  /** Relaying after a direct failure, and the retry is due: this batch tries the direct path again. */
  private retryDirectWhenDue(): void {
    if (this.pairPath !== 'direct' || this.path !== 'relayed' || this.options.path === 'relayed') return;
    if (this.directRetryAtMs === undefined || performance.now() < this.directRetryAtMs) return;
    this.path = 'direct';
  }

  /** Whether the primary's agent answers (after a failed direct call: was it the peer link that failed?). */
  private async primaryAnswers(): Promise<boolean> {
    return this.primary.agent.trackingState(this.primary.path, this.options.pair.pairId).then(
      () => true,
      () => false,
    );
  }

  /** The primary's agent ships each call's regions itself and flushes the secondary; they are settled after each call. */
  private async shipDirect(taken: readonly number[], unsettled: Set<number>): Promise<void> {
    const { pair, signal, limitRateBytesPerSecond } = this.options;
    const regionsPerCall = Math.max(1, Math.floor(directCallBytes / pair.regionBytes));
    for (let i = 0; i < taken.length; i += regionsPerCall) {
      if (signal?.aborted) throw cancelled();
      const call = taken.slice(i, i + regionsPerCall);
      const result = await this.primary.agent.peerShip(this.primary.path, pair.pairId, call, { auth: this.auth, signal, limitRateBytesPerSecond });
      await this.primary.agent.trackingSettle(this.primary.path, pair.pairId, call, []);
      for (const r of call) unsettled.delete(r);
      this.regionsTransferred += call.length;
      this.bytesTransferred += result.bytesWritten;
      this.meter.update(this.bytesTransferred);
    }
  }

  /** Reads each region here and writes it to the secondary (the conveyor commits: flush, then settle). */
  private async shipRelayed(taken: readonly number[], unsettled: Set<number>): Promise<void> {
    const { pair } = this.options;
    const conveyor = new Conveyor({
      secondary: this.secondary,
      auth: this.auth,
      writesInFlightMax: writesInFlight,
      windowRegions: Math.max(writesInFlight, taken.length),
      commitIntervalMs: 1_000,
      bucket: this.bucket,
      signal: this.options.signal,
      commit: async (acked) => {
        if (acked.length === 0) return;
        await this.primary.agent.trackingSettle(this.primary.path, pair.pairId, acked, []);
        for (const r of acked) unsettled.delete(r);
      },
      onWritten: (_regionIndex, bytes) => {
        this.regionsTransferred += 1;
        this.bytesTransferred += bytes;
        this.meter.update(this.bytesTransferred);
      },
    });
    try {
      for (const [first, count] of runsOf(taken)) {
        for await (const { regionIndex, data } of this.primary.agent.readRegions(this.primary.path, first, count, { signal: this.options.signal })) {
          await conveyor.send(regionIndex, data);
        }
      }
      await conveyor.drain();
    } catch (error) {
      await conveyor.settle();
      throw error;
    }
  }

  private async protect(): Promise<void> {
    if (this.protectSnapshotId !== null) return; // an interrupted catch-up: its snapshot is still the consistent image
    const { pair } = this.options;
    const snapshot = await this.secondary.agent.snapshotCreate(this.secondary.path, { label: `${protectSnapshotLabelPrefix}${pair.pairId}` });
    await this.secondary.agent.pairUpdate(this.secondary.path, pair.pairId, { protectSnapshotId: snapshot.snapshotId });
    this.protectSnapshotId = snapshot.snapshotId;
    this.protectSnapshots += 1;
  }

  /** In sync: the secondary volume is consistent again, its protective snapshot goes. */
  private async release(): Promise<void> {
    const snapshotId = this.protectSnapshotId;
    if (snapshotId === null) return;
    const { pair } = this.options;
    await this.secondary.agent.pairUpdate(this.secondary.path, pair.pairId, { protectSnapshotId: null });
    this.protectSnapshotId = null;
    await this.secondary.agent.snapshotDelete(this.secondary.path, snapshotId).catch((error: unknown) => {
      if (!isTidemarkError(error) || error.code !== 'NOT_FOUND') throw error;
    });
  }

  /**
   * In sync under tracking, the sync's markers only cost: its LCS makes every first write to a
   * secondary region a copy-on-write, its `since` map a durable bitmap write on the primary.
   * Tracking (OOS/MOOS) carries the pair from here; a later `sync` compares afresh.
   */
  private async retireSyncMarkers(): Promise<void> {
    const { pair } = this.options;
    const since = sinceMapName(pair.pairId);
    if ((await this.primary.agent.bitmapList(this.primary.path)).some((m) => m.name === since)) await this.primary.agent.bitmapDelete(this.primary.path, since);
    const lcs = this.lcsSnapshotId;
    if (lcs === null) return;
    await this.secondary.agent.pairUpdate(this.secondary.path, pair.pairId, { lcsSnapshotId: null });
    this.lcsSnapshotId = null;
    await this.secondary.agent.snapshotDelete(this.secondary.path, lcs).catch((error: unknown) => {
      if (!isTidemarkError(error) || error.code !== 'NOT_FOUND') throw error;
    });
  }

  private report(state: ShipProgress['state'], tracking: TrackingState | undefined): void {
    const { pair } = this.options;
    const bytesPerSecond = this.meter.update(this.bytesTransferred).ratePerSecond;
    const lagBytes = ((tracking?.oosRegions ?? 0) + (tracking?.inFlightRegions ?? 0)) * pair.regionBytes;
    this.options.onProgress?.({
      pair: pair.name,
      state,
      oosRegions: tracking?.oosRegions ?? 0,
      inFlightRegions: tracking?.inFlightRegions ?? 0,
      moosRegions: tracking?.moosRegions ?? 0,
      lagBytes,
      etaMs: lagBytes === 0 ? 0 : bytesPerSecond > 0 ? (lagBytes * 1000) / bytesPerSecond : undefined,
      oldestUnshippedMs: tracking?.oldestUnshippedMs ?? 0,
      regionsTransferred: this.regionsTransferred,
      bytesTransferred: this.bytesTransferred,
      bytesPerSecond,
      backlogRegions: this.backlog,
      protectSnapshotId: this.protectSnapshotId,
      path: this.path,
    });
  }

  private summary(inSync: boolean): ShipSummary {
    return {
      pair: this.options.pair.name,
      regionsTransferred: this.regionsTransferred,
      bytesTransferred: this.bytesTransferred,
      recoveredRegions: this.recovered,
      backlogRegions: this.backlog,
      requeuedRegions: this.requeued,
      protectSnapshots: this.protectSnapshots,
      retries: this.retries,
      wireBytes: wireBytesOf(this.options.endpoints) - this.wireAtStart,
      durationMs: Math.round(performance.now() - this.startMs),
      inSync,
      path: this.path,
      directFallbacks: this.directFallbacks,
    };
  }

  private explain(error: unknown): unknown {
    if (!isTidemarkError(error)) return error;
    const { name } = this.options.pair;
    const resume = `run \`tidemark replicate ${name}\` to resume: what was not shipped stays tracked`;
    if (error.code === 'CANCELLED') return new TidemarkError('CANCELLED', `replication of ${name} stopped`, resume);
    if (error.code === 'PERMISSION' || error.code === 'STALE' || error.code === 'USAGE' || error.code === 'NOT_FOUND') return error;
    return new TidemarkError(error.code, `replication of ${name} stopped: ${error.message}`, `${error.hint ? `${error.hint}; then ` : ''}${resume}`, {
      cause: error,
    });
  }
}

/** The direct path refused for good (no key here, a revoked key, an older agent): relaying still works. */
/** How many connections a remote agent has made (RemoteHost's status); null for an agent without one (local). */
function connectionsOf(agent: unknown): number | null {
  const status = (agent as { status?: { connections?: unknown } }).status;
  return typeof status?.connections === 'number' ? status.connections : null;
}

function directRefused(error: unknown): boolean {
  return isTidemarkError(error) && ['PERMISSION', 'NOT_FOUND', 'UNSUPPORTED', 'USAGE'].includes(error.code);
}

/** A dropped link, a restarting agent, a full or failing secondary: worth another attempt. */
export function retryable(error: unknown): boolean {
  if (!isTidemarkError(error)) return false;
  return ['DISCONNECTED', 'IO', 'BUSY', 'NO_SPACE'].includes(error.code);
}
