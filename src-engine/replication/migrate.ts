// Planned migration (seed 004, docs/failover.md "Migrate"): a lossless role swap.
//  1. drain while applications still write: replicate until in sync (continuous) or run a cycle
//     (periodic), so what is left for the pause is small;
//  2. the pause: a durable journal (`migrate.json` beside the pair record) says a migrate is
//     under way, then the primary is demoted (locked at g+1: its writes stop, EPERM on its
//     exports); what it still had unshipped stays durably on it — its tracking's OOS ∪ in flight
//     at the lock in the demotion's unshipped map, or a periodic pair's current ∪ next maps;
//  3. those regions are copied into the secondary (still locked at g: the pair's auth), it is
//     flushed, and both sides are verified by signature — any difference aborts before a role
//     changes on it;
//  4. the secondary is promoted at g+1 (no failback map is kept: nothing diverged), the roles are
//     swapped in the record, the old primary's maps go, then the journal.
// A process that dies anywhere in 2–4 leaves the journal: `migrate NAME` again resumes at the
// pause from what each side durably says (the demotion and promotion are idempotent), never a
// pair with two secondaries and no way forward. The pause (2–4) is measured and reported.

import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { z } from 'zod';
import { Bitset, runsOf } from '../bitmap';
import { TidemarkError, isTidemarkError } from '../errors';
import { formatCount } from '../size';
import { failbackMapName, unshippedMapName, type PairMember } from '../agent';
import { defineRecord, readRecord, writeRecord } from '../store';
import type { EndpointResolver, PairEndpoints, VolumeEndpoint } from './endpoints';
import { bitsOf, dropPrimaryLeftovers, ensureMap, roleEvent } from './failover';
import { checkNotGrouped } from './groups';
import { checkPairMembers } from './members';
import type { PairRecord, PairStore } from './pair-store';
import { currentMapName, removeRecord } from './periodic';
import { protectSnapshotLabelPrefix } from './continuous';
import { replicatePair } from './replicate';
import { acquirePairLock } from './sync/lock';
import { migrateJournalFile, sinceMapName } from './sync/names';
import { verifyPair } from './sync/verify';

export interface MigrateSummary {
  readonly pair: string;
  readonly newPrimary: string;
  readonly oldPrimary: string;
  readonly generation: number;
  /** Shipped while applications still wrote. */
  readonly drainedRegions: number;
  /** Copied during the pause: what the primary had unshipped when its writes stopped. */
  readonly finalRegions: number;
  readonly bytesTransferred: number;
  /** From the primary's writes stopping to the new primary taking writes. */
  readonly pauseMs: number;
  readonly durationMs: number;
  /** This run finished a migrate that an earlier one (which died in its pause) started. */
  readonly resumed: boolean;
  /** After the pause: every region of the new primary as it was promoted (a snapshot) against the old primary. */
  readonly checkedRegions: number;
  /** Regions the check found different (0 when all is well); the first 100 are listed. */
  readonly checkDifferingRegions: number;
  readonly checkDiffering: readonly number[];
}

export interface MigrateProgress {
  readonly pair: string;
  /**
   * drain: shipping while writes go on; pause: primary stopped; copy: its unshipped regions;
   * verify: those regions' signatures on both sides; done: writes resume on the new primary;
   * check: the whole extent compared after the pause (the new primary's promotion snapshot
   * against the old primary).
   */
  readonly phase: 'drain' | 'pause' | 'copy' | 'verify' | 'done' | 'check';
  readonly regionsTransferred: number;
  /** Of the phase's work (drain: what was out of sync; copy: the final regions; verify: the volume's regions). */
  readonly regionsTotal: number;
  readonly bytesTransferred: number;
  readonly bytesPerSecond: number;
  readonly etaMs: number | undefined;
}

export interface MigrateOptions {
  /** How long the drain may run before the pause starts (a writer may keep a pair from ever being in sync). */
  readonly drainMs?: number;
  readonly onProgress?: (progress: MigrateProgress) => void;
  /** Verify the whole extent inside the pause (longer pause, no check after it) instead of the pause's regions. */
  readonly verifyInPause?: boolean;
  /** Stops the migrate while it drains (CANCELLED, nothing changed); from the pause on it is not looked at. */
  readonly signal?: AbortSignal;
}

const drainMsDefault = 10_000;

/**
 * Test-only: `copied` or `promoted` — the point of the pause where a migrate announces itself on
 * stderr and waits (an hour) to be killed (test/integration/migrate-crash.test.ts).
 */
