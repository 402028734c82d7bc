// Public surface of replication/: pairs across agents, the sync engine and verify (shipping
// and failover follow).

export { PairStore, pairRecordKind, validatePairName, type PairRecord, type PairMode } from './pair-store';
export type { EndpointResolver, PairEndpoints, VolumeEndpoint } from './endpoints';
export { createPair, deletePair, pairStatus, type PairCreateOptions, type PairDeleteResult, type PairStatus, type PairSideStatus } from './pairs';
export { runSync, syncWindowRegions, syncWritesInFlight, type SyncOptions, type SyncProgress, type SyncSummary, type SyncMethodChoice } from './sync/sync';
export { syncMethods, CursorStore, type SyncMethod, type SyncCursor } from './sync/cursor';
export { verifyPair, type VerifyResult } from './sync/verify';
export { sinceMapName, swapMapName } from './sync/names';
export { acquirePairLock, type PairLock } from './sync/lock';
export { shipContinuous, protectSnapshotLabelPrefix, runsOf, type ShipOptions, type ShipProgress, type ShipSummary } from './continuous';
export { replicatePair, waitInSync, checkWaitVisible, replicateLockTask, type ReplicateOptions, type ReplicateSummary, type WaitOptions } from './replicate';
export { pairLockHolder, type PairLockHolder } from './sync/lock';
export { checkPairMembers } from './members';
export {
  runCycle,
  cycleCursorOf,
  periodicPending,
  currentMapName,
  cycleSnapshotLabel,
  type CycleOptions,
  type CycleProgress,
  type CycleSummary,
} from './periodic';
export { GroupStore, groupOf, failedOverMember, runGroupCycle, type GroupRecord, type GroupCycleOptions, type GroupCycleSummary } from './groups';
export { sleepMs } from './sync/conveyor';
export { linkAfterCreate, linkPair, unlinkPair, shipPathOf, wantsDirectLink, type LinkOptions, type LinkResult, type ShipPath } from './direct';
export { failoverPair, failbackPair, resyncMapOf, type FailoverSummary, type FailbackPlan, type FailbackSummary } from './failover';
export { failoverGroup, failbackGroup, type GroupFailoverSummary, type GroupFailbackSummary } from './group-failover';
export { replicateGroup, runGroupCycleOnce, type GroupReplicateOptions } from './group-replicate';
export { migratePair, readMigrateJournal, testMigrateStopEnv, type MigrateProgress, type MigrateSummary } from './migrate';
export { promotedAtMs, reconcileMembers, reconciliationText, type MemberView, type Reconciliation } from './reconcile';
export { readCycleHistory, recordCycle, cycleHistoryMax, type CycleEntry } from './cycle-history';
