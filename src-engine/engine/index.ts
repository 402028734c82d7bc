// Public surface of engine/: the engine facade for long-lived processes.

export { Engine, mapKinds, type EngineHostOptions, type MapKind, type BitmapView, type Overview, type PairSummary, type VolumeSummary } from './engine';
export { PairOperations, type SyncState, type SyncEstimate, type MethodEstimate } from './pair-ops';
export { SeedingOperations, type SeedingTask, type SeedingKind, type ExportPreflight } from './seeding';
export { ReplicationOperations, type ReplicationState, type LagSample, type CycleRecord } from './replication-ops';
export { pairMapSources, pairMapNames, pairMapHint, requirePairMapName, type PairMapSource } from './pair-maps';
export {
  MapInspector,
  mapCompareOperations,
  inspectorRunsMax,
  type MapSourceRef,
  type MapCompareOperation,
  type MapInspection,
  type OpenedMapFile,
} from './map-inspector';
export { pairTimeline, type PairTimeline, type TimelineEntry, type TimelineKind } from './timeline';
export {
  RoleTasks,
  roleTaskCancellable,
  type RoleTaskKind,
  type RoleTaskProgress,
  type RoleTaskState,
  type RoleOptions,
  type SideReach,
  type MigratePlan,
} from './role-tasks';
