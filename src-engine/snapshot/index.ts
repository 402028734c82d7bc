// Public surface of snapshot/: point-in-time snapshots (reflink clone or copy-on-write).

export { createSnapshot, openSnapshot, snapshotRecordKind, type Snapshot, type SnapshotRecord, type ReflinkPolicy } from './snapshot';
