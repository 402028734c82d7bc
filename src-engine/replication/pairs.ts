// Pairs across agents: create (checks, then the orchestrator's record and both members, the
// secondary locked first), delete (both members leave, data untouched), and status. Design:
// docs/sync.md "Pair records".

import { moosPredictDefault, regionBytesDefault } from '../constants';
import { TidemarkError, isTidemarkError } from '../errors';
import { formatBytes } from '../size';
import { hashAlgorithmDefault, type HashAlgorithm } from '../signature';
import type { ImportMarker, PairMember, PeerStatus, TrackingState, VolumeState } from '../agent';
import type { ShipPath } from './direct';
import type { VolumeInfo } from '../volume';
import type { EndpointResolver, PairEndpoints, VolumeEndpoint } from './endpoints';
import { validatePairName, type PairMode, type PairRecord, type PairStore } from './pair-store';
import { periodicPending } from './periodic';
import { GroupStore, groupOf } from './groups';
import { clockOffsetOf, toLocalMs } from './clock';
import { readCycleHistory, type CycleEntry } from './cycle-history';
import { readMigrateJournal } from './migrate';
import { reconcileMembers, type MemberView, type Reconciliation } from './reconcile';
import { CursorStore, type SyncCursor } from './sync/cursor';
import { acquirePairLock, pairLockHolder, type PairLockHolder } from './sync/lock';
import { lcsSnapshotLabel, sinceMapName, swapMapName, syncSnapshotPrefix } from './sync/names';

export interface PairCreateOptions {
  readonly name: string;
  readonly primary: string;
  readonly secondary: string;
  /** Default: the primary's registered region size, else 1 MiB. */
  readonly regionBytes?: number;
  readonly mode?: PairMode;
  readonly intervalMs?: number;
  readonly hash?: HashAlgorithm;
  readonly predictRegions?: number;
}

function regionSizeOf(options: PairCreateOptions, primary: VolumeState, secondary: VolumeState): number {
  const chosen = options.regionBytes ?? primary.regionBytes ?? secondary.regionBytes ?? regionBytesDefault;
  for (const [info, side] of [
    [primary, 'primary'],
    [secondary, 'secondary'],
  ] as const) {
    if (info.regionBytes !== null && info.regionBytes !== chosen) {
      throw new TidemarkError(
        'SIZE_MISMATCH',
        `the ${side} ${info.path} is registered with regions of ${formatBytes(info.regionBytes)}, the pair would use ${formatBytes(chosen)}`,
        `create the pair with --region-size ${formatBytes(info.regionBytes).replace(' ', '')}, or use a volume registered with ${formatBytes(chosen)} regions`,
      );
    }
  }
  return chosen;
}

/** Sizes must match, or the secondary be larger with the primary a whole number of regions. */
function checkSizes(primary: VolumeState, secondary: VolumeState, regionBytes: number): void {
  if (secondary.sizeBytes < primary.sizeBytes) {
    throw new TidemarkError(
      'SIZE_MISMATCH',
      `the secondary ${secondary.path} (${secondary.sizeBytes} bytes) is smaller than the primary ${primary.path} (${primary.sizeBytes} bytes)`,
      'use a secondary at least as large as the primary',
    );
  }
  if (secondary.sizeBytes > primary.sizeBytes && primary.sizeBytes % regionBytes !== 0) {
    throw new TidemarkError(
      'SIZE_MISMATCH',
      `the secondary ${secondary.path} is larger than the primary, whose ${primary.sizeBytes} bytes are not a whole number of ${regionBytes}-byte regions`,
      'use a secondary of exactly the primary’s size, or a region size that divides the primary’s size',
    );
  }
}

async function resolveBoth(resolver: EndpointResolver, primary: string, secondary: string): Promise<PairEndpoints> {
  const [p, s] = await Promise.all([resolver.resolve(primary), resolver.resolve(secondary)]);
  return { primary: p, secondary: s };
}

