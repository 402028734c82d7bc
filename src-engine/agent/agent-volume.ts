// A volume as the agent holds it open: the catalog's volume (realization tracking) plus, for
// a registered volume, its snapshots (their copy-on-write hooks) and its change maps. All of
// them are attached before the agent lets the first write through, and closed together.

import { TidemarkError } from '../errors';
import { SnapshotRegistry } from '../snapshot';
import { ChangeMaps } from '../tracking';
import type { OpenedVolume, VolumeCatalog } from '../volume';
import { unshippedMapName } from './map-names';
import { PairMembers } from './pair-members';
import { PairTrackers } from './pair-trackers';
import { PairStaging } from './staging';

export interface AgentVolume {
  readonly opened: OpenedVolume;
  /** Undefined for a volume this home did not register (it has no catalog directory). */
  readonly snapshots: SnapshotRegistry | undefined;
  readonly changeMaps: ChangeMaps | undefined;
  readonly members: PairMembers | undefined;
  readonly trackers: PairTrackers | undefined;
  /** Periodic cycles arriving on a secondary. */
  readonly staging: PairStaging | undefined;
}

export async function openAgentVolume(catalog: VolumeCatalog, canonicalPath: string): Promise<AgentVolume> {
  const opened = await catalog.open(canonicalPath);
  const { record, volume } = opened;
  let snapshots: SnapshotRegistry | undefined;
  let trackers: PairTrackers | undefined;
  let changeMaps: ChangeMaps | undefined;
  try {
    if (!record) return { opened, snapshots: undefined, changeMaps: undefined, members: undefined, trackers: undefined, staging: undefined };
    // Members first: a secondary is locked before anything could write to it.
    const members = await PairMembers.open(catalog.volumeDir(record.volumeId), volume);
    // Tracking next: no write (not even a snapshot's) passes before a primary's MOOS covers it.
    trackers = await PairTrackers.open(catalog.volumeDir(record.volumeId), volume, members.list());
    snapshots = await SnapshotRegistry.open(volume, catalog.snapshotsDir(record.volumeId));
    changeMaps = await ChangeMaps.open(volume, catalog.volumeDir(record.volumeId));
    await foldOrphanMoos(members, trackers, changeMaps);
    // Last: an apply a crash interrupted is finished through every hook (a snapshot's copy-on-write too).
    const staging = new PairStaging(catalog.volumeDir(record.volumeId), volume, members);
    await staging.recover();
    return { opened, snapshots, changeMaps, members, trackers, staging };
  } catch (error) {
    await changeMaps?.close().catch(() => undefined);
    await snapshots?.close().catch(() => undefined);
    await trackers?.close().catch(() => undefined);
    await opened.close().catch(() => undefined);
    throw error;
  }
}

/** Detaches snapshots and change maps (keeping them on disk), then closes the volume. */
export async function closeAgentVolume(volume: AgentVolume): Promise<void> {
  await volume.staging?.close().catch(() => undefined);
  try {
    await volume.snapshots?.close();
  } finally {
    try {
      await volume.changeMaps?.close();
    } finally {
      try {
        await volume.trackers?.close();
      } finally {
        await volume.opened.close();
      }
    }
  }
}

function unregistered(volume: AgentVolume, homeDir: string): TidemarkError {
  return new TidemarkError(
    'UNSUPPORTED',
    `volume ${volume.opened.volume.path} is not registered in home ${homeDir}: snapshots and bitmaps live in its catalog directory`,
    'create the volume with `tidemark volume create` so this home registers it',
  );
}

export function snapshotsOf(volume: AgentVolume, homeDir: string): SnapshotRegistry {
  if (!volume.snapshots) throw unregistered(volume, homeDir);
  return volume.snapshots;
}

export function membersOf(volume: AgentVolume, homeDir: string): PairMembers {
  if (!volume.members) throw unregistered(volume, homeDir);
  return volume.members;
}

export function trackersOf(volume: AgentVolume, homeDir: string): PairTrackers {
  if (!volume.trackers) throw unregistered(volume, homeDir);
  return volume.trackers;
}

export function stagingOf(volume: AgentVolume, homeDir: string): PairStaging {
  if (!volume.staging) throw unregistered(volume, homeDir);
  return volume.staging;
}

export function changeMapsOf(volume: AgentVolume, homeDir: string): ChangeMaps {
  if (!volume.changeMaps) throw unregistered(volume, homeDir);
  return volume.changeMaps;
}

/** A demoted secondary's leftover MOOS (a demotion killed midway) into its durable unshipped map. */
async function foldOrphanMoos(members: PairMembers, trackers: PairTrackers, changeMaps: ChangeMaps): Promise<void> {
  await trackers.foldOrphans(members.list(), async (pairId, regions) => {
    const name = unshippedMapName(pairId);
    if (!changeMaps.list().some((m) => m.name === name)) await changeMaps.create(name);
    if (regions.length > 0) await changeMaps.mark(name, regions);
  });
}
