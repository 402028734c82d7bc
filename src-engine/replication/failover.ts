// Failover and easy failback (seed 004, docs/failover.md).
//
// failover: the secondary is promoted at generation g+1 (its agent rolls back an interrupted
// catch-up, starts the failback map, lifts the lock); the pair record swaps roles and
// remembers the failover. A reachable old primary is refused without --force (migrate is the
// lossless way); with --force it is demoted first, its unshipped regions handed to the new
// primary's tracking so failback copies them back. An unreachable one needs --force: its
// unshipped writes are at risk.
// failback: the old primary, reachable again, is demoted at g+1; the resync map is
// failback ∪ what the new primary tracks ∪ the old primary's unshipped regions (OOS ∪ in
// flight); it is marked out of sync in the new primary's tracking (durable in MOOS), and
// continuous replication ships exactly it — a failback interrupted anywhere after the
// marking resumes as plain replication.

import { rm } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { Bitset } from '../bitmap';
import { TidemarkError, isTidemarkError } from '../errors';
import { failbackMapName, unshippedMapName, type BitmapContents, type RoleEvent } from '../agent';
import type { EndpointResolver, PairEndpoints, VolumeEndpoint } from './endpoints';
import type { PairRecord, PairStore } from './pair-store';
import { exportDiscarded, type DiscardedExport } from './discarded';
import { clockOffsetOf, toLocalMs } from './clock';
import { groupOf } from './groups';
import { currentMapName } from './periodic';
import { replicatePair, type ReplicateSummary } from './replicate';
import { acquirePairLock } from './sync/lock';
import { migrateJournalFile, sinceMapName } from './sync/names';

export interface FailoverSummary {
  readonly pair: string;
  readonly newPrimary: string;
  readonly oldPrimary: string;
  readonly generation: number;
  readonly forced: boolean;
  readonly oldPrimaryReachable: boolean;
  /** The old primary's unshipped regions, when it could be asked (they are copied over at failback). */
  readonly atRiskRegions: number | null;
  readonly rolledBackRegions: number;
  readonly failbackMap: string | null;
  /** The consistency group this pair failed over with (failoverGroup), else null. */
  readonly group: string | null;
  readonly durationMs: number;
}

export interface FailbackPlan {
  readonly pair: string;
  readonly regions: number;
  /** Regions the resync copies from the new primary to the old one. */
  readonly resyncRegions: number;
  readonly resyncBytes: number;
  /** Where the regions come from: written on the new primary since the failover, and unshipped on the old one. */
  readonly failbackRegions: number;
  readonly unshippedRegions: number;
  readonly runs: readonly (readonly [number, number])[];
}

export interface FailbackSummary extends FailbackPlan {
  readonly dryRun: boolean;
  /** Both sides were written as primary (refused without --discard-changes-on; reported by --dry-run). */
  readonly splitBrain: SplitBrain | null;
  /** The discarded side's regions saved first (--export-discarded). */
  readonly discarded: DiscardedExport | null;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly durationMs: number;
  readonly replication: ReplicateSummary | null;
}

const byWhom = () => `${userInfo().username}@${hostname()}`;

/** The endpoint and its agent's answer, or why it could not be asked. */
export async function reach(resolver: EndpointResolver, volref: string): Promise<{ endpoint: VolumeEndpoint } | { error: TidemarkError }> {
  try {
    const endpoint = await resolver.resolve(volref);
    await endpoint.agent.volumeState(endpoint.path);
    return { endpoint };
  } catch (error) {
    if (isTidemarkError(error) && ['DISCONNECTED', 'IO', 'NOT_FOUND'].includes(error.code)) return { error };
    throw error;
  }
}

export function bitsOf(contents: BitmapContents): Bitset {
  return new Bitset(contents.regionCount, contents.words);
}

/** What the (still primary) old primary holds that its secondary never got. */
async function unshippedOf(record: PairRecord, endpoint: VolumeEndpoint): Promise<Bitset> {
  const { agent, path } = endpoint;
  if (record.mode === 'periodic') return periodicMapsOf(record, endpoint);
  const [oos, inFlight] = await Promise.all([agent.trackingMap(path, record.pairId, 'oos'), agent.trackingMap(path, record.pairId, 'in-flight')]);
  return Bitset.union(bitsOf(oos), bitsOf(inFlight));
}

