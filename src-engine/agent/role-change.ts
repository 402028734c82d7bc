// Role changes on one agent (docs/failover.md): promoting a secondary to primary (failover,
// migrate) and demoting a primary to secondary (failback, migrate).
//
// Promotion keeps the volume consistent and every later write accounted for:
//  - a periodic secondary is exactly the primary at its last applied cycle already (an apply a
//    crash interrupted was finished by the redo when the volume opened; a staged, unapplied
//    cycle is never applied);
//  - a continuous secondary interrupted mid catch-up (regions copied out of write order) is
//    rolled back to its protective snapshot — the consistent image a failover must choose;
//  - the failback map is created before the lock is lifted, so it holds every region written
//    (or rolled back) on the new primary: easy failback copies exactly those back (seed 004).

import { Bitset } from '../bitmap';
import { TidemarkError } from '../errors';
import type { PairMember, RoleEvent } from './pair-members';
import type { RoleChangeResult } from './agent-api';
import { changeMapsOf, membersOf, snapshotsOf, trackersOf, type AgentVolume } from './agent-volume';

export { failbackMapName, unshippedMapName } from './map-names';
import { failbackMapName, unshippedMapName } from './map-names';

export async function changeRole(volume: AgentVolume, homeDir: string, pairId: string, event: RoleEvent): Promise<RoleChangeResult> {
  const members = membersOf(volume, homeDir);
  const member = members.require(pairId);
  if (member.role === event.role && member.generation === event.generation) return await alreadyDone(volume, homeDir, member);
  if (member.role === event.role && event.generation > member.generation) {
    // The survivor of a split brain keeps its role at the new generation (nothing else changes).
    return { member: await members.changeRole(pairId, event), rolledBackRegions: 0, failbackMap: null };
  }
  if (member.role === event.role) {
    throw new TidemarkError(
      'USAGE',
      `${volume.opened.volume.path} is already the ${member.role} of pair "${member.name}" (generation ${member.generation})`,
      'see `tidemark pair show`',
    );
  }
  return event.role === 'primary' ? promote(volume, homeDir, member, event) : demote(volume, homeDir, member, event);
}

/** A retried call: reported as it is (a demotion's unshipped regions from its durable map). */
async function alreadyDone(volume: AgentVolume, homeDir: string, member: PairMember): Promise<RoleChangeResult> {
  const maps = changeMapsOf(volume, homeDir);
  const has = (name: string) => maps.list().some((m) => m.name === name);
  if (member.role === 'primary') {
    return { member, rolledBackRegions: 0, failbackMap: has(failbackMapName(member.pairId)) ? failbackMapName(member.pairId) : null };
  }
  // A demotion that failed after its record (the tracker still attached here) is finished first.
  const unshipped = await finishDemotion(volume, homeDir, member);
  return { member, rolledBackRegions: 0, failbackMap: null, unshippedRegions: unshipped };
}

async function promote(volume: AgentVolume, homeDir: string, member: PairMember, event: RoleEvent): Promise<RoleChangeResult> {
  const maps = changeMapsOf(volume, homeDir);
  const mapName = failbackMapName(member.pairId);
  if (!maps.list().some((m) => m.name === mapName)) await maps.create(mapName);
  // Fenced first: from here only this promotion writes (at the new generation); a shipper still at
  // the old one cannot slip a region in between the rollback and the lift of the lock. Writes
  // admitted before the fence (their hooks still running) drain before the rollback looks.
  const members = membersOf(volume, homeDir);
  members.fenceAt(member.pairId, event.generation);
  let rolledBackRegions: number;
  let promoted: PairMember;
  try {
    await volume.opened.volume.quiesced(async () => undefined);
    const auth = { pairId: member.pairId, generation: event.generation };
    rolledBackRegions = member.protectSnapshotId ? await rollBack(volume, homeDir, member.protectSnapshotId, auth) : 0;
    promoted = await members.changeRole(member.pairId, event);
  } catch (error) {
    members.unfence(member.pairId);
    throw error;
  }
  if (member.protectSnapshotId) await snapshotsOf(volume, homeDir).delete(member.protectSnapshotId);
  await trackersOf(volume, homeDir).attach(promoted);
  return { member: promoted, rolledBackRegions, failbackMap: mapName };
}

/**
 * Restores every region that differs from the protective snapshot (a copy-on-write snapshot
 * points at the volume for the regions never written since: those are skipped unread). The
 * writes pass the volume's hooks, so the failback map records them.
 */
async function rollBack(volume: AgentVolume, homeDir: string, snapshotId: string, auth: { pairId: string; generation: number }): Promise<number> {
  const snapshot = snapshotsOf(volume, homeDir).get(snapshotId);
  const { volume: vol } = volume.opened;
  let restored = 0;
  for (let r = 0; r < vol.regionCount; r++) {
    if (snapshot.locate(r).path === vol.path) continue; // never written since the snapshot
    const [before, now] = await Promise.all([snapshot.readRegion(r), vol.readRegion(r)]);
    if (Buffer.compare(before, now) === 0) continue;
    await vol.writeRegion(r, before, auth);
    restored += 1;
  }
  if (restored > 0) await vol.flush();
  return restored;
}

async function demote(volume: AgentVolume, homeDir: string, member: PairMember, event: RoleEvent): Promise<RoleChangeResult> {
  // A secondary locks the whole volume: demoting it for one pair would stop its other pairs' primaries too.
  const others = membersOf(volume, homeDir)
    .list()
    .filter((m) => m.pairId !== member.pairId);
  if (others.length > 0) {
    throw new TidemarkError(
      'USAGE',
      `${volume.opened.volume.path} is also a member of pair(s) ${others.map((m) => `"${m.name}" (${m.role})`).join(', ')}: demoting it for pair "${member.name}" would make it read-only for them too`,
      'delete those pairs, or fail them over first; then demote this one',
    );
  }
  // Locked first (the new record says secondary), then tracking goes: no write slips between.
  const demoted = await membersOf(volume, homeDir).changeRole(member.pairId, event);
  const unshipped = await finishDemotion(volume, homeDir, demoted);
  return { member: demoted, rolledBackRegions: 0, failbackMap: null, unshippedRegions: unshipped };
}

/**
 * The demotion's second half, idempotent: what the tracker held unshipped (OOS ∪ in flight once
 * the writes admitted before the lock drained) goes durably into the unshipped map, then the
 * tracker and its MOOS go. Returns the map's regions: a retry (or a demotion killed before this,
 * whose MOOS the next open folded into the map: agent-volume.ts) reports the same.
 */
async function finishDemotion(volume: AgentVolume, homeDir: string, member: PairMember): Promise<number[]> {
  const trackers = trackersOf(volume, homeDir);
  const maps = changeMapsOf(volume, homeDir);
  const mapName = unshippedMapName(member.pairId);
  if (trackers.has(member.pairId)) {
    const unshipped = await volume.opened.volume.quiesced(async () => {
      const tracker = trackers.get(member.pairId);
      return [...Bitset.union(tracker.oos, tracker.predictor.inFlight).indexes()];
    });
    // Durable before the tracker (and its MOOS) goes: nothing locked is writing the volume now.
    if (!maps.list().some((m) => m.name === mapName)) await maps.create(mapName);
    if (unshipped.length > 0) await maps.mark(mapName, unshipped);
    await trackers.detach(member.pairId);
  }
  return maps.list().some((m) => m.name === mapName) ? [...maps.read(mapName).indexes()] : [];
}
