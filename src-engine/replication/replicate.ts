// `replicate NAME [--once]` and `pair wait NAME --in-sync`: a pair that was never synced, or
// whose sync was interrupted, is synced first (auto: resume, or tardy for a fresh pair); then
// its tracked changes are shipped (continuous). When another process already replicates the
// pair (a `serve`), `--once` waits for it to reach in-sync instead of shipping alongside, and
// takes over if that process stops first.

import { assert } from '../assert';
import { TidemarkError, isTidemarkError } from '../errors';
import type { TrackingState } from '../agent';
import { retryable, shipContinuous, type ShipOptions, type ShipSummary } from './continuous';
import { sleepMs } from './sync/conveyor';
import type { PairEndpoints } from './endpoints';
import type { PairRecord, PairStore } from './pair-store';
import { CursorStore } from './sync/cursor';
import { acquirePairLock, pairLockHolder, type PairLockHolder } from './sync/lock';
import { runSync, type SyncProgress, type SyncSummary } from './sync/sync';
import { sinceMapName } from './sync/names';
import { checkNotGrouped } from './groups';
import { cycleCursorOf, periodicPending, runCycle, type CycleProgress, type CycleSummary } from './periodic';
import { readCycleHistory } from './cycle-history';

export const replicateLockTask = 'replicate';

export interface ReplicateOptions extends Omit<ShipOptions, 'pair'> {
  readonly store: PairStore;
  readonly pair: PairRecord;
  readonly onSyncProgress?: (progress: SyncProgress) => void;
  /** Periodic pairs: each cycle's progress, and each finished cycle. */
  readonly onCycleProgress?: (progress: CycleProgress) => void;
  readonly onCycle?: (cycle: CycleSummary) => void;
  /**
   * Opens the pair's endpoints afresh. Called before taking over from a shipper that stopped:
   * an in-process agent of a CLI holds its own copy of the primary's tracking, stale beside
   * another process's (docs/home-layout.md), and an agent reached through the stopped
   * process's socket is gone. Without it the endpoints given are used (an engine that owns the
   * home, tests in one process).
   */
  readonly reopenEndpoints?: () => Promise<PairEndpoints>;
  /**
   * The endpoints' agents include this process's own in-process agent (a CLI on a home no agent
   * serves): another process's shipping is invisible to it, so --once beside one is refused
   * rather than answered from a stale copy of the tracking.
   */
  readonly privateView?: boolean;
  /**
   * A failback's copy of a pair in a consistency group: a cycle of its own (refused otherwise).
   * The members' old primaries are being resynced anyway; the group's next cycle brings them to
   * one instant again (failbackGroup runs it).
   */
  readonly failbackCopy?: boolean;
}

export interface ReplicateSummary extends ShipSummary {
  /** A periodic pair's cycles run by this call, oldest first (empty for a continuous pair). */
  readonly cycles: readonly CycleSummary[];
  /** A periodic pair: the primary's instant the secondary holds after the last cycle. */
  readonly pointInTime?: string;
  /** The sync run first (a fresh pair, or an interrupted sync), if any. */
  readonly sync: SyncSummary | null;
  /** Another process was replicating the pair: this run waited for it to reach in-sync. */
  readonly waitedFor: PairLockHolder | null;
  readonly regions: number;
}