/** Creates a pair: checks both volumes, records it here, then on the secondary (locking it) and the primary. */
export async function createPair(store: PairStore, resolver: EndpointResolver, options: PairCreateOptions): Promise<PairRecord> {
  validatePairName(options.name);
  if (await store.get(options.name)) {
    throw new TidemarkError('ALREADY_EXISTS', `pair "${options.name}" already exists`, 'choose another name, or delete the old pair first');
  }
  // `replicate`, `failover` and `failback` take a pair's or a group's name: the two never clash.
  if (await new GroupStore(store.homeDir).get(options.name)) {
    throw new TidemarkError('ALREADY_EXISTS', `"${options.name}" already names a consistency group`, 'give the pair another name');
  }
  const { primary, secondary } = await resolveBoth(resolver, options.primary, options.secondary);
  // States, not infos: they need no zero scan of an unregistered volume (adoption does one).
  const [pState, sState] = await Promise.all([primary.agent.volumeState(primary.path), secondary.agent.volumeState(secondary.path)]);
  const regionBytes = regionSizeOf(options, pState, sState);
  checkSizes(pState, sState, regionBytes);
  if (primary.where === secondary.where && pState.path === sState.path) {
    throw new TidemarkError('USAGE', `the primary and the secondary are the same volume (${pState.path})`, 'choose two different volumes');
  }
  const busy = sState.members[0];
  if (busy) {
    throw new TidemarkError(
      'ALREADY_EXISTS',
      `the secondary ${secondary.volref} is already the ${busy.role} of pair "${busy.name}"`,
      'a secondary belongs to one pair and nothing else: choose another volume, or delete that pair first',
    );
  }
  const [pRecord, sRecord] = await Promise.all([
    primary.agent.volumeAdopt(primary.path, regionBytes),
    secondary.agent.volumeAdopt(secondary.path, regionBytes),
  ]);
  const record = await store.create({
    name: options.name,
    mode: options.mode ?? 'continuous',
    regionBytes,
    hash: options.hash ?? hashAlgorithmDefault,
    predictRegions: options.predictRegions ?? moosPredictDefault,
    intervalMs: options.intervalMs ?? 60_000,
    primary: { volref: primary.volref, volumeId: pRecord.volumeId },
    secondary: { volref: secondary.volref, volumeId: sRecord.volumeId },
  });
  const regionCount = Math.ceil(pState.sizeBytes / regionBytes);
  const member = (role: PairMember['role'], peer: VolumeEndpoint, peerVolumeId: string): PairMember => ({
    pairId: record.pairId,
    name: record.name,
    role,
    generation: record.generation,
    regionBytes,
    regionCount,
    hash: record.hash,
    peer: { volref: peer.volref, volumeId: peerVolumeId },
    createdAt: record.createdAt,
    seed: null,
    lcsSnapshotId: null,
    ...(role === 'primary' ? { predictRegions: record.predictRegions } : {}),
  });
  try {
    await secondary.agent.pairJoin(secondary.path, member('secondary', primary, pRecord.volumeId));
    await primary.agent.pairJoin(primary.path, member('primary', secondary, sRecord.volumeId));
  } catch (error) {
    await secondary.agent.pairLeave(secondary.path, record.pairId).catch(() => undefined);
    await primary.agent.pairLeave(primary.path, record.pairId).catch(() => undefined);
    await store.delete(record.name).catch(() => undefined);
    throw error;
  }
  return record;
}

export interface PairDeleteResult {
  /** Sides that could not be reached with --force: what to run there. */
  readonly leftBehind: readonly string[];
}

/**
 * Deletes a pair (not one in a consistency group): the primary leaves (its sync maps and snapshots go), the secondary leaves
 * (unlocked, its last consistent snapshot goes, its bytes untouched), the record goes. An
 * unreachable side fails it, named; with `force` the rest goes on and the side is reported.
 */
export async function deletePair(store: PairStore, resolver: EndpointResolver, name: string, options: { force?: boolean } = {}): Promise<PairDeleteResult> {
  const record = await store.require(name);
  const lock = await acquirePairLock(store.pairDir(name), name, 'delete');
  try {
    // Under the lock: a group create takes it too. A group naming a deleted pair could neither cycle nor fail over.
    const group = await groupOf(store, record);
    if (group) {
      throw new TidemarkError(
        'USAGE',
        `pair "${name}" is in consistency group "${group.name}"`,
        `delete the group first (\`tidemark group delete ${group.name}\`): its pairs stay`,
      );
    }
    const leftBehind: string[] = [];
    for (const side of ['primary', 'secondary'] as const) {
      const volref = record[side].volref;
      try {
        const endpoint = await resolver.resolve(volref);
        await (side === 'primary' ? leavePrimary(endpoint, record) : leaveSecondary(endpoint, record));
      } catch (error) {
        if (!options.force || !isTidemarkError(error)) {
          throw new TidemarkError(
            isTidemarkError(error) ? error.code : 'IO',
            `cannot delete pair "${name}": its ${side} ${volref} did not leave: ${error instanceof Error ? error.message : String(error)}`,
            'fix that and run the delete again, or add --force to delete the pair here anyway',
            { cause: error },
          );
        }
        leftBehind.push(`${side} ${volref}: ${error.message}`);
      }
    }
    await store.delete(name);
    return { leftBehind };
  } finally {
    await lock.release();
  }
}

