// Failover and failback of a consistency group (docs/failover.md "Consistency groups").
//
// A group's secondaries hold one instant of all its primaries only if they are promoted at
// the same group cycle. A group cycle ships and seals every member before it applies any
// (groups.ts, shipAndApply): the first apply is its commit point. So a failover finds either
// no member applied the cycle in progress — every secondary is still at the last cycle, and
// the promotions drop the seals — or at least one did, and then every other member has the
// cycle sealed: it is applied from the seal (the primaries, and their change maps, may be
// gone) before any member is promoted. A failover resumed after a crash decides again from
// the members not yet promoted, and decides the same: every promotion comes after every
// roll-forward, so those members have all applied the cycle, or none of them has.
//
// failback: each member fails back as a pair (its copy a cycle of its own), then one group
// cycle brings every secondary to one instant again.

import { TidemarkError } from '../errors';
import type { EndpointResolver, VolumeEndpoint } from './endpoints';
import { failbackPair, failoverPairLocked, reach, type FailbackOptions, type FailbackSummary, type FailoverSummary } from './failover';
import { GroupStore, type GroupCycleSummary, type GroupRecord } from './groups';
import { runGroupCycleOnce } from './group-replicate';
import type { PairRecord, PairStore } from './pair-store';
import { acquirePairLock, type PairLock } from './sync/lock';

export interface GroupFailoverSummary {
  readonly group: string;
  /** Members whose secondary was rolled forward to the group's cycle in progress from its seal, before any promotion. */
  readonly rolledForward: readonly { readonly pair: string; readonly cycle: number }[];
  /** The group's cycle in progress was left: every secondary stays at the last cycle the group finished. */
  readonly abandonedCycle: boolean;
  readonly members: readonly FailoverSummary[];
  readonly durationMs: number;
}

export interface GroupFailbackSummary {
  readonly group: string;
  readonly members: readonly FailbackSummary[];
  /** The group cycle run after the members' failbacks (null for a dry run). */
  readonly cycle: GroupCycleSummary | null;
  /** Totals over the members (the CLI contract's failback figures): their regions, their resync maps, and what the failbacks and the closing cycle copied. */
  readonly regions: number;
  readonly resyncRegions: number;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly durationMs: number;
}

/** Where a member's secondary stands in the group's cycle in progress. */
interface MemberState {
  readonly record: PairRecord;
  /** The member's cycle number in the group's cycle in progress. */
  readonly cycle: number;
  /** Null once the member was promoted (a failover resumed after a crash). */
  readonly secondary: { readonly endpoint: VolumeEndpoint; readonly applied: number; readonly sealed: number | null; readonly generation: number } | null;
}

/** Promotes every secondary of the group, all at the same instant of the group (`tidemark failover GROUP [--force]`). Resumes one a crash interrupted. */
export async function failoverGroup(
  store: PairStore,
  resolver: EndpointResolver,
  groupName: string,
  options: { force?: boolean } = {},
): Promise<GroupFailoverSummary> {
  const startMs = performance.now();
  const groups = new GroupStore(store.homeDir);
  const group = await groups.require(groupName);
  const records = await Promise.all(group.pairs.map((name) => store.require(name)));
  const pending = records.filter((r) => !r.failover);
  if (pending.length === 0) {
    await groups.abandonCycle(group.name); // a failover that died after its last promotion
    throw new TidemarkError('USAGE', `group "${group.name}" already failed over`, `run \`tidemark failback ${group.name}\` once the old primaries are back`);
  }
  const locks: PairLock[] = [];
  try {
    for (const r of pending) locks.push(await acquirePairLock(store.pairDir(r.name), r.name, 'failover'));
    if (!options.force) await refuseUnforced(resolver, group, pending);
    const { rolledForward, abandoned } = await settleCycleInProgress(groups, group, resolver, records);
    // Settled: every secondary holds the instant it is promoted at, so the cycle goes before
    // the first promotion (its snapshots, on the old primaries, go at failback).
    await groups.abandonCycle(group.name);
    const members: FailoverSummary[] = [];
    for (const r of pending) members.push(await failoverPairLocked(store, resolver, r.name, { force: true, group: group.name }));
    return { group: group.name, rolledForward, abandonedCycle: abandoned, members, durationMs: Math.round(performance.now() - startMs) };
  } finally {
    for (const lock of locks) await lock.release();
  }
}

