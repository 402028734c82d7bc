// Consistency groups (seed 004, docs/replication.md "Consistency groups"): periodic pairs
// whose cycles start at one instant — every member's primary snapshotted with each volume's
// writes held until all are held (one agent call when the primaries share a host, a two-phase
// hold with a lease across hosts) — and whose secondaries are all applied before the group's
// cycle ends (roll forward: a cycle interrupted after some applies finishes the others first).
// Records live in `<home>/groups/<name>.json`.

import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { AgentApi, SnapshotGroupItem, SnapshotInfo } from '../agent';
import { assert } from '../assert';
import { Bitset } from '../bitmap';
import { groupHoldLeaseMsDefault } from '../constants';
import { TidemarkError, errnoCode, isTidemarkError } from '../errors';
import { defineRecord, readRecord, writeRecord } from '../store';
import type { EndpointResolver, PairEndpoints } from './endpoints';
import { recordCycle } from './cycle-history';
import { checkPairMembers } from './members';
import {
  currentMapName,
  cycleCursorOf,
  cycleSnapshotLabel,
  ignoreNotFound,
  refreezesMax,
  removeRecord,
  ship,
  snapshotGone,
  type CycleProgress,
} from './periodic';
import { validatePairName, type PairRecord, type PairStore } from './pair-store';
import { sinceMapName } from './sync/names';
import { acquirePairLock, type PairLock } from './sync/lock';

const groupRecordKind = defineRecord(
  'tidemark/group',
  1,
  z.object({ name: z.string(), pairs: z.array(z.string()).min(2).max(64), createdAt: z.string() }).strict(),
);
export type GroupRecord = z.infer<typeof groupRecordKind.schema>;

const groupCycleKind = defineRecord(
  'tidemark/group-cycle',
  1,
  z
    .object({
      phase: z.enum(['freezing', 'shipping']),
      members: z.array(
        z
          .object({
            pair: z.string(),
            cycle: z.number().int().positive(),
            snapshotId: z.string().uuid().nullable(),
            pointInTime: z.string().nullable(),
            /** What the member's shipping sent, recorded with its seal: a resumed cycle reports it for a member it only applies. */
            regionsTransferred: z.number().int().nonnegative().optional(),
            bytesTransferred: z.number().int().nonnegative().optional(),
          })
          .strict(),
      ),
    })
    .strict(),
);
type GroupCycle = z.infer<typeof groupCycleKind.schema>;

/** `groups/NAME.failback.json`: a group failback owes its closing group cycle. */
const groupFailbackKind = defineRecord('tidemark/group-failback', 1, z.object({ startedAt: z.string() }).strict());

/** Files beside the group records in `groups/`: `NAME.cycle.json`, `NAME.failback.json`. */
const groupSideFileSuffixes = ['.cycle.json', '.failback.json'] as const;

export class GroupStore {
  constructor(private readonly homeDir: string) {}

  private get dir(): string {
    return join(this.homeDir, 'groups');
  }