export const testMigrateStopEnv = 'TIDEMARK_TEST_MIGRATE_STOP_AT';

async function testStop(point: 'copied' | 'promoted'): Promise<void> {
  if (process.env[testMigrateStopEnv] !== point) return;
  process.stderr.write(`tidemark: test: migrate stopped at ${point}\n`);
  await new Promise((resolve) => setTimeout(resolve, 3_600_000));
}

/** The durable cursor of a migrate's pause (`migrate.json` beside the pair record). */
const migrateJournalKind = defineRecord(
  'tidemark/migrate-journal',
  1,
  z.object({
    /** The pair's generation when the pause began: the old primary is demoted to generation + 1. */
    generation: z.number().int().positive(),
    oldPrimary: z.string(),
    newPrimary: z.string(),
    startedAt: z.string(),
    /** pause: steps 2–4 under way; restoring: the verify failed and the old primary is being made the primary again. */
    phase: z.enum(['pause', 'restoring']).default('pause'),
  }),
);
type MigrateJournal = z.infer<typeof migrateJournalKind.schema>;

export const migrateJournalPath = (pairDir: string) => join(pairDir, migrateJournalFile);

/** The journal of a migrate that died in its pause, if any (`pair show` and the console say so). */
export function readMigrateJournal(pairDir: string): Promise<MigrateJournal | undefined> {
  return readRecord(migrateJournalPath(pairDir), migrateJournalKind);
}

export async function removeMigrateJournal(pairDir: string): Promise<void> {
  await rm(migrateJournalPath(pairDir), { force: true });
}

export async function migratePair(store: PairStore, resolver: EndpointResolver, name: string, options: MigrateOptions = {}): Promise<MigrateSummary> {
  const startMs = performance.now();
  const pairDir = store.pairDir(name);
  let record = await store.require(name);
  const journal = await readMigrateJournal(pairDir);
  if (journal) return resumeMigrate(store, resolver, record, journal, options, startMs);
  if (record.failover) throw new TidemarkError('USAGE', `pair "${name}" is failed over`, `run \`tidemark failback ${name}\` first`);
  await checkNotGrouped(store, record);
  const endpoints: PairEndpoints = { primary: await resolver.resolve(record.primary.volref), secondary: await resolver.resolve(record.secondary.volref) };
  await checkPairMembers(record, endpoints, 'migrating');
  await checkSoleMembership(record, endpoints.primary);
  await dropCheckSnapshots(endpoints, record.pairId);
  const drained = await drain(store, record, endpoints, options);
  if (options.signal?.aborted) throw migrateCancelled(name);
  const lock = await acquirePairLock(pairDir, name, 'migrate');
  try {
    // What the drain saw may have changed before the lock (a failover from another process).
    const locked = await store.require(name);
    if (locked.failover || locked.generation !== record.generation || locked.primary.volref !== record.primary.volref) {
      throw new TidemarkError(
        'BUSY',
        `pair "${name}" changed roles while migrate drained it`,
        'see `tidemark pair show`, then run migrate again if still wanted',
      );
    }
    record = locked;
    // The last moment a cancel counts: checked and the pause reported in one step (no await
    // between), so a cancel is either seen here or refused (the phase is no longer 'drain').
    if (options.signal?.aborted) throw migrateCancelled(name);
    progressReporter(name, options.onProgress)('pause', 0, 0, 0);
    const begun: MigrateJournal = {
      generation: record.generation,
      oldPrimary: record.primary.volref,
      newPrimary: record.secondary.volref,
      startedAt: new Date().toISOString(),
      phase: 'pause',
    };
    await writeRecord(migrateJournalPath(pairDir), migrateJournalKind, begun);
    const pause = await runPause(store, record, endpoints, options, startMs);
    return { ...pause, drainedRegions: drained.regionsTransferred, bytesTransferred: drained.bytesTransferred + pause.bytesTransferred, resumed: false };
  } finally {
    await lock.release();
  }
}

/**
 * Finishes a migrate whose process died in its pause. The record still names the old primary
 * (the swap is its last step) unless the swap was recorded and only the cleanup is left.
 */