/** A periodic primary's current ∪ next maps (they stay on a demoted volume until failback drops them). */
async function periodicMapsOf(record: PairRecord, endpoint: VolumeEndpoint): Promise<Bitset> {
  const { agent, path } = endpoint;
  const maps = await agent.bitmapList(path);
  const names = [sinceMapName(record.pairId), currentMapName(record.pairId)].filter((n) => maps.some((m) => m.name === n));
  const bits = await Promise.all(names.map(async (n) => bitsOf(await agent.bitmapRead(path, n))));
  if (bits.length > 0) return Bitset.union(...bits);
  const member = (await agent.volumeState(path)).members.find((m) => m.pairId === record.pairId);
  return new Bitset(member?.regionCount ?? 0);
}

/** A role-change event stamped now, by this orchestrator's user@host. */
export function roleEvent(role: RoleEvent['role'], generation: number, kind: RoleEvent['event']): RoleEvent {
  return { generation, role, event: kind, atMs: Date.now(), by: byWhom() };
}

export interface FailoverOptions {
  readonly force?: boolean;
  /** The consistency group failing over with this pair (failoverGroup): a grouped pair fails over only with its group. */
  readonly group?: string;
}

export async function failoverPair(store: PairStore, resolver: EndpointResolver, name: string, options: FailoverOptions = {}): Promise<FailoverSummary> {
  const lock = await acquirePairLock(store.pairDir(name), name, 'failover');
  try {
    return await failoverPairLocked(store, resolver, name, options);
  } finally {
    await lock.release();
  }
}

/** failoverPair with the pair's lock held by the caller. */
export async function failoverPairLocked(store: PairStore, resolver: EndpointResolver, name: string, options: FailoverOptions = {}): Promise<FailoverSummary> {
  const startMs = performance.now();
  const record = await store.require(name);
  if (record.failover) {
    throw new TidemarkError(
      'USAGE',
      `pair "${name}" already failed over to ${record.primary.volref}`,
      `run \`tidemark failback ${name}\` once the old primary is back`,
    );
  }
  await checkNotGroupedForFailover(store, record, options.group);
  const secondary = await resolver.resolve(record.secondary.volref);
  const primary = await reach(resolver, record.primary.volref);
  const reachable = 'endpoint' in primary;
  const force = options.force === true;
  if (!force) throw refusal(record, reachable, reachable ? null : primary.error);
  const generation = record.generation + 1;
  const atMs = Date.now(); // before the promotion: a write on the old primary after it is a split brain
  // Maps that must record every region from the promotion on exist before it (still locked).
  await ensureMap(secondary, failbackMapName(record.pairId));
  if (record.mode === 'periodic') await ensureMap(secondary, sinceMapName(record.pairId));
  const atRisk = reachable ? await handOver(record, primary.endpoint, secondary, roleEvent('secondary', generation, 'failover-forced')) : null;
  const promoted = await secondary.agent.pairRoleChange(
    secondary.path,
    record.pairId,
    roleEvent('primary', generation, force ? 'failover-forced' : 'failover'),
  );
  // A periodic cycle in progress is abandoned: its snapshot is the old primary's (removed at failback).
  await rm(join(store.pairDir(name), 'cycle.json'), { force: true });
  await rm(join(store.pairDir(name), migrateJournalFile), { force: true }); // a migrate that died in its pause: decided now
  await store.update(name, {
    generation,
    primary: record.secondary,
    secondary: record.primary,
    failover: { atMs, forced: force, fromGeneration: record.generation, oldPrimaryDemoted: reachable, phase: 'promoted', resyncRegions: null },
  });
  return {
    pair: name,
    newPrimary: record.secondary.volref,
    oldPrimary: record.primary.volref,
    generation,
    forced: force,
    oldPrimaryReachable: reachable,
    atRiskRegions: atRisk,
    rolledBackRegions: promoted.rolledBackRegions,
    failbackMap: promoted.failbackMap,
    group: options.group ?? null,
    durationMs: Math.round(performance.now() - startMs),
  };
}