export async function replicatePair(options: ReplicateOptions): Promise<ReplicateSummary> {
  const { store } = options;
  let { endpoints, pair } = options;
  const pairDir = store.pairDir(pair.name);
  const startMs = performance.now();
  if (!options.failbackCopy) await checkNotGrouped(store, pair);
  let sync: SyncSummary | null = null;
  for (;;) {
    const waited = await waitBesideShipper({ ...options, pair, endpoints }, startMs);
    if (waited.kind === 'done') return { ...waited.summary, sync };
    if (waited.kind === 'took-over') {
      // What this process's agent knows of the primary's tracking may be its own stale copy (two
      // CLI processes on a home without an agent daemon): look again before shipping from it.
      if (options.reopenEndpoints) endpoints = await options.reopenEndpoints();
      pair = await store.require(pair.name);
    }
    if (sync === null && (await needsSync(pair, endpoints, pairDir))) {
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
    const lock = await acquirePairLock(pairDir, pair.name, replicateLockTask).catch(async (error: unknown) => {
      // A shipper started between the last look and now (a console's Resume, a restarted serve): --once waits for it after all.
      if (options.once && isTidemarkError(error) && error.code === 'BUSY' && replicating(await pairLockHolder(pairDir))) return null;
      throw error;
    });
    if (lock === null) continue;
    try {
      // Grouped while this call synced or waited (group create takes the pair locks: not after this).
      if (!options.failbackCopy) await checkNotGrouped(store, pair);
      const run = { ...options, pair, endpoints };
      if (pair.mode === 'periodic') return { ...(await runCycles(run, pair, startMs)), sync, waitedFor: null };
      const shipped = await shipContinuous(run);
      return { ...shipped, cycles: [], durationMs: Math.round(performance.now() - startMs), sync, waitedFor: null, regions: await regionsOf(endpoints, pair) };
    } finally {
      await lock.release();
    }
  }
}

/** Beside a shipper in another process, a private view (this process's own agent) cannot see its progress. */
function refuseUnseenShipper(pair: PairRecord, holder: PairLockHolder): void {
  if (holder.pid === process.pid) return;
  throw new TidemarkError(
    'BUSY',
    `pair "${pair.name}" is replicated by process ${holder.pid}, whose progress this command cannot see: no agent serves this home, so each command opens the volumes itself`,
    `run \`tidemark agent serve\` before both commands so they share one agent, or wait for process ${holder.pid} to finish`,
  );
}

/**
 * `pair wait --in-sync` with a private view (see ReplicateOptions.privateView): refused while
 * another process replicates the pair, whose shipping this process's own agent never sees.
 */
export async function checkWaitVisible(store: PairStore, pair: PairRecord, privateView: boolean): Promise<void> {
  if (!privateView) return;
  const holder = await pairLockHolder(store.pairDir(pair.name));
  if (replicating(holder)) refuseUnseenShipper(pair, holder);
}

/** A holder of the pair's lock that replicates it — or holds it and does not answer (stopped?): waited on alike. */
function replicating(holder: PairLockHolder | null): holder is PairLockHolder {
  return holder?.what === replicateLockTask || holder?.what === 'unknown';
}

async function needsSync(pair: PairRecord, endpoints: PairEndpoints, pairDir: string): Promise<boolean> {
  if (!pair.lastSync) return true;
  if (pair.mode === 'periodic' && !(await endpoints.primary.agent.bitmapList(endpoints.primary.path)).some((m) => m.name === sinceMapName(pair.pairId)))
    return true;
  return (await new CursorStore(pairDir).read()) !== undefined;
}

type Waited = { readonly kind: 'done'; readonly summary: Omit<ReplicateSummary, 'sync'> } | { readonly kind: 'none' | 'took-over' };

/**
 * Beside another process replicating the pair: without --once, BUSY; with it, wait until that
 * process has the pair in sync (continuous) or applied a cycle frozen after the call
 * (periodic) — 'done' — or until it stops first — 'took-over'. 'none': nobody replicates it.
 */
async function waitBesideShipper(options: ReplicateOptions, startMs: number): Promise<Waited> {
  const { store, pair, endpoints } = options;
  const pairDir = store.pairDir(pair.name);
  const holder = await pairLockHolder(pairDir);
  if (!replicating(holder)) return { kind: 'none' };
  if (!options.once) {
    const who = holder.pid > 0 ? `process ${holder.pid}` : 'a process that holds its lock and does not answer (stopped?)';
    throw new TidemarkError('BUSY', `pair "${pair.name}" is already replicated by ${who}`, 'stop that one first, or use --once to wait until it is in sync');
  }
  if (options.privateView) refuseUnseenShipper(pair, holder);
  const stillReplicating = replicatingWatch(pairDir);
  if (pair.mode === 'periodic') {
    const cycle = await waitNextCycle(store, pair, endpoints, options.signal, stillReplicating);
    if (cycle !== holderGone) {
      return { kind: 'done', summary: { ...emptySummary(pair, performance.now() - startMs, null), cycles: [], waitedFor: holder, pointInTime: cycle } };
    }
  } else {
    const state = await waitInSyncWhile(store, pair, endpoints, { signal: options.signal }, stillReplicating);
    if (state !== holderGone) return { kind: 'done', summary: { ...emptySummary(pair, performance.now() - startMs, state), cycles: [], waitedFor: holder } };
  }
  // The shipper stopped (Ctrl-C, a crash, a pause in the console) before the pair was in sync: this run takes over.
  options.onWarning?.(`process ${holder.pid} stopped replicating ${pair.name} before it was in sync; replicating it here`);
  return { kind: 'took-over' };
}

/** Cycles every `intervalMs` (measured from each cycle's start) until aborted; with `once`, one cycle. */
async function runCycles(options: ReplicateOptions, pair: PairRecord, startMs: number): Promise<Omit<ReplicateSummary, 'sync' | 'waitedFor'>> {
  const cycles: CycleSummary[] = [];
  // A cycle under way before this call froze before it: --once then runs one more. (A cycle this
  // call froze and retried after a failure also reports itself resumed; it holds every earlier write.)
  let oneMore = options.once === true && (await cycleCursorOf(options.store, pair)) !== undefined;
  const summary = () => {
    const last = cycles[cycles.length - 1];
    return {
      ...emptySummary(pair, performance.now() - startMs, null),
      regions: last?.regions ?? 0,
      regionsTransferred: cycles.reduce((sum, c) => sum + c.regionsTransferred, 0),
      bytesTransferred: cycles.reduce((sum, c) => sum + c.bytesTransferred, 0),
      wireBytes: cycles.reduce((sum, c) => sum + c.wireBytes, 0),
      backlogRegions: cycles[0]?.regionsTransferred ?? 0,
      cycles,
      ...(last ? { pointInTime: last.pointInTime } : {}),
    };
  };
  for (;;) {
    const cycleStartMs = performance.now();
    const cycle = await withRetries(options, () =>
      runCycle({
        store: options.store,
        pair,
        endpoints: options.endpoints,
        signal: options.signal,
        limitRateBytesPerSecond: options.limitRateBytesPerSecond,
        onProgress: options.onCycleProgress,
        onWarning: options.onWarning,
      }),
    );
    cycles.push(cycle);
    if (cycles.length > 100) cycles.shift();
    options.onCycle?.(cycle);
    if (options.once) {
      if (!oneMore) return summary();
      oneMore = false;
      continue; // at once, not after the interval
    }
    await sleepMs(Math.max(0, pair.intervalMs - (performance.now() - cycleStartMs)), options.signal);
  }
}

/**
 * A cycle that fails on a dropped link, a restarting agent, a busy or full secondary is run
 * again (it resumes from its cursor) with backoff: 8 attempts with --once, unbounded otherwise.
 */
function withRetries<T>(options: ReplicateOptions, run: () => Promise<T>): Promise<T> {
  return withCycleRetries({ ...options, what: `cycle of ${options.pair.name}` }, run);
}

/** Runs a cycle (a pair's, or a consistency group's) again after a retryable failure, with backoff: 8 attempts with `once`, unbounded otherwise. */
export async function withCycleRetries<T>(
  settings: {
    readonly what: string;
    readonly once?: boolean;
    readonly attemptsMax?: number;
    readonly signal?: AbortSignal;
    readonly onWarning?: (message: string) => void;
    /** Which failures are run again (default `retryable`: a dropped link, an I/O error, a busy or full side). */
    readonly retryable?: (error: unknown) => boolean;
  },
  run: () => Promise<T>,
): Promise<T> {
  const attemptsMax = settings.attemptsMax ?? (settings.once ? 8 : Number.POSITIVE_INFINITY);
  for (let failures = 0; ;) {
    try {
      return await run();
    } catch (error) {
      failures += 1;
      if (!(settings.retryable ?? retryable)(error) || settings.signal?.aborted || failures >= attemptsMax) throw error;
      const delayMs = Math.min(5_000, 100 * 2 ** Math.min(failures, 6));
      settings.onWarning?.(`${settings.what} interrupted (${(error as Error).message}); resuming in ${delayMs} ms`);
      await sleepMs(delayMs, settings.signal);
    }
  }
}

/**
 * Waits, beside a running shipper of a periodic pair, until a cycle that froze after this call
 * is applied: everything written before the call is then on the secondary. A cycle already
 * under way (its cursor in the pair's directory) may have frozen earlier, so it does not count.
 * The cursor is read before the applied cycle: a cycle that finishes between the two reads then
 * still counts as under way, not as the one to wait for.
 * Resolves with the point in time the secondary holds, or `holderGone` when the shipper stopped first.
 */
async function waitNextCycle(
  store: PairStore,
  pair: PairRecord,
  endpoints: PairEndpoints,
  signal: AbortSignal | undefined,
  stillReplicating: () => Promise<boolean>,
): Promise<string | undefined | typeof holderGone> {
  const calledAtMs = Date.now();
  const appliedOf = async () =>
    (await endpoints.secondary.agent.volumeState(endpoints.secondary.path)).members.find((m) => m.pairId === pair.pairId)?.appliedCycle ?? 0;
  const underWay = await cycleCursorOf(store, pair);
  const applied = await appliedOf();
  const wantedCycle = Math.max(applied, underWay?.cycle ?? 0) + 1;
  for (;;) {
    await sleepMs(100, signal);
    if ((await appliedOf()) >= wantedCycle) break;
    // Asked after the applied cycle: a shipper that applied it and then exited is not "gone".
    if (!(await stillReplicating()) && (await appliedOf()) < wantedCycle) return holderGone;
  }
  // The shipper records the cycle in the pair's history just after the apply; an entry from
  // before the call is another generation's (a failover resets the cycle count, not the history).
  const historyDeadlineMs = Date.now() + waitHistoryMs;
  for (;;) {
    const entry = (await readCycleHistory(store.pairDir(pair.name))).find((c) => c.cycle >= wantedCycle && c.finishedAtMs >= calledAtMs);
    if (entry) return entry.pointInTime;
    if (Date.now() > historyDeadlineMs) return undefined; // applied, but its record failed (a warning in the shipper): unknown, never guessed
    await sleepMs(50, signal);
  }
}

/** How long waitNextCycle waits for the history entry of a cycle it saw applied. */
const waitHistoryMs = 10_000;

/** What a wait beside a running shipper returns when that shipper stopped before the wait was over. */
const holderGone = Symbol('holderGone');

/** How often a wait beside a running shipper asks whether it still runs (a connect to its lock). */
const holderPollMs = 500;

/** Whether some process still replicates the pair: asks its lock at most every holderPollMs, true in between. */
function replicatingWatch(pairDir: string): () => Promise<boolean> {
  let askedAtMs = performance.now();
  return async () => {
    if (performance.now() - askedAtMs < holderPollMs) return true;
    askedAtMs = performance.now();
    // 'unknown' (it holds the lock but does not answer: stopped with Ctrl-Z?) is still there: wait on (Ctrl-C ends the wait).
    return replicating(await pairLockHolder(pairDir));
  };
}

async function regionsOf(endpoints: PairEndpoints, pair: PairRecord): Promise<number> {
  const state = await endpoints.primary.agent.trackingState(endpoints.primary.path, pair.pairId);
  return state.regionCount;
}

function emptySummary(pair: PairRecord, durationMs: number, state: TrackingState | null): ShipSummary & { regions: number; pointInTime?: string } {
  return {
    pair: pair.name,
    regions: state?.regionCount ?? 0,
    regionsTransferred: 0,
    bytesTransferred: 0,
    recoveredRegions: state?.recoveredRegions ?? 0,
    backlogRegions: 0,
    requeuedRegions: 0,
    protectSnapshots: 0,
    retries: 0,
    wireBytes: 0,
    durationMs: Math.round(durationMs),
    inSync: true,
    path: 'local',
    directFallbacks: 0,
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
  const state = await waitInSyncWhile(store, pair, endpoints, options, async () => true);
  assert(state !== holderGone, 'waitInSync: only a watched wait ends with the shipper gone');
  return state;
}

/** waitInSync, beside a running shipper: `holderGone` as soon as `stillReplicating` says it stopped. */
async function waitInSyncWhile(
  store: PairStore,
  pair: PairRecord,
  endpoints: PairEndpoints,
  options: WaitOptions,
  stillReplicating: () => Promise<boolean>,
): Promise<TrackingState | typeof holderGone> {
  const deadlineMs = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + options.timeoutMs;
  const cursors = new CursorStore(store.pairDir(pair.name));
  let shipperGone = false;
  for (;;) {
    if (options.signal?.aborted) throw new TidemarkError('CANCELLED', `waiting for ${pair.name} cancelled`, '');
    const record = await store.require(pair.name);
    const state = await endpoints.primary.agent.trackingState(endpoints.primary.path, pair.pairId);
    options.onState?.(state);
    const synced = record.lastSync !== null && !(await cursors.read());
    const unshipped = record.mode === 'periodic' ? ((await periodicPending(store, record, endpoints.primary)) ?? 1) : state.oosRegions + state.inFlightRegions;
    if (synced && unshipped === 0) return state;
    if (shipperGone) return holderGone;
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
    // Gone: it may have shipped the last regions and exited since the look above — look once more.
    shipperGone = !(await stillReplicating());
    if (shipperGone) continue;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 50));
  }
}