async function resumeMigrate(
  store: PairStore,
  resolver: EndpointResolver,
  record: PairRecord,
  journal: MigrateJournal,
  options: MigrateOptions,
  startMs: number,
): Promise<MigrateSummary> {
  const lock = await acquirePairLock(store.pairDir(record.name), record.name, 'migrate');
  try {
    record = await store.require(record.name);
    const ends = (primary: string, secondary: string) =>
      Promise.all([resolver.resolve(primary), resolver.resolve(secondary)]).then(([p, s]): PairEndpoints => ({ primary: p, secondary: s }));
    if (journal.phase === 'restoring') {
      // The verify had failed: finish making the old primary the primary again, then report that.
      if (record.generation === journal.generation) await restorePrimary(store, record, await ends(record.primary.volref, record.secondary.volref), []);
      await removeMigrateJournal(store.pairDir(record.name));
      throw new TidemarkError(
        'IO',
        `the interrupted migrate of ${record.name} had stopped before the swap (regions differed after the final copy); ${record.primary.volref} is the primary again`,
        `investigate with \`tidemark verify ${record.name}\`, then \`tidemark replicate ${record.name}\``,
      );
    }
    const swapped = record.generation === journal.generation + 1 && record.primary.volref === journal.newPrimary;
    if (!swapped && (record.generation !== journal.generation || record.primary.volref !== journal.oldPrimary)) {
      await removeMigrateJournal(store.pairDir(record.name)); // a failover or failback decided since
      throw new TidemarkError('USAGE', `the interrupted migrate of pair "${record.name}" was overtaken by a role change`, 'see `tidemark pair show`');
    }
    if (swapped) {
      const swappedEnds = await ends(record.primary.volref, record.secondary.volref);
      await dropPrimaryLeftovers(record, swappedEnds.secondary);
      const check = await checkAfterSwap(record, swappedEnds, progressReporter(record.name, options.onProgress));
      await removeMigrateJournal(store.pairDir(record.name));
      return { ...emptySummary(record, startMs), ...check, generation: record.generation, resumed: true };
    }
    // Resumed in the pause: what the old primary reports unshipped may not be all (an older agent,
    // a demotion killed midway): the whole extent is verified before anything is promoted.
    const pause = await runPause(store, record, await ends(record.primary.volref, record.secondary.volref), { ...options, verifyInPause: true }, startMs);
    return { ...pause, drainedRegions: 0, resumed: true };
  } finally {
    await lock.release();
  }
}

/** Steps 2–4 under the pair's lock, the journal written: every step is safe to run again. */
async function runPause(
  store: PairStore,
  record: PairRecord,
  endpoints: PairEndpoints,
  options: MigrateOptions,
  startMs: number,
): Promise<Omit<MigrateSummary, 'drainedRegions' | 'resumed'>> {
  const pauseStartMs = performance.now();
  const report = progressReporter(record.name, options.onProgress);
  const generation = record.generation + 1;
  const promoted = await memberOf(endpoints.secondary, record);
  const promotedAlready = promoted?.role === 'primary' && promoted.generation === generation;
  report('pause', 0, 0, 0);
  const final = await stopPrimary(record, endpoints);
  let bytes = 0;
  if (!promotedAlready) {
    // The copy lands out of write order: protected, so a failover meanwhile promotes a consistent
    // image (a continuous pair; its shipper releases the snapshot once in sync, should the migrate go back).
    if (record.mode === 'continuous') await protect(record, endpoints.secondary);
    bytes = await copyFinal(record, endpoints, final, (done, doneBytes) => report('copy', done, final.length, doneBytes));
    await testStop('copied');
    report('verify', 0, final.length, bytes);
    const verified = await verifyPair(record, endpoints, {
      ...(options.verifyInPause ? {} : { regions: final }),
      differingMax: Number.MAX_SAFE_INTEGER,
      onProgress: (done, total) => report('verify', done, total, bytes),
    });
    if (verified.regionsDiffering > 0) {
      await writeRecord(migrateJournalPath(store.pairDir(record.name)), migrateJournalKind, { ...(await journalOf(store, record)), phase: 'restoring' });
      await restorePrimary(store, record, endpoints, [...final, ...verified.differing]);
      await removeMigrateJournal(store.pairDir(record.name));
      throw new TidemarkError(
        'IO',
        `migrate of ${record.name} stopped before the swap: ${formatCount(verified.regionsDiffering, 'region')} ${verified.regionsDiffering === 1 ? 'differs' : 'differ'} after the final copy`,
        `${record.primary.volref} is the primary again (generation ${record.generation + 2}) with those regions marked to ship; investigate with \`tidemark verify ${record.name}\`, then \`tidemark replicate ${record.name}\``,
      );
    }
    await releaseProtection(record, endpoints);
    // What the new primary is at its promotion, for the whole-extent check after the pause.
    if (!options.verifyInPause) await ensureCheckSnapshot(endpoints.secondary, record.pairId);
    // A periodic primary records what its next cycle ships from its promotion on (created while still locked).
    if (record.mode === 'periodic') await ensureMap(endpoints.secondary, sinceMapName(record.pairId));
    await endpoints.secondary.agent.pairRoleChange(endpoints.secondary.path, record.pairId, roleEvent('primary', generation, 'migrate'));
    await testStop('promoted');
  }
  await endpoints.secondary.agent.bitmapDelete(endpoints.secondary.path, failbackMapName(record.pairId)).catch(() => undefined); // nothing diverged
  const pauseMs = Math.round(performance.now() - pauseStartMs);
  // A periodic cycle the drain cut short belongs to the old direction: its cursor goes before the swap.
  await removeRecord(join(store.pairDir(record.name), 'cycle.json'));
  const swapped = await store.update(record.name, { generation, primary: record.secondary, secondary: record.primary });
  const ends: PairEndpoints = { primary: endpoints.secondary, secondary: endpoints.primary };
  await dropPrimaryLeftovers(swapped, ends.secondary); // its maps would record replication's writes; a cut-short cycle's snapshot
  report('done', final.length, final.length, bytes);
  const check = await checkAfterSwap(swapped, ends, report);
  await removeMigrateJournal(store.pairDir(record.name)); // after the check: a check that fails is run again by `migrate NAME`
  return {
    ...check,
    pair: record.name,
    newPrimary: record.secondary.volref,
    oldPrimary: record.primary.volref,
    generation,
    finalRegions: final.length,
    bytesTransferred: bytes,
    pauseMs,
    durationMs: Math.round(performance.now() - startMs),
  };
}

