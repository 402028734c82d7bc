// `replicate NAME [--once]` and `pair wait NAME --in-sync`: a pair that was never synced, or
// whose sync was interrupted, is synced first (auto: resume, or tardy for a fresh pair); then
// its tracked changes are shipped (continuous). When another process already replicates the
// pair (a `serve`), `--once` waits for it to reach in-sync instead of shipping alongside.

import { TidemarkError } from '../errors';
import type { TrackingState } from '../agent';
import { shipContinuous, type ShipOptions, type ShipSummary } from './continuous';
import type { PairEndpoints } from './endpoints';
import type { PairRecord, PairStore } from './pair-store';
import { CursorStore } from './sync/cursor';
import { acquirePairLock, pairLockHolder, type PairLockHolder } from './sync/lock';
import { runSync, type SyncProgress, type SyncSummary } from './sync/sync';

export const replicateLockTask = 'replicate';

export interface ReplicateOptions extends Omit<ShipOptions, 'pair'> {
  readonly store: PairStore;
  readonly pair: PairRecord;
  readonly onSyncProgress?: (progress: SyncProgress) => void;
}

export interface ReplicateSummary extends ShipSummary {
  /** The sync run first (a fresh pair, or an interrupted sync), if any. */
  readonly sync: SyncSummary | null;
  /** Another process was replicating the pair: this run waited for it to reach in-sync. */
  readonly waitedFor: PairLockHolder | null;
  readonly regions: number;
}

export async function replicatePair(options: ReplicateOptions): Promise<ReplicateSummary> {
  const { store, endpoints } = options;
  let pair = options.pair;
  if (pair.mode !== 'continuous') {
    throw new TidemarkError(
      'UNSUPPORTED',
      `pair "${pair.name}" is periodic: periodic cycles are not built yet`,
      'use a continuous pair for now (pair create --mode continuous)',
    );
  }
  const pairDir = store.pairDir(pair.name);
  const startMs = performance.now();
  const holder = await pairLockHolder(pairDir);
  if (holder?.what === replicateLockTask) {
    if (!options.once) {
      throw new TidemarkError(
        'BUSY',
        `pair "${pair.name}" is already replicated by process ${holder.pid}`,
        'stop that one first, or use --once to wait until it is in sync',
      );
    }
    const state = await waitInSync(store, pair, endpoints, { signal: options.signal });
    return { ...emptySummary(pair, performance.now() - startMs, state), sync: null, waitedFor: holder };
  }
  let sync: SyncSummary | null = null;
  if (!pair.lastSync || (await new CursorStore(pairDir).read())) {
    sync = await runSync({
      store,
      pair,
      endpoints,
      method: 'auto',
      limitRateBytesPerSecond: options.limitRateBytesPerSecond,
      signal: options.signal,
      onProgress: options.onSyncProgress,
      onWarning: options.onWarning,
    });
    pair = await store.require(pair.name);
  }
  const lock = await acquirePairLock(pairDir, pair.name, replicateLockTask);
  try {
    const shipped = await shipContinuous({ ...options, pair });
    return { ...shipped, durationMs: Math.round(performance.now() - startMs), sync, waitedFor: null, regions: await regionsOf(endpoints, pair) };
  } finally {
    await lock.release();
  }
}

async function regionsOf(endpoints: PairEndpoints, pair: PairRecord): Promise<number> {
  const state = await endpoints.primary.agent.trackingState(endpoints.primary.path, pair.pairId);
  return state.regionCount;
}

function emptySummary(pair: PairRecord, durationMs: number, state: TrackingState): ShipSummary & { regions: number } {
  return {
    pair: pair.name,
    regions: state.regionCount,
    regionsTransferred: 0,
    bytesTransferred: 0,
    recoveredRegions: state.recoveredRegions,
    backlogRegions: 0,
    requeuedRegions: 0,
    protectSnapshots: 0,
    retries: 0,
    wireBytes: 0,
    durationMs: Math.round(durationMs),
    inSync: true,
  };
}

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly pollMs?: number;
  readonly onState?: (state: TrackingState) => void;
}

/**
 * Resolves at the first moment the pair is in sync: synced once, no sync unfinished, and
 * nothing tracked on the primary is unshipped. TIMEOUT-like BUSY error after `timeoutMs`.
 */
export async function waitInSync(store: PairStore, pair: PairRecord, endpoints: PairEndpoints, options: WaitOptions = {}): Promise<TrackingState> {
  const deadlineMs = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + options.timeoutMs;
  const cursors = new CursorStore(store.pairDir(pair.name));
  for (;;) {
    if (options.signal?.aborted) throw new TidemarkError('CANCELLED', `waiting for ${pair.name} cancelled`, '');
    const record = await store.require(pair.name);
    const state = await endpoints.primary.agent.trackingState(endpoints.primary.path, pair.pairId);
    options.onState?.(state);
    const synced = record.lastSync !== null && !(await cursors.read());
    if (synced && state.oosRegions + state.inFlightRegions === 0) return state;
    if (performance.now() >= deadlineMs) {
      const why = synced
        ? `${state.oosRegions + state.inFlightRegions} regions are not shipped yet, the oldest written ${Math.round(state.oldestUnshippedMs / 1000)} s ago`
        : 'it has not finished a sync';
      throw new TidemarkError(
        'BUSY',
        `pair "${pair.name}" is not in sync after ${Math.round((options.timeoutMs ?? 0) / 1000)} s: ${why}`,
        `run \`tidemark replicate ${pair.name}\` (or serve it), or wait longer with --timeout`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 50));
  }
}
