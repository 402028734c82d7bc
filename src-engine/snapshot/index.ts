// Public surface of snapshot/: point-in-time snapshots (reflink clone or copy-on-write),
// signing one while its volume stays live, and the registry of a volume's snapshots.

export {
  createSnapshot,
  openSnapshot,
  snapshotRecordKind,
  snapshotIdPattern,
  type Snapshot,
  type SnapshotRecord,
  type SnapshotStats,
  type ReflinkPolicy,
  type CreateSnapshotOptions,
  type SnapshotCloseOptions,
} from './snapshot';
export { signSnapshot, signSnapshotBatches, type RegionSigner, type SnapshotSignOptions } from './sign';
export { SnapshotRegistry, checkSnapshotId, checkSnapshotLabel, type DamagedSnapshot, type SnapshotRegistryOptions } from './registry';