/** Before anything is journalled: the primary's agent would refuse to demote a volume other pairs use (agent/role-change.ts). */
async function checkSoleMembership(record: PairRecord, primary: VolumeEndpoint): Promise<void> {
  const others = (await primary.agent.volumeState(primary.path)).members.filter((m) => m.pairId !== record.pairId);
  if (others.length === 0) return;
  throw new TidemarkError(
    'USAGE',
    `${primary.volref} is also a member of pair(s) ${others.map((m) => `"${m.name}" (${m.role})`).join(', ')}: demoting it for pair "${record.name}" would make it read-only for them too`,
    'delete those pairs, or fail them over first; then migrate this one',
  );
}

async function journalOf(store: PairStore, record: PairRecord): Promise<MigrateJournal> {
  return (
    (await readMigrateJournal(store.pairDir(record.name))) ?? {
      generation: record.generation,
      oldPrimary: record.primary.volref,
      newPrimary: record.secondary.volref,
      startedAt: new Date().toISOString(),
      phase: 'pause',
    }
  );
}

/** A protective snapshot on the secondary for the pause's out-of-order copy (released before the promotion). */
async function protect(record: PairRecord, secondary: VolumeEndpoint): Promise<void> {
  const member = await memberOf(secondary, record);
  if (member?.protectSnapshotId) return;
  const { snapshotId } = await secondary.agent.snapshotCreate(secondary.path, { label: `${protectSnapshotLabelPrefix}${record.pairId}` });
  await secondary.agent.pairUpdate(secondary.path, record.pairId, { protectSnapshotId: snapshotId });
}

const checkSnapshotLabel = (pairId: string) => `tidemark-migrate-check ${pairId}`;

async function checkSnapshotOf(side: VolumeEndpoint, pairId: string): Promise<string | null> {
  const { snapshots } = await side.agent.snapshotList(side.path);
  return snapshots.find((s) => s.label === checkSnapshotLabel(pairId))?.snapshotId ?? null;
}

async function ensureCheckSnapshot(side: VolumeEndpoint, pairId: string): Promise<void> {
  if (!(await checkSnapshotOf(side, pairId))) await side.agent.snapshotCreate(side.path, { label: checkSnapshotLabel(pairId) });
}

/** A check a killed migrate left behind (its snapshot would cost copy-on-write for ever). */
async function dropCheckSnapshots(endpoints: PairEndpoints, pairId: string): Promise<void> {
  for (const side of [endpoints.primary, endpoints.secondary]) {
    const id = await checkSnapshotOf(side, pairId);
    if (id) await side.agent.snapshotDelete(side.path, id);
  }
}

/**
 * After the pause, outside it: the new primary as promoted (its snapshot) against the old
 * primary, region by region. The pause verified the regions it copied; this covers the rest
 * without holding writes. A difference means tracking missed a write (a bug, or a disk that
 * lied): it is reported, never repaired silently — which side is right is the admin's call
 * (the old primary holds the pair as it was at the pause).
 */