  recordPath(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  cyclePath(name: string): string {
    return join(this.dir, `${name}.cycle.json`);
  }

  /** The group's cycle in progress (its members' cycles and snapshots), if any. */
  cycleInProgress(name: string): Promise<GroupCycle | undefined> {
    return readRecord(this.cyclePath(name), groupCycleKind);
  }

  private failbackPath(name: string): string {
    return join(this.dir, `${name}.failback.json`);
  }

  /** A group failback started and its closing group cycle not yet finished (failbackGroup resumes it). */
  async failbackOwed(name: string): Promise<boolean> {
    return (await readRecord(this.failbackPath(name), groupFailbackKind)) !== undefined;
  }

  async setFailbackOwed(name: string, owed: boolean): Promise<void> {
    if (owed) await writeRecord(this.failbackPath(name), groupFailbackKind, { startedAt: new Date().toISOString() });
    else await removeRecord(this.failbackPath(name));
  }

  /** After a group failover: the cycle in progress is abandoned (its snapshots, on the old primaries, go at failback). */
  async abandonCycle(name: string): Promise<void> {
    await removeRecord(this.cyclePath(name));
  }

  async create(name: string, pairs: readonly string[], store: PairStore): Promise<GroupRecord> {
    validatePairName(name);
    const clash = groupSideFileSuffixes.find((suffix) => `${name}.json`.endsWith(suffix));
    if (clash)
      throw new TidemarkError(
        'USAGE',
        `a group name may not end in "${clash.slice(0, -'.json'.length)}" ("${name}"): its records would clash`,
        'choose another name',
      );
    if (await store.get(name)) throw new TidemarkError('ALREADY_EXISTS', `"${name}" already names a pair`, 'give the group another name');
    if (await this.get(name)) throw new TidemarkError('ALREADY_EXISTS', `group "${name}" already exists`, 'delete it first, or choose another name');
    if (new Set(pairs).size !== pairs.length || pairs.length < 2)
      throw new TidemarkError('USAGE', 'a consistency group needs two or more different pairs', 'name each pair once');
    return withPairLocks(store, pairs, 'group create', () => this.createLocked(name, pairs, store));
  }

  /** Every member's lock is held: nothing replicates, syncs or fails over any of them meanwhile. */
  private async createLocked(name: string, pairs: readonly string[], store: PairStore): Promise<GroupRecord> {
    if (await this.get(name)) throw new TidemarkError('ALREADY_EXISTS', `group "${name}" already exists`, 'delete it first, or choose another name');
    for (const pairName of pairs) {
      const pair = await store.require(pairName);
      const cursor = await cycleCursorOf(store, pair);
      if (cursor)
        throw new TidemarkError(
          'BUSY',
          `pair "${pairName}" has cycle ${cursor.cycle} unfinished`,
          `finish it with \`tidemark replicate ${pairName} --once\`, then group it`,
        );
      if (pair.mode !== 'periodic')
        throw new TidemarkError('USAGE', `pair "${pairName}" is ${pair.mode}: a consistency group cycles periodic pairs`, `create it with --mode periodic`);
      if (pair.failover) {
        throw new TidemarkError(
          'USAGE',
          `pair "${pairName}" is failed over`,
          `fail it back first (\`tidemark failback ${pairName}\`): a group's secondaries hold one instant`,
        );
      }
      const other = (await this.list()).find((g) => g.pairs.includes(pairName));
      if (other) throw new TidemarkError('ALREADY_EXISTS', `pair "${pairName}" is already in group "${other.name}"`, 'a pair belongs to one group');
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const record: GroupRecord = { name, pairs: [...pairs], createdAt: new Date().toISOString() };
    await writeRecord(this.recordPath(name), groupRecordKind, record);
    return record;
  }

  get(name: string): Promise<GroupRecord | undefined> {
    return readRecord(this.recordPath(name), groupRecordKind);
  }

  async require(name: string): Promise<GroupRecord> {
    const group = await this.get(name);
    if (!group) throw new TidemarkError('NOT_FOUND', `no pair or group named "${name}"`, 'see `tidemark pair list` and `tidemark group list`');
    return group;
  }

  /**
   * Every group record that can be read, and an error for each that cannot (the console's list:
   * one damaged file must not hide the others). Decisions use list(), which fails closed.
   */
  async listReadable(): Promise<{ groups: GroupRecord[]; damaged: TidemarkError[] }> {
    const groups: GroupRecord[] = [];
    const damaged: TidemarkError[] = [];
    for (const file of await this.recordFiles()) {
      try {
        const group = await readRecord(join(this.dir, file), groupRecordKind);
        if (group) groups.push(group);
      } catch (error) {
        damaged.push(
          isTidemarkError(error) ? error : new TidemarkError('IO', `cannot read ${join(this.dir, file)}: ${(error as Error).message}`, 'see the log'),
        );
      }
    }
    return { groups: groups.sort((a, b) => a.name.localeCompare(b.name)), damaged };
  }

  private async recordFiles(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((n) => n.endsWith('.json') && !groupSideFileSuffixes.some((suffix) => n.endsWith(suffix)));
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return [];
      throw error;
    }
  }

  async list(): Promise<GroupRecord[]> {
    const groups: GroupRecord[] = [];
    for (const file of await this.recordFiles()) {
      const group = await readRecord(join(this.dir, file), groupRecordKind);
      if (group) groups.push(group);
    }
    return groups.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Forgets the group (its pairs stay), every member's lock held: not while anything replicates it. */
  async delete(name: string, store: PairStore): Promise<void> {
    const group = await this.require(name);
    // A member that no longer exists is locked too: the lock is only a name.
    await withPairLocks(store, group.pairs, 'group delete', () => this.deleteLocked(group));
  }

  private async deleteLocked(group: GroupRecord): Promise<void> {
    const { name } = group;
    const now = await this.require(name);
    if (now.createdAt !== group.createdAt) throw new TidemarkError('BUSY', `group "${name}" was made anew meanwhile`, 'look at it again, then delete it');
    if (await readRecord(this.cyclePath(name), groupCycleKind)) {
      throw new TidemarkError('BUSY', `group "${name}" has a cycle in progress`, `finish it with \`tidemark replicate ${name} --once\`, then delete the group`);
    }
    await rm(this.recordPath(name), { force: true });
    await this.setFailbackOwed(name, false); // a group cycle a failback owed goes with the group
  }
}

/** Why a group with a failed-over member does not cycle, and what brings it back. */
export function failedOverMember(group: string, pair: string): TidemarkError {
  return new TidemarkError(
    'USAGE',
    `pair "${pair}" of group "${group}" has failed over: the group cycles again once every pair is failed back`,
    `run \`tidemark failback ${group}\` (it fails back every pair, then runs the group's cycle)`,
  );
}

/** Runs `work` holding every named pair's lock (released in any case); a lock held elsewhere fails it at once with BUSY — nothing waits. */
export async function withPairLocks<T>(store: PairStore, pairs: readonly string[], what: string, work: () => Promise<T>): Promise<T> {
  const locks: PairLock[] = [];
  try {
    for (const name of [...pairs].sort()) locks.push(await acquirePairLock(store.pairDir(name), name, what));
    return await work();
  } finally {
    for (const lock of locks) await lock.release();
  }
}

/** The group whose unfinished cycle names this pair, if any. */
export async function groupCycleOf(store: PairStore, pairName: string): Promise<string | undefined> {
  const groups = new GroupStore(store.homeDir);
  for (const group of await groups.list()) {
    if (group.pairs.includes(pairName) && (await readRecord(groups.cyclePath(group.name), groupCycleKind))) return group.name;
  }
  return undefined;
}

/**
 * A periodic pair with a cycle unfinished (its own or its group's) refuses a sync: the cycle
 * would later apply its older snapshot over the synced secondary, and a sync over `since`
 * alone would skip the regions in `current`.
 */
export async function checkNoCycleInProgress(store: PairStore, pair: PairRecord): Promise<void> {
  if (pair.mode !== 'periodic') return;
  const cursor = await cycleCursorOf(store, pair);
  const group = cursor ? undefined : await groupCycleOf(store, pair.name);
  if (cursor || group) {
    const what = cursor ? `cycle ${cursor.cycle} (${cursor.phase})` : `a cycle of group "${group}"`;
    throw new TidemarkError(
      'BUSY',
      `pair "${pair.name}" has ${what} unfinished`,
      `finish it with \`tidemark replicate ${group ?? pair.name} --once\`, then sync`,
    );
  }
}

/**
 * The group a pair belongs to, if any. Groups hold periodic pairs only (GroupStore.create), so a
 * continuous pair never reads the group records — a damaged one cannot stand in its way.
 */
export async function groupOf(store: PairStore, pair: PairRecord): Promise<GroupRecord | undefined> {
  if (pair.mode !== 'periodic') return undefined;
  return (await new GroupStore(store.homeDir).list()).find((g) => g.pairs.includes(pair.name));
}

/** A pair in a group cycles with its group only (a cycle of its own would break the group's instant). */
export async function checkNotGrouped(store: PairStore, pair: PairRecord): Promise<void> {
  const group = await groupOf(store, pair);
  if (group) {
    throw new TidemarkError(
      'USAGE',
      `pair "${pair.name}" is in consistency group "${group.name}": it cycles with its group`,
      `run \`tidemark replicate ${group.name}\`, or delete the group first`,
    );
  }
}

export interface GroupCycleOptions {
  readonly store: PairStore;
  readonly groups: GroupStore;
  readonly group: GroupRecord;
  readonly resolver: EndpointResolver;
  readonly signal?: AbortSignal;
  readonly limitRateBytesPerSecond?: number;
  readonly onProgress?: (progress: CycleProgress) => void;
  /** How long a freeze across hosts may hold the primaries' writes (default groupHoldLeaseMsDefault). */
  readonly holdLeaseMs?: number;
}

export interface GroupCycleSummary {
  readonly group: string;
  readonly pointInTime: string;
  readonly members: readonly { pair: string; cycle: number; regionsTransferred: number; bytesTransferred: number }[];
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly resumed: boolean;
  readonly durationMs: number;
}

interface Member {
  readonly pair: PairRecord;
  readonly endpoints: PairEndpoints;
  readonly applied: number;
  /** The cycle the member's secondary has sealed and not applied, if any. */
  readonly sealed: number | null;
  readonly auth: { pairId: string; generation: number };
}

/** Runs (or resumes) one cycle of a consistency group. Hold every member pair's lock. */
export async function runGroupCycle(options: GroupCycleOptions): Promise<GroupCycleSummary> {
  const startMs = performance.now();
  let members = await membersOf(options);
  const cyclePath = options.groups.cyclePath(options.group.name);
  let cursor = await readRecord(cyclePath, groupCycleKind);
  if (cursor && cursor.members.map((m) => m.pair).join('\n') !== options.group.pairs.join('\n')) {
    throw new TidemarkError(
      'METADATA_CORRUPT',
      `the unfinished cycle of group ${options.group.name} (${cyclePath}) names pairs ${cursor.members.map((m) => m.pair).join(', ')}, not the group's ${options.group.pairs.join(', ')}`,
      'it was left by a group of that name deleted meanwhile: remove the file, then replicate the group',
    );
  }
  const resumed = cursor !== undefined;
  if (cursor?.phase === 'freezing') cursor = await recoverFreeze(members, cursor, cyclePath);
  cursor ??= await freeze(options, members, cyclePath);
  let results: GroupCycleSummary['members'][number][];
  for (let refreezes = 0; ; refreezes++) {
    const shipped = await shipAndApply(options, members, cursor, refreezes < refreezesMax);
    if (shipped !== 'snapshot gone') {
      results = shipped;
      break;
    }
    // A member's snapshot was deleted under the cycle: the group freezes again, every member
    // at one new instant. Nothing is lost (runCycle argues it for one pair; here too every
    // member's `current` is cleared only after the whole group applied, and the rotation is a
    // union): shipping happens only before the commit point (shipAndApply), so no member has
    // applied cycle k and every member goes from S_{k-1} to the new instant as cycle k again
    // (its seal, if any, replaced: staging over it unseals). The old cycle's other snapshots
    // are deleted first, before the new freeze's cursor: a leftover snapshot labelled with the
    // cycle a member freezes again would be taken for the new instant by a recovery. A crash
    // in between leaves the old cursor, whose missing snapshot freezes again.
    for (const [i, state] of cursor.members.entries()) {
      const p = members[i]!.endpoints.primary;
      if (state.snapshotId) await p.agent.snapshotDelete(p.path, state.snapshotId).catch(ignoreNotFound);
    }
    members = await membersOf(options); // what each secondary applied now
    cursor = await freeze(options, members, cyclePath);
  }
  // Every secondary holds the group's instant now: clean up behind the cycle.
  for (const [i, member] of members.entries()) {
    const p = member.endpoints.primary;
    await p.agent.bitmapClear(p.path, currentMapName(member.pair.pairId));
    await p.agent.snapshotDelete(p.path, cursor.members[i]!.snapshotId!).catch(ignoreNotFound);
  }
  const pointInTime = cursor.members[0]!.pointInTime ?? new Date().toISOString();
  const durationMs = Math.round(performance.now() - startMs);
  for (const r of results) {
    const { regionsTransferred, bytesTransferred, cycle } = r;
    await recordCycle(options.store.pairDir(r.pair), { cycle, pointInTime, regionsTransferred, bytesTransferred, durationMs, group: options.group.name });
  }
  await removeRecord(cyclePath);
  return {
    group: options.group.name,
    pointInTime: cursor.members[0]!.pointInTime ?? new Date().toISOString(),
    members: results,
    regionsTransferred: results.reduce((sum, r) => sum + r.regionsTransferred, 0),
    bytesTransferred: results.reduce((sum, r) => sum + r.bytesTransferred, 0),
    resumed,
    durationMs: Math.round(performance.now() - startMs),
  };
}

/**
 * Ships and applies every member not yet applied, in two phases: every such member ships its
 * cycle and seals it (the prepared vote), then each applies from its seal. The first apply is
 * the group's commit point: from then on every member's seal is durable, so a failover rolls
 * every member forward to the cycle (failoverGroup) and a resumed cycle only applies — it never
 * stages again over a seal it may need. Before it, nothing is applied: a failover leaves every
 * member at the previous cycle. 'snapshot gone' when a member's shipping failed NOT_FOUND
 * because its snapshot was deleted (and `mayRefreeze`).
 */
async function shipAndApply(
  options: GroupCycleOptions,
  members: readonly Member[],
  cursor: GroupCycle,
  mayRefreeze: boolean,
): Promise<GroupCycleSummary['members'][number][] | 'snapshot gone'> {
  const results: GroupCycleSummary['members'][number][] = [];
  const committed = members.some((m, i) => m.applied >= cursor.members[i]!.cycle);
  let recorded = cursor;
  for (const [i, member] of members.entries()) {
    const state = recorded.members[i]!;
    let regionsTransferred = state.regionsTransferred ?? 0;
    let bytesTransferred = state.bytesTransferred ?? 0;
    if (member.applied < state.cycle && !(committed && member.sealed === state.cycle)) {
      const p = member.endpoints.primary;
      const cycleOptions = {
        store: options.store,
        pair: member.pair,
        endpoints: member.endpoints,
        signal: options.signal,
        limitRateBytesPerSecond: options.limitRateBytesPerSecond,
        onProgress: options.onProgress,
      };
      const regions = await cycleRegionsOf(member);
      let bytes: number;
      try {
        bytes = await ship(cycleOptions, state.cycle, state.snapshotId!, regions, member.auth);
      } catch (error) {
        if (mayRefreeze && !committed && (await snapshotGone(p, state.snapshotId!, error))) return 'snapshot gone';
        throw error;
      }
      const s = member.endpoints.secondary;
      await s.agent.stageSeal(s.path, member.pair.pairId, state.cycle, regions, { auth: member.auth });
      [regionsTransferred, bytesTransferred] = [regions.length, bytes];
      recorded = { ...recorded, members: recorded.members.map((m, k) => (k === i ? { ...m, regionsTransferred, bytesTransferred } : m)) };
      await writeRecord(options.groups.cyclePath(options.group.name), groupCycleKind, recorded);
    }
    results.push({ pair: member.pair.name, cycle: state.cycle, regionsTransferred, bytesTransferred });
  }
  for (const [i, member] of members.entries()) {
    const cycle = recorded.members[i]!.cycle;
    const s = member.endpoints.secondary;
    if (member.applied >= cycle) continue;
    const regionsTotal = results[i]!.regionsTransferred;
    options.onProgress?.({
      pair: member.pair.name,
      cycle,
      phase: 'applying',
      regionsDone: regionsTotal,
      regionsTotal,
      bytesTransferred: results[i]!.bytesTransferred,
    });
    await s.agent.stageApplySealed(s.path, member.pair.pairId, cycle, { auth: member.auth });
  }
  return results;
}

/** The regions of a member's cycle: its primary's current map, within the pair's regions. */
async function cycleRegionsOf(member: Member): Promise<number[]> {
  const p = member.endpoints.primary;
  const map = await p.agent.bitmapRead(p.path, currentMapName(member.pair.pairId));
  const regionCount = (await p.agent.volumeState(p.path)).members.find((x) => x.pairId === member.pair.pairId)?.regionCount ?? map.regionCount;
  return [...new Bitset(map.regionCount, map.words).indexes()].filter((r) => r < regionCount);
}

async function membersOf(options: GroupCycleOptions): Promise<Member[]> {
  const members: Member[] = [];
  for (const name of options.group.pairs) {
    const pair = await options.store.require(name);
    // Its secondary is the old primary, demoted or unreachable: a cycle would ship the current map only, not what failback must copy.
    if (pair.failover) throw failedOverMember(options.group.name, name);
    const [primary, secondary] = await Promise.all([options.resolver.resolve(pair.primary.volref), options.resolver.resolve(pair.secondary.volref)]);
    const endpoints = { primary, secondary };
    const checked = await checkPairMembers(pair, endpoints, 'replicating the group');
    members.push({
      pair,
      endpoints,
      applied: checked.secondary.appliedCycle ?? 0,
      sealed: checked.secondary.sealedCycle ?? null,
      auth: { pairId: pair.pairId, generation: checked.secondary.generation },
    });
  }
  return members;
}

/** One instant for every member: the group snapshot rotates each member's maps as it is taken. */
async function freeze(options: GroupCycleOptions, members: readonly Member[], cyclePath: string): Promise<GroupCycle> {
  for (const m of members) {
    const p = m.endpoints.primary;
    const maps = await p.agent.bitmapList(p.path);
    if (!maps.some((x) => x.name === sinceMapName(m.pair.pairId))) {
      throw new TidemarkError('INCOMPLETE', `pair "${m.pair.name}" has not been synced`, `run \`tidemark sync ${m.pair.name}\` first`);
    }
    if (!maps.some((x) => x.name === currentMapName(m.pair.pairId))) await p.agent.bitmapCreate(p.path, currentMapName(m.pair.pairId));
  }
  const freezing: GroupCycle = {
    phase: 'freezing',
    members: members.map((m) => ({ pair: m.pair.name, cycle: m.applied + 1, snapshotId: null, pointInTime: null })),
  };
  await mkdir(join(cyclePath, '..'), { recursive: true, mode: 0o700 });
  await writeRecord(cyclePath, groupCycleKind, freezing);
  const first = freezing.members[0]!;
  options.onProgress?.({ pair: first.pair, cycle: first.cycle, phase: 'freezing', regionsDone: 0, regionsTotal: 0, bytesTransferred: 0 });
  const snapshots = await snapshotAtOneInstant(members, options.holdLeaseMs ?? groupHoldLeaseMsDefault);
  const shipping: GroupCycle = {
    phase: 'shipping',
    members: freezing.members.map((m, i) => ({ ...m, snapshotId: snapshots[i]!.snapshotId, pointInTime: new Date(snapshots[i]!.createdAtMs).toISOString() })),
  };
  await writeRecord(cyclePath, groupCycleKind, shipping);
  return shipping;
}

/** What member `m`'s primary snapshots at the group's instant: cycle k's label, `current` taking `since`. */
function groupItem(m: Member): SnapshotGroupItem {
  return {
    path: m.endpoints.primary.path,
    label: cycleSnapshotLabel(m.pair.pairId, m.applied + 1),
    rotateMaps: [currentMapName(m.pair.pairId), sinceMapName(m.pair.pairId)],
  };
}

/** The members' indexes grouped by their primary's agent (one per host), in first-seen order. */
function byPrimaryAgent(members: readonly Member[]): { agent: AgentApi; indexes: number[] }[] {
  const hosts = new Map<AgentApi, number[]>();
  members.forEach((m, i) => {
    const agent = m.endpoints.primary.agent;
    hosts.set(agent, [...(hosts.get(agent) ?? []), i]);
  });
  return [...hosts].map(([agent, indexes]) => ({ agent, indexes }));
}

/**
 * Every member's snapshot at one instant, in member order, each rotating its maps. One host:
 * its agent's snapshotCreateGroup. Several: a two-phase hold. Every host's agent first holds
 * its members' writes (prepare, in parallel); only once all are held does any take its
 * snapshots and release (commit, in parallel). Why that is one instant: every hold is placed
 * before any is released, so the holds intersect, and at any time in the intersection no
 * member is written; each snapshot is the volume as it is throughout its host's hold, so all
 * of them are the group as it is at that time. A write that depends on another member's write
 * was issued after that write's ack, which its host gave only after its release (or before
 * its hold) — so a dependent write is in the snapshots only if the write it depends on is.
 * Writes on the primaries wait from prepare to commit (about two round trips); a hold not
 * committed within `leaseMs` is released by its agent as an abort, and so is one whose
 * connection closes, so a lost orchestrator never stalls the applications for longer.
 */
async function snapshotAtOneInstant(members: readonly Member[], leaseMs: number): Promise<SnapshotInfo[]> {
  const hosts = byPrimaryAgent(members);
  if (hosts.length === 1) return hosts[0]!.agent.snapshotCreateGroup(members.map(groupItem));
  const holdIds = await prepareAll(members, hosts, leaseMs);
  const taken = await commitAll(members, hosts, holdIds);
  const snapshots: SnapshotInfo[] = [];
  hosts.forEach((host, h) => host.indexes.forEach((i, k) => (snapshots[i] = taken[h]![k]!)));
  assert(snapshots.length === members.length && members.every((_, i) => snapshots[i] !== undefined), 'every member has its snapshot');
  return snapshots;
}

/** Holds every host's members; if any host fails to, the others are released and its error thrown. */
async function prepareAll(members: readonly Member[], hosts: readonly { agent: AgentApi; indexes: number[] }[], leaseMs: number): Promise<string[]> {
  const prepared = await Promise.allSettled(
    hosts.map((host) =>
      host.agent.snapshotGroupPrepare(
        host.indexes.map((i) => groupItem(members[i]!)),
        { leaseMs },
      ),
    ),
  );
  const failed = prepared.find((r) => r.status === 'rejected');
  if (failed) {
    // An abort that fails (a dropped link) is released anyway: the lease runs out, the connection closed.
    const aborts = prepared.flatMap((r, h) => (r.status === 'fulfilled' ? [hosts[h]!.agent.snapshotGroupAbort(r.value.holdId).catch(() => undefined)] : []));
    await Promise.all(aborts);
    throw holdLost(failed.reason);
  }
  return prepared.map((r) => (r as PromiseFulfilledResult<{ holdId: string }>).value.holdId);
}

/**
 * Commits every host's hold. If any commit fails (its lease ran out, its link dropped) the
 * snapshots the others took are not the group's instant alone: they are deleted, and the error
 * thrown. The cursor still says 'freezing', so a crash before the deletes is undone by
 * recoverFreeze (not every member's snapshot exists: none counts).
 */
async function commitAll(
  members: readonly Member[],
  hosts: readonly { agent: AgentApi; indexes: number[] }[],
  holdIds: readonly string[],
): Promise<SnapshotInfo[][]> {
  const committed = await Promise.allSettled(hosts.map((host, h) => host.agent.snapshotGroupCommit(holdIds[h]!)));
  const failed = committed.find((r) => r.status === 'rejected');
  if (failed) {
    const deletes = committed.flatMap((r, h) =>
      r.status === 'fulfilled'
        ? r.value.map((snapshot, k) => {
            const p = members[hosts[h]!.indexes[k]!]!.endpoints.primary;
            return p.agent.snapshotDelete(p.path, snapshot.snapshotId).catch(() => undefined); // a leftover: recoverFreeze deletes it by label
          })
        : [],
    );
    await Promise.all(deletes);
    throw holdLost(failed.reason);
  }
  return committed.map((r) => (r as PromiseFulfilledResult<SnapshotInfo[]>).value);
}

/**
 * A group hold that ended before its commit — its lease ran out (`EXPIRED`), it was aborted
 * (`CANCELLED`), its agent no longer knows it (`NOT_FOUND`: restarted, or the commit went out on
 * a new connection) — took nothing: the cycle prepares a new one (withCycleRetries retries it).
 */
export class GroupHoldLost extends TidemarkError {}

function holdLost(error: unknown): unknown {
  if (!isTidemarkError(error) || !['EXPIRED', 'CANCELLED', 'NOT_FOUND'].includes(error.code)) return error;
  return new GroupHoldLost(error.code, error.message, error.hint, { cause: error });
}

/** Every member's snapshot exists: the group instant was taken. Otherwise none counts; the freeze starts over. */
async function recoverFreeze(members: readonly Member[], cursor: GroupCycle, cyclePath: string): Promise<GroupCycle | undefined> {
  const found = await Promise.all(
    members.map(async (m, i) => {
      const p = m.endpoints.primary;
      return (await p.agent.snapshotList(p.path)).snapshots.find((x) => x.label === cycleSnapshotLabel(m.pair.pairId, cursor.members[i]!.cycle));
    }),
  );
  if (found.every((x) => x !== undefined)) {
    const shipping: GroupCycle = {
      phase: 'shipping',
      members: cursor.members.map((m, i) => ({ ...m, snapshotId: found[i]!.snapshotId, pointInTime: new Date(found[i]!.createdAtMs).toISOString() })),
    };
    await writeRecord(cyclePath, groupCycleKind, shipping);
    return shipping;
  }
  for (const [i, snapshot] of found.entries()) {
    const p = members[i]!.endpoints.primary;
    if (snapshot) await p.agent.snapshotDelete(p.path, snapshot.snapshotId).catch(ignoreNotFound);
  }
  // The cursor stays until the freeze rewrites it: `current` may hold the regions a rotation moved.
  return undefined;
}