/** Without --force: refused, naming each primary and whether it answered (the pair refusal's terms, for the group). */
async function refuseUnforced(resolver: EndpointResolver, group: GroupRecord, pending: readonly PairRecord[]): Promise<never> {
  const seen = await Promise.all(pending.map(async (r) => ({ r, answer: await reach(resolver, r.primary.volref) })));
  const reachable = seen.filter((s) => 'endpoint' in s.answer).map((s) => `${s.r.name} (${s.r.primary.volref})`);
  const lost = seen.flatMap((s) => ('error' in s.answer ? [`${s.r.name}: ${s.answer.error.message}`] : []));
  const risk = "the group's cycle in progress and everything written since (each primary's current and next change maps)";
  if (reachable.length > 0) {
    throw new TidemarkError(
      'USAGE',
      `the primaries of ${reachable.join(', ')} in group "${group.name}" are reachable: a failover would demote them and copy over ${risk} at failback`,
      `to promote the group's secondaries anyway, add --force`,
    );
  }
  throw new TidemarkError(
    'USAGE',
    `the primaries of group "${group.name}" are unreachable (${lost.join('; ')}); promoting the secondaries puts at risk ${risk}`,
    'add --force to promote them, all at the same instant of the group: failback later copies the new primaries over those regions',
  );
}

/** The group's cycle in progress: when one member applied it, applied from its seal on every member that has not; else left. */
async function settleCycleInProgress(
  groups: GroupStore,
  group: GroupRecord,
  resolver: EndpointResolver,
  records: readonly PairRecord[],
): Promise<{ rolledForward: { pair: string; cycle: number }[]; abandoned: boolean }> {
  const cursor = await groups.cycleInProgress(group.name);
  if (!cursor) return { rolledForward: [], abandoned: false };
  const states = await Promise.all(
    cursor.members.map(async (m): Promise<MemberState> => {
      const record = records.find((r) => r.name === m.pair);
      if (!record)
        throw new TidemarkError('METADATA_CORRUPT', `group "${group.name}"'s cycle names pair "${m.pair}", not in the group`, 'see `tidemark group list`');
      return { record, cycle: m.cycle, secondary: record.failover ? null : await secondaryState(resolver, record) };
    }),
  );
  const committed = states.some((s) => s.secondary !== null && s.secondary.applied >= s.cycle);
  if (!committed) {
    checkAtPreviousCycle(group, states);
    return { rolledForward: [], abandoned: true };
  }
  checkSealed(group, states);
  const rolledForward: { pair: string; cycle: number }[] = [];
  for (const { record, cycle, secondary } of states) {
    if (!secondary || secondary.applied >= cycle) continue;
    const auth = { pairId: record.pairId, generation: secondary.generation };
    await secondary.endpoint.agent.stageApplySealed(secondary.endpoint.path, record.pairId, cycle, { auth });
    rolledForward.push({ pair: record.name, cycle });
  }
  return { rolledForward, abandoned: false };
}

/** Null when the secondary was promoted already and the record not yet updated (a failover whose answer was lost): its cycle is gone with the promotion. */
async function secondaryState(resolver: EndpointResolver, record: PairRecord): Promise<MemberState['secondary']> {
  const endpoint = await resolver.resolve(record.secondary.volref);
  const member = (await endpoint.agent.volumeState(endpoint.path)).members.find((m) => m.pairId === record.pairId);
  if (!member) throw new TidemarkError('NOT_FOUND', `${record.secondary.volref} is not a member of pair "${record.name}"`, 'see `tidemark pair show`');
  if (member.role === 'primary' && member.generation === record.generation + 1) return null;
  return { endpoint, applied: member.appliedCycle ?? 0, sealed: member.sealedCycle ?? null, generation: member.generation };
}

/** Nobody applied the cycle in progress: every member not yet promoted is at the cycle before it (a cursor of an older Tidemark may say otherwise). */
function checkAtPreviousCycle(group: GroupRecord, states: readonly MemberState[]): void {
  const off = states.filter((s) => s.secondary !== null && s.secondary.applied !== s.cycle - 1);
  if (off.length === 0) return;
  throw new TidemarkError(
    'INCOMPLETE',
    `group "${group.name}" cannot fail over at one instant: its cycle in progress expects every secondary at the cycle before it, but ${off
      .map((s) => `${s.record.name} holds cycle ${s.secondary!.applied} (expected ${s.cycle - 1})`)
      .join(', ')}`,
    `${promotedYet(states)}once the primaries answer, \`tidemark replicate ${group.name} --once\` finishes the cycle`,
  );
}