/** A grouped pair fails over with its group only: its secondary and the others' hold one instant, and only the group keeps it. */
async function checkNotGroupedForFailover(store: PairStore, record: PairRecord, failingGroup: string | undefined): Promise<void> {
  const group = await groupOf(store, record);
  if (group === undefined || group.name === failingGroup) return;
  throw new TidemarkError(
    'USAGE',
    `pair "${record.name}" is in consistency group "${group.name}": it fails over with its group, so that every secondary of the group is promoted at one instant`,
    `run \`tidemark failover ${group.name}\``,
  );
}

export async function ensureMap(side: VolumeEndpoint, name: string): Promise<void> {
  if (!(await side.agent.bitmapList(side.path)).some((m) => m.name === name)) await side.agent.bitmapCreate(side.path, name);
}

/**
 * Demotes `old` (a primary whose changes are discarded) and hands what it had unshipped to
 * `survivor`'s failback map, durably: first what it reports while still writable, then what
 * its lock's instant adds (the demotion's own report, or a periodic pair's maps read after it).
 * Returns how many regions were handed over.
 */
async function handOver(record: PairRecord, old: VolumeEndpoint, survivor: VolumeEndpoint, demotion: RoleEvent): Promise<number> {
  const mapName = failbackMapName(record.pairId);
  // Already demoted (a migrate that died in its pause): its demotion's durable unshipped map says it all.
  const stillPrimary = (await old.agent.volumeState(old.path)).members.find((m) => m.pairId === record.pairId)?.role === 'primary';
  const before = stillPrimary ? [...(await unshippedOf(record, old)).indexes()] : [];
  if (before.length > 0) await survivor.agent.bitmapMark(survivor.path, mapName, before);
  const result = await old.agent.pairRoleChange(old.path, record.pairId, demotion);
  // A periodic primary's unshipped regions are its change maps (its tracker's OOS is never shipped).
  const after = record.mode === 'periodic' ? [...(await periodicMapsOf(record, old)).indexes()] : [...(result.unshippedRegions ?? [])];
  if (after.length > 0) await survivor.agent.bitmapMark(survivor.path, mapName, after);
  // Handed on durably: the demotion's own copy goes (it would record the writes replication brings next).
  await dropMaps(old, [unshippedMapName(record.pairId)]);
  return new Set([...before, ...after]).size;
}

async function dropMaps(side: VolumeEndpoint, names: readonly string[]): Promise<void> {
  const maps = await side.agent.bitmapList(side.path);
  for (const name of names) if (maps.some((m) => m.name === name)) await side.agent.bitmapDelete(side.path, name);
}

function refusal(record: PairRecord, reachable: boolean, error: TidemarkError | null): TidemarkError {
  const risk =
    record.mode === 'periodic'
      ? 'the cycle in progress and everything written since (its current and next change maps)'
      : 'every write acknowledged there and not yet shipped (its OOS/MOOS regions)';
  if (reachable) {
    return new TidemarkError(
      'USAGE',
      `the primary of pair "${record.name}" (${record.primary.volref}) is reachable: a failover would demote it and copy over ${risk} at failback`,
      `for a lossless role swap use \`tidemark migrate ${record.name}\`; to promote ${record.secondary.volref} anyway, add --force`,
    );
  }
  return new TidemarkError(
    'USAGE',
    `the primary of pair "${record.name}" is unreachable (${error?.message ?? 'no answer'}); promoting ${record.secondary.volref} puts at risk ${risk}`,
    `add --force to promote it: failback later copies the new primary's data over those regions`,
  );
}