async function isMember(endpoint: VolumeEndpoint, pairId: string): Promise<boolean> {
  const state = await endpoint.agent.volumeState(endpoint.path);
  return state.members.some((m) => m.pairId === pairId);
}

async function leavePrimary(endpoint: VolumeEndpoint, record: PairRecord): Promise<void> {
  const { agent, path } = endpoint;
  if (!(await isMember(endpoint, record.pairId))) return;
  const maps = await agent.bitmapList(path);
  for (const name of [sinceMapName(record.pairId), swapMapName(record.pairId)]) if (maps.some((m) => m.name === name)) await agent.bitmapDelete(path, name);
  const prefix = syncSnapshotPrefix(record.pairId);
  for (const s of (await agent.snapshotList(path)).snapshots) if (s.label.startsWith(prefix)) await agent.snapshotDelete(path, s.snapshotId);
  await agent.pairLeave(path, record.pairId);
}

async function leaveSecondary(endpoint: VolumeEndpoint, record: PairRecord): Promise<void> {
  const { agent, path } = endpoint;
  if (!(await isMember(endpoint, record.pairId))) return;
  await agent.pairLeave(path, record.pairId); // unlocked first: the LCS is only metadata
  const prefix = lcsSnapshotLabel(record.pairId, '');
  for (const s of (await agent.snapshotList(path)).snapshots) if (s.label.startsWith(prefix)) await agent.snapshotDelete(path, s.snapshotId);
}

export interface PairSideStatus {
  readonly volref: string;
  readonly reachable: boolean;
  readonly error: string | null;
  readonly member: PairMember | null;
  readonly sizeBytes: number | null;
  readonly realizedRegions: number | null;
  /** An unfinished image import on this volume (sync refuses the pair until it is finished); null when none or unreachable. */
  readonly importing: ImportMarker | null;
}

export interface PairStatus {
  readonly record: PairRecord;
  readonly regions: number;
  readonly primary: PairSideStatus;
  readonly secondary: PairSideStatus;
  /**
   * Regions the secondary may lack (null: unknown): on a tracked primary the unshipped ones
   * (OOS ∪ in flight), else those written since the secondary's point in time.
   */
  readonly pendingRegions: number | null;
  /** The primary's write tracking (continuous replication), when its agent tracks the pair. */
  readonly tracking: TrackingState | null;
  readonly syncInProgress: SyncCursor | null;
  /** Who holds the pair's lock right now, if anyone. */
  readonly busyWith: PairLockHolder | null;
  readonly state: 'new' | 'syncing' | 'replicating' | 'interrupted' | 'in-sync' | 'behind' | 'unknown';
  /** How shipped regions travel (direct: the primary's host to the secondary's over the pair's key); null while the primary is unreachable. */
  readonly shipPath: ShipPath | null;
  /** The direct link as the primary's agent sees it (null: no key there, or unreachable). */
  readonly peer: PeerStatus | null;
  /**
   * What the members' role histories say (docs/failover.md "Generations and history"): in step,
   * one side behind, split brain, no primary, or unknown (a side unreachable).
   */
  readonly roles: Reconciliation;
  /** A periodic pair's last applied cycles (oldest first, at most 10; the whole history in `cycles.json`). */
  readonly cycles: readonly CycleEntry[];
  /** A migrate that died in its pause (both sides may be secondaries): `tidemark migrate NAME` finishes it. */
  readonly migrateInterrupted: { readonly startedAt: string; readonly oldPrimary: string; readonly newPrimary: string } | null;
}

async function sideStatus(resolver: EndpointResolver, volref: string, pairId: string): Promise<{ status: PairSideStatus; endpoint?: VolumeEndpoint }> {
  try {
    const endpoint = await resolver.resolve(volref);
    const [state, info]: [VolumeState, VolumeInfo] = await Promise.all([endpoint.agent.volumeState(endpoint.path), endpoint.agent.volumeInfo(endpoint.path)]);
    const member = state.members.find((m) => m.pairId === pairId) ?? null;
    return {
      status: { volref, reachable: true, error: null, member, sizeBytes: info.sizeBytes, realizedRegions: info.realizedRegions, importing: state.importing },
      endpoint,
    };
  } catch (error) {
    const message = isTidemarkError(error) ? error.oneLine() : error instanceof Error ? error.message : String(error);
    return { status: { volref, reachable: false, error: message, member: null, sizeBytes: null, realizedRegions: null, importing: null } };
  }
}

