// Public surface of volume/: geometry, backends, the Volume with its write hooks, realization.

export { RegionGeometry, validateRegionBytes, validateRegionCount, validateVolumeBytes, type RegionSpan } from './geometry';
export { FileBackend, blockDeviceBytes, deviceNumbers, type VolumeBackend } from './backend';
export { Volume, type WriteHook, type VolumeOptions, type WriteAuth, type WriteLock } from './volume';
export { RealizedTracker, zeroScanRealized, type ScanProgress } from './realized';
export { VolumeCatalog, volumeRecordKind, type VolumeRecord, type OpenedVolume, type VolumeInfo } from './catalog';
