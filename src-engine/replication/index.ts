// Public surface of replication/: pairs (sync methods, shipping and failover follow).

export { PairStore, pairRecordKind, validatePairName, type PairRecord, type PairMode } from './pair-store';
