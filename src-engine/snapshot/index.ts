// Public surface of snapshot/: point-in-time snapshots (reflink clone or copy-on-write) and
// signing one while its volume stays live.

export { createSnapshot, openSnapshot, snapshotRecordKind, type Snapshot, type SnapshotRecord, type SnapshotStats, type ReflinkPolicy } from './snapshot';
export { signSnapshot, type RegionSigner, type SnapshotSignOptions } from './sign';
