// Public surface of tracking/: write tracking (OOS + MOOS) on primaries, and a volume's named
// change maps.

export { WriteTracker, lastWritePathOf, type TrackerStats, type TrackingState } from './write-tracker';
export { ChangeMaps, checkChangeMapName, changeMapNamePattern, type ChangeMapInfo } from './change-maps';