export async function pairStatus(store: PairStore, resolver: EndpointResolver, name: string): Promise<PairStatus> {
  const record = await store.require(name);
  const [p, s] = await Promise.all([sideStatus(resolver, record.primary.volref, record.pairId), sideStatus(resolver, record.secondary.volref, record.pairId)]);
  const { pendingRegions, tracking } = await pendingOf(store, record, p);
  const cursor = (await new CursorStore(store.pairDir(name)).read()) ?? null;
  const regions = p.status.member?.regionCount ?? s.status.member?.regionCount ?? 0;
  const busyWith = await pairLockHolder(store.pairDir(name));
  const state: PairStatus['state'] = busyWith
    ? busyWith.what === 'replicate'
      ? 'replicating'
      : 'syncing'
    : cursor
      ? 'interrupted'
      : !record.lastSync
        ? 'new'
        : pendingRegions === null
          ? 'unknown'
          : pendingRegions === 0
            ? 'in-sync'
            : 'behind';
  const peer = p.endpoint?.sshTarget ? await p.endpoint.agent.peerStatus(record.pairId).catch(() => null) : null;
  const shipPath: ShipPath | null = !p.endpoint ? null : !p.endpoint.sshTarget ? 'local' : peer?.configured ? 'direct' : 'relayed';
  const roles = await rolesOf(record, p, s);
  const cycles = (await readCycleHistory(store.pairDir(name))).slice(-10);
  const journal = await readMigrateJournal(store.pairDir(name));
  const migrateInterrupted = journal ? { startedAt: journal.startedAt, oldPrimary: journal.oldPrimary, newPrimary: journal.newPrimary } : null;
  return {
    record,
    regions,
    primary: p.status,
    secondary: s.status,
    pendingRegions,
    tracking,
    syncInProgress: cursor,
    busyWith,
    state: migrateInterrupted && !busyWith ? 'interrupted' : state,
    shipPath,
    peer,
    migrateInterrupted,
    roles,
    cycles,
  };
}

type SideOf = Awaited<ReturnType<typeof sideStatus>>;

/** The members' histories compared; with two primaries, each one's last write decides behind vs split brain. */
async function rolesOf(record: PairRecord, p: SideOf, s: SideOf): Promise<Reconciliation> {
  const view = async (side: SideOf): Promise<MemberView> => {
    const member = side.status.member;
    const both = p.status.member?.role === 'primary' && s.status.member?.role === 'primary';
    const agent = side.endpoint?.agent;
    if (!both || !agent) return { volref: side.status.volref, member };
    const last = await agent.trackingState(side.endpoint!.path, record.pairId).then(
      (t) => t.lastWriteAtMs,
      () => null,
    );
    const clock = last === null ? null : await clockOffsetOf(agent).catch(() => null);
    return {
      volref: side.status.volref,
      member,
      lastWriteAtMs: last === null ? null : Math.round(toLocalMs(last, clock)),
      lastWriteUncertaintyMs: clock?.uncertaintyMs ?? 0,
    };
  };
  // As failback decides: against the failover's own instant when this record has one.
  return reconcileMembers(await view(p), await view(s), { decidedAtMs: record.failover?.atMs ?? null });
}

/** What the secondary may lack: the primary's unshipped regions when it tracks the pair, else its `since` map. */
async function pendingOf(
  store: PairStore,
  record: PairRecord,
  p: { status: PairSideStatus; endpoint?: VolumeEndpoint },
): Promise<{ pendingRegions: number | null; tracking: TrackingState | null }> {
  if (!p.endpoint || p.status.member?.role !== 'primary') return { pendingRegions: null, tracking: null };
  const { agent, path } = p.endpoint;
  const tracking = await agent.trackingState(path, record.pairId).catch(() => null);
  // A periodic pair's secondary lags by its change maps (since ∪ a cycle in progress), not by OOS.
  if (record.mode === 'periodic') return { pendingRegions: await periodicPending(store, record, p.endpoint), tracking };
  if (tracking) return { pendingRegions: tracking.oosRegions + tracking.inFlightRegions, tracking };
  const since = (await agent.bitmapList(path)).find((m) => m.name === sinceMapName(record.pairId));
  return { pendingRegions: since ? since.setCount : null, tracking: null };
}