/** The resync map of a failed-over pair: failback ∪ the new primary's tracking ∪ the old primary's unshipped regions. */
export async function resyncMapOf(record: PairRecord, endpoints: PairEndpoints): Promise<{ map: Bitset; failback: number; unshipped: number }> {
  const { primary: newPrimary, secondary: oldPrimary } = endpoints;
  const fbName = failbackMapName(record.pairId);
  const fb = (await newPrimary.agent.bitmapList(newPrimary.path)).some((m) => m.name === fbName)
    ? bitsOf(await newPrimary.agent.bitmapRead(newPrimary.path, fbName))
    : null;
  const tracked = await Promise.all(
    (['oos', 'in-flight'] as const).map(async (w) => bitsOf(await newPrimary.agent.trackingMap(newPrimary.path, record.pairId, w))),
  );
  const old = (await oldPrimary.agent.volumeState(oldPrimary.path)).members.find((m) => m.pairId === record.pairId);
  const unshipped = old?.role === 'primary' ? await unshippedOf(record, oldPrimary) : null;
  const map = Bitset.union(...tracked, ...(fb ? [fb] : []), ...(unshipped ? [unshipped] : []));
  return { map, failback: fb?.popcount() ?? 0, unshipped: unshipped?.popcount() ?? 0 };
}

export interface FailbackOptions {
  readonly dryRun?: boolean;
  /** After a split brain: the VOLREF whose writes since the failover are discarded (the other side survives). */
  readonly discardChangesOn?: string;
  /** Save the discarded side's regions of the resync map here first (a new directory). */
  readonly exportDiscarded?: string;
  readonly replicate?: (record: PairRecord, endpoints: PairEndpoints) => Promise<ReplicateSummary>;
  /**
   * Stops the copy (the default `replicate`; a caller's own `replicate` takes its own): the
   * failback ends with CANCELLED, the old primary demoted and the rest of the resync map kept in
   * the new primary's tracking — failing back again (or replicating) copies only that.
   */
  readonly signal?: AbortSignal;
}

