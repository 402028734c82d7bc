// Public surface of tracking/: write tracking (OOS + MOOS) on primaries.

export { WriteTracker, type TrackerStats } from './write-tracker';