function promotedYet(states: readonly MemberState[]): string {
  const promoted = states.filter((s) => s.secondary === null).map((s) => s.record.name);
  return promoted.length === 0 ? 'nothing was promoted; ' : `${promoted.join(', ')} promoted already, the rest not; `;
}

/** Every member behind the group's cycle has it sealed (always so after a commit, unless a secondary was tampered with). */
function checkSealed(group: GroupRecord, states: readonly MemberState[]): void {
  const lacking = states.filter((s) => s.secondary !== null && s.secondary.applied < s.cycle && s.secondary.sealed !== s.cycle);
  if (lacking.length === 0) return;
  const applied = states.filter((s) => s.secondary !== null && s.secondary.applied >= s.cycle).map((s) => `${s.record.name} cycle ${s.cycle}`);
  throw new TidemarkError(
    'INCOMPLETE',
    `group "${group.name}" cannot fail over at one instant: ${applied.join(', ')} applied, while ${lacking
      .map((s) => `${s.record.name} holds cycle ${s.secondary!.applied} and has not sealed cycle ${s.cycle}`)
      .join(', ')}`,
    `${promotedYet(states)}once the primaries answer, \`tidemark replicate ${group.name} --once\` finishes the cycle`,
  );
}

/**
 * Fails back every failed-over member (each a pair failback: demote, copy failback ∪ unshipped
 * as a cycle of its own), then runs one group cycle so the secondaries hold one instant again.
 */
export async function failbackGroup(
  store: PairStore,
  resolver: EndpointResolver,
  groupName: string,
  options: Pick<FailbackOptions, 'dryRun' | 'signal'> & {
    readonly failbackMember?: (name: string) => Promise<FailbackSummary>;
    readonly limitRateBytesPerSecond?: number;
    /** The closing group cycle's retries (a dropped link, a lost hold), said as they happen. */
    readonly onWarning?: (message: string) => void;
  } = {},
): Promise<GroupFailbackSummary> {
  const startMs = performance.now();
  const groups = new GroupStore(store.homeDir);
  const group = await groups.require(groupName);
  const records = await Promise.all(group.pairs.map((name) => store.require(name)));
  const failed = records.filter((r) => r.failover);
  const owed = await groups.failbackOwed(group.name);
  if (failed.length === 0 && !owed) {
    throw new TidemarkError(
      'USAGE',
      `group "${group.name}" has not failed over`,
      `failback brings back old primaries after \`tidemark failover\`; \`tidemark replicate ${group.name} --once\` runs a group cycle`,
    );
  }
  // Recorded first: a failback stopped after its members (Ctrl-C, a dropped link) still owes the group cycle, and running it again finishes that.
  if (!options.dryRun && !owed) await groups.setFailbackOwed(group.name, true);
  const members: FailbackSummary[] = [];
  for (const r of failed) {
    members.push(
      options.failbackMember && !options.dryRun
        ? await options.failbackMember(r.name)
        : await failbackPair(store, resolver, r.name, { dryRun: options.dryRun, signal: options.signal }),
    );
  }
  const summary = (cycle: GroupCycleSummary | null): GroupFailbackSummary => ({
    group: group.name,
    members,
    cycle,
    regions: members.reduce((sum, m) => sum + m.regions, 0),
    resyncRegions: members.reduce((sum, m) => sum + m.resyncRegions, 0),
    regionsTransferred: members.reduce((sum, m) => sum + m.regionsTransferred, 0) + (cycle?.regionsTransferred ?? 0),
    bytesTransferred: members.reduce((sum, m) => sum + m.bytesTransferred, 0) + (cycle?.bytesTransferred ?? 0),
    durationMs: Math.round(performance.now() - startMs),
  });
  if (options.dryRun) return summary(null);
  const { signal, limitRateBytesPerSecond, onWarning } = options;
  return summary(await runGroupCycleOnce(store, resolver, group, { signal, limitRateBytesPerSecond, onWarning }));
}