async function checkAfterSwap(
  record: PairRecord,
  endpoints: PairEndpoints,
  report: ReturnType<typeof progressReporter>,
): Promise<{ checkedRegions: number; checkDifferingRegions: number; checkDiffering: readonly number[] }> {
  const snapshotId = await checkSnapshotOf(endpoints.primary, record.pairId);
  if (!snapshotId) return { checkedRegions: 0, checkDifferingRegions: 0, checkDiffering: [] };
  const verified = await verifyPair(record, endpoints, {
    primarySnapshotId: snapshotId,
    onProgress: (done, total) => report('check', done, total, 0),
  });
  await endpoints.primary.agent.snapshotDelete(endpoints.primary.path, snapshotId);
  return { checkedRegions: verified.regions, checkDifferingRegions: verified.regionsDiffering, checkDiffering: verified.differing };
}

function emptySummary(
  record: PairRecord,
  startMs: number,
): Omit<MigrateSummary, 'generation' | 'resumed' | 'checkedRegions' | 'checkDifferingRegions' | 'checkDiffering'> {
  return {
    pair: record.name,
    newPrimary: record.primary.volref,
    oldPrimary: record.secondary.volref,
    drainedRegions: 0,
    finalRegions: 0,
    bytesTransferred: 0,
    pauseMs: 0,
    durationMs: Math.round(performance.now() - startMs),
  };
}

async function memberOf(side: VolumeEndpoint, record: PairRecord): Promise<PairMember | undefined> {
  return (await side.agent.volumeState(side.path)).members.find((m) => m.pairId === record.pairId);
}

/** Progress of the pause's phases, with a rate and an ETA for the copy. */
function progressReporter(pair: string, onProgress: MigrateOptions['onProgress']) {
  const phaseStart = new Map<MigrateProgress['phase'], number>();
  return (phase: MigrateProgress['phase'], done: number, total: number, bytes: number): void => {
    if (!onProgress) return;
    const nowMs = performance.now();
    if (!phaseStart.has(phase)) phaseStart.set(phase, nowMs);
    const elapsedMs = nowMs - phaseStart.get(phase)!;
    const bytesPerSecond = elapsedMs > 0 ? Math.round((bytes * 1000) / elapsedMs) : 0;
    const etaMs = done > 0 && total >= done ? Math.round((elapsedMs * (total - done)) / done) : undefined;
    onProgress({ pair, phase, regionsTransferred: done, regionsTotal: total, bytesTransferred: bytes, bytesPerSecond, etaMs });
  };
}

/** Ships while applications write, until in sync (a periodic pair: one cycle) or the budget runs out; what is left is copied in the pause. */
async function drain(
  store: PairStore,
  record: PairRecord,
  endpoints: PairEndpoints,
  options: MigrateOptions,
): Promise<{ regionsTransferred: number; bytesTransferred: number }> {
  const budgetMs = options.drainMs ?? drainMsDefault;
  if (budgetMs <= 0) return { regionsTransferred: 0, bytesTransferred: 0 }; // everything unshipped is copied in the pause
  const budget = new AbortController();
  const timer = setTimeout(() => budget.abort(), budgetMs);
  const signal = options.signal ? AbortSignal.any([budget.signal, options.signal]) : budget.signal;
  const progress = progressReporter(record.name, options.onProgress);
  const report = (done: number, left: number, bytes: number) => progress('drain', done, done + left, bytes);
  report(0, 0, 0); // draining from here (a cancel is taken until the pause is reported)
  let shippedRegions = 0;
  let shippedBytes = 0;
  try {
    const summary = await replicatePair({
      store,
      pair: record,
      endpoints,
      once: true,
      signal,
      onProgress: (p) => {
        shippedRegions = p.regionsTransferred;
        shippedBytes = p.bytesTransferred;
        report(p.regionsTransferred, p.oosRegions + p.inFlightRegions, p.bytesTransferred);
      },
      onCycleProgress: (p) => report(p.regionsDone, p.regionsTotal - p.regionsDone, p.bytesTransferred),
    });
    return summary;
  } catch (error) {
    if (!signal.aborted || !isTidemarkError(error) || error.code !== 'CANCELLED') throw error;
    if (options.signal?.aborted) throw migrateCancelled(record.name);
    return { regionsTransferred: shippedRegions, bytesTransferred: shippedBytes };
  } finally {
    clearTimeout(timer);
  }
}