export async function failbackPair(store: PairStore, resolver: EndpointResolver, name: string, options: FailbackOptions = {}): Promise<FailbackSummary> {
  const startMs = performance.now();
  let record = await store.require(name);
  const failover = record.failover;
  if (!failover) throw new TidemarkError('USAGE', `pair "${name}" has not failed over`, 'failback brings back an old primary after `tidemark failover`');
  const oldPrimary = await reach(resolver, record.secondary.volref);
  if ('error' in oldPrimary) {
    throw new TidemarkError(
      'DISCONNECTED',
      `the old primary ${record.secondary.volref} is unreachable: ${oldPrimary.error.message}`,
      'failback needs it back; the new primary keeps recording what to copy meanwhile',
    );
  }
  let endpoints: PairEndpoints = { primary: await resolver.resolve(record.primary.volref), secondary: oldPrimary.endpoint };
  const plan = await planOf(record, endpoints);
  const splitBrain = failover.phase === 'promoted' ? await splitBrainOf(record, endpoints) : null;
  const done = (extra: Partial<FailbackSummary>): FailbackSummary => ({
    ...plan,
    splitBrain,
    dryRun: false,
    regionsTransferred: 0,
    bytesTransferred: 0,
    durationMs: Math.round(performance.now() - startMs),
    replication: null,
    discarded: null,
    ...extra,
  });
  if (options.dryRun) return done({ dryRun: true });
  const discard =
    splitBrain || options.discardChangesOn ? await discardedSide(resolver, record, endpoints, splitBrain, options.discardChangesOn) : 'old-primary';
  let discarded: DiscardedExport | null = null;
  if (options.signal?.aborted) throw new TidemarkError('CANCELLED', `failback of ${name} cancelled before it changed anything`, 'run it again when ready');
  if (failover.phase === 'promoted') {
    const lock = await acquirePairLock(store.pairDir(name), name, 'failback');
    try {
      const survivor = discard === 'old-primary' ? endpoints.primary : endpoints.secondary;
      const loser = discard === 'old-primary' ? endpoints.secondary : endpoints.primary;
      const generation = discard === 'old-primary' ? record.generation : record.generation + 1;
      // Everything that differs goes durably into the survivor's failback map before anything is dropped:
      // the map so far, then the loser stopped (locked) and what its lock's instant adds.
      await ensureMap(survivor, failbackMapName(record.pairId));
      const { map: before } = await resyncMapOf(record, endpoints);
      if (before.popcount() > 0) await survivor.agent.bitmapMark(survivor.path, failbackMapName(record.pairId), [...before.indexes()]);
      const loserMember = (await loser.agent.volumeState(loser.path)).members.find((m) => m.pairId === record.pairId);
      // Also when already demoted (a failback retried after dying here): the demotion's durable
      // unshipped map, or a periodic pair's maps, are read again — handing over is idempotent.
      if (loserMember) await handOver(record, loser, survivor, roleEvent('secondary', generation, 'failback'));
      if (discard === 'new-primary') {
        // The loser's own writes since the failover are in its failback map: final now that it is locked.
        const fb = bitsOf(await loser.agent.bitmapRead(loser.path, failbackMapName(record.pairId)));
        if (fb.popcount() > 0) await survivor.agent.bitmapMark(survivor.path, failbackMapName(record.pairId), [...fb.indexes()]);
        await survivor.agent.pairRoleChange(survivor.path, record.pairId, roleEvent('primary', generation, 'failback'));
      }
      const map = bitsOf(await survivor.agent.bitmapRead(survivor.path, failbackMapName(record.pairId)));
      if (options.exportDiscarded) discarded = await exportDiscarded(options.exportDiscarded, record, loser, map);
      // Marked durably before the phase moves on: a crash after this resumes by replicating.
      await seedResync(record, survivor, [...map.indexes()]);
      record = await store.update(name, {
        generation,
        primary: discard === 'old-primary' ? record.primary : record.secondary,
        secondary: discard === 'old-primary' ? record.secondary : record.primary,
        failover: { ...failover, phase: 'seeded', resyncRegions: map.popcount() },
      });
      endpoints = { primary: survivor, secondary: loser };
      await dropFailbackMap(record, loser);
      await dropPrimaryLeftovers(record, loser);
    } finally {
      await lock.release();
    }
  }
  const replicate =
    options.replicate ?? ((pair, ends) => replicatePair({ store, pair, endpoints: ends, once: true, signal: options.signal, failbackCopy: true }));
  let replication: ReplicateSummary;
  try {
    // Cancelled while preparing: the resync map is marked and the loser demoted by now; stop before copying.
    if (options.signal?.aborted) throw new TidemarkError('CANCELLED', `failback of ${name} cancelled`, '');
    replication = await replicate(record, endpoints);
  } catch (error) {
    if (!options.signal?.aborted || !isTidemarkError(error) || error.code !== 'CANCELLED') throw error;
    throw new TidemarkError(
      'CANCELLED',
      `failback of ${name} cancelled: ${record.secondary.volref} is demoted and the rest of the resync map is kept`,
      `run \`tidemark failback ${name}\` again to copy only what is left`,
    );
  }
  await dropFailbackMap(record, endpoints.primary);
  await store.update(name, { failover: null });
  return done({ regionsTransferred: replication.regionsTransferred, bytesTransferred: replication.bytesTransferred, replication, discarded });
}

async function dropFailbackMap(record: PairRecord, side: VolumeEndpoint): Promise<void> {
  const fbName = failbackMapName(record.pairId);
  if ((await side.agent.bitmapList(side.path)).some((m) => m.name === fbName)) await side.agent.bitmapDelete(side.path, fbName);
}

export interface SplitBrain {
  readonly failoverAtMs: number;
  /** When the old primary was last written (after the failover: hence split brain), on this machine's clock. */
  readonly oldPrimaryLastWriteAtMs: number;
  /** The old primary's clock minus this machine's, as measured (null: its agent does not report its clock). */
  readonly oldPrimaryClockOffsetMs: number | null;
}

/**
 * Both sides written as primary: the old primary, never demoted, took writes after the
 * failover's instant (its tracker's durable last-write time says so). Before it, its writes
 * were acknowledged and unshipped when it was lost — what --force put at risk, copied over.
 */