function migrateCancelled(name: string): TidemarkError {
  return new TidemarkError('CANCELLED', `migrate of ${name} cancelled while draining: nothing changed`, 'migrate again when ready');
}

/**
 * A drain cut short by its budget leaves the catch-up's protective snapshot on the secondary.
 * Verified equal to the stopped primary, the secondary is consistent now: the snapshot goes —
 * a promotion would otherwise roll the volume back to it.
 */
async function releaseProtection(record: PairRecord, endpoints: PairEndpoints): Promise<void> {
  const { secondary } = endpoints;
  const member = (await secondary.agent.volumeState(secondary.path)).members.find((m) => m.pairId === record.pairId);
  const snapshotId = member?.protectSnapshotId;
  if (!snapshotId) return;
  await secondary.agent.pairUpdate(secondary.path, record.pairId, { protectSnapshotId: null });
  await secondary.agent.snapshotDelete(secondary.path, snapshotId).catch(() => undefined);
}

/**
 * A migrate that cannot verify: the old primary becomes the primary again (at g+2, the
 * secondary too), with the regions of the pause marked unshipped so replication sends them.
 */
async function restorePrimary(store: PairStore, record: PairRecord, endpoints: PairEndpoints, final: readonly number[]): Promise<void> {
  const generation = record.generation + 2;
  const { primary, secondary } = endpoints;
  // What the demotion kept durably counts too (a restore resumed after a crash passes nothing).
  const kept = (await primary.agent.bitmapList(primary.path)).some((m) => m.name === unshippedMapName(record.pairId))
    ? [...bitsOf(await primary.agent.bitmapRead(primary.path, unshippedMapName(record.pairId))).indexes()]
    : [];
  final = [...new Set([...final, ...kept])].sort((a, b) => a - b);
  await secondary.agent.pairRoleChange(secondary.path, record.pairId, roleEvent('secondary', generation, 'migrate'));
  await primary.agent.pairRoleChange(primary.path, record.pairId, roleEvent('primary', generation, 'migrate'));
  await primary.agent.bitmapDelete(primary.path, failbackMapName(record.pairId)).catch(() => undefined);
  if (record.mode === 'continuous' && final.length > 0) await primary.agent.trackingMark(primary.path, record.pairId, final);
  if (record.mode === 'periodic') {
    await primary.agent.bitmapCreate(primary.path, sinceMapName(record.pairId)).catch(() => undefined);
    if (final.length > 0) await primary.agent.bitmapMark(primary.path, sinceMapName(record.pairId), final);
  }
  await primary.agent.bitmapDelete(primary.path, unshippedMapName(record.pairId)).catch(() => undefined);
  await store.update(record.name, { generation });
  await removeMigrateJournal(store.pairDir(record.name));
}
async function stopPrimary(record: PairRecord, endpoints: PairEndpoints): Promise<number[]> {
  const { primary } = endpoints;
  const result = await primary.agent.pairRoleChange(primary.path, record.pairId, roleEvent('secondary', record.generation + 1, 'migrate'));
  if (record.mode === 'continuous') return [...(result.unshippedRegions ?? [])];
  const maps = await primary.agent.bitmapList(primary.path);
  const names = [sinceMapName(record.pairId), currentMapName(record.pairId)].filter((n) => maps.some((m) => m.name === n));
  const bits = await Promise.all(names.map(async (n) => primary.agent.bitmapRead(primary.path, n)));
  // Kept until the swap is recorded (then dropPrimaryLeftovers): a resumed pause reads them again.
  return bits.length > 0 ? [...Bitset.union(...bits.map(bitsOf)).indexes()] : [];
}

/** Copies the final regions into the (still locked) secondary with the pair's old auth, then flushes it. */
async function copyFinal(
  record: PairRecord,
  endpoints: PairEndpoints,
  regions: readonly number[],
  onRegion: (regionsDone: number, bytesDone: number) => void,
): Promise<number> {
  const { primary, secondary } = endpoints;
  const auth = { pairId: record.pairId, generation: record.generation };
  let bytes = 0;
  let done = 0;
  for (const [first, count] of runsOf(regions)) {
    for await (const { regionIndex, data } of primary.agent.readRegions(primary.path, first, count)) {
      await secondary.agent.writeRegion(secondary.path, regionIndex, data, { auth });
      bytes += data.length;
      onRegion(++done, bytes);
    }
  }
  await secondary.agent.flush(secondary.path);
  return bytes;
}