async function splitBrainOf(record: PairRecord, endpoints: PairEndpoints): Promise<SplitBrain | null> {
  const failover = record.failover!;
  if (failover.oldPrimaryDemoted) return null;
  const old = endpoints.secondary;
  const member = (await old.agent.volumeState(old.path)).members.find((m) => m.pairId === record.pairId);
  if (member?.role !== 'primary') return null;
  const state = await old.agent.trackingState(old.path, record.pairId);
  if (state.lastWriteAtMs === null) return null;
  // Its clock, not ours, stamped the write: moved onto ours, and any doubt counts as after.
  const clock = await clockOffsetOf(old.agent);
  const last = Math.round(toLocalMs(state.lastWriteAtMs, clock));
  const after = last + (clock?.uncertaintyMs ?? 0) > failover.atMs;
  return after ? { failoverAtMs: failover.atMs, oldPrimaryLastWriteAtMs: last, oldPrimaryClockOffsetMs: clock ? Math.round(clock.offsetMs) : null } : null;
}

/** Which side's changes a split brain's resolution discards: the person's choice, or a refusal explaining it. */
async function discardedSide(
  resolver: EndpointResolver,
  record: PairRecord,
  endpoints: PairEndpoints,
  splitBrain: SplitBrain | null,
  choice: string | undefined,
): Promise<'old-primary' | 'new-primary'> {
  const oldRef = endpoints.secondary.volref;
  const newRef = endpoints.primary.volref;
  const when = (ms: number) => new Date(ms).toISOString();
  if (choice === undefined) {
    if (!splitBrain) return 'old-primary';
    throw new TidemarkError(
      'SPLIT_BRAIN',
      `split brain on pair "${record.name}": ${newRef} was promoted at ${when(splitBrain.failoverAtMs)}, but the old primary ${oldRef} was written as primary after that (last at ${when(splitBrain.oldPrimaryLastWriteAtMs)}); failing back would silently discard one side's writes`,
      `choose the side whose changes are discarded: \`tidemark failback ${record.name} --discard-changes-on ${oldRef}\` (keeps ${newRef}) or \`--discard-changes-on ${newRef}\` (keeps ${oldRef}); add --export-discarded DIR to save those regions first`,
    );
  }
  const chosen = (await resolver.resolve(choice)).volref;
  if (chosen === oldRef) return 'old-primary';
  if (chosen === newRef) return 'new-primary';
  throw new TidemarkError('USAGE', `--discard-changes-on ${choice} is neither side of pair "${record.name}"`, `give ${oldRef} or ${newRef}`);
}

/**
 * The resync map becomes what replication ships next: a continuous pair's tracking (OOS, and
 * MOOS durably), a periodic pair's next map (the following cycle rotates it into current).
 */
async function seedResync(record: PairRecord, primary: VolumeEndpoint, regions: readonly number[]): Promise<void> {
  const { agent, path } = primary;
  if (record.mode === 'continuous') {
    if (regions.length > 0) await agent.trackingMark(path, record.pairId, regions);
    return;
  }
  const since = sinceMapName(record.pairId);
  if (!(await agent.bitmapList(path)).some((m) => m.name === since)) await agent.bitmapCreate(path, since);
  if (regions.length > 0) await agent.bitmapMark(path, since, regions);
}

/** What the demoted old primary kept as a primary: its periodic maps and cycle snapshots. */
export async function dropPrimaryLeftovers(record: PairRecord, old: VolumeEndpoint): Promise<void> {
  await dropMaps(old, [sinceMapName(record.pairId), currentMapName(record.pairId), unshippedMapName(record.pairId)]);
  const { snapshots } = await old.agent.snapshotList(old.path);
  for (const s of snapshots.filter((s) => s.label.startsWith(`tidemark-cycle ${record.pairId} `))) await old.agent.snapshotDelete(old.path, s.snapshotId);
}

async function planOf(record: PairRecord, endpoints: PairEndpoints): Promise<FailbackPlan> {
  const { map, failback, unshipped } = await resyncMapOf(record, endpoints);
  const runs = [...map.runs()].map(({ start, end }) => [start, end - start] as const);
  return {
    pair: record.name,
    regions: map.bitCount,
    resyncRegions: map.popcount(),
    resyncBytes: map.popcount() * record.regionBytes,
    failbackRegions: failback,
    unshippedRegions: unshipped,
    runs,
  };
}
