// The engine's public surface: the only module src-main may import.

export * from './errors';
export { assert } from './assert';
export * as limits from './constants';
export { parseSize, formatBytes, parseDurationMs } from './size';
export { ProgressMeter, formatDurationMs, type ProgressSnapshot } from './progress';
export { tidemarkVersion } from './version';
export { mulberry32, seededFractions, type RandomUint32 } from './random';
export { resolveHomeDir, ensureHomeDir } from './home';
export * from './bitmap';
export * from './volume';
export * from './signature';
export * from './snapshot';
export * from './store';
export * from './events';
export * from './tracking';
export * from './replication';
export * from './image';
export * from './lab';
export * from './engine';
export { runCli, exitCodes, type Io, type GlobalOptions, type CliRole, type CliExtension } from './cli';
export * from './agent';
export * from './ssh';
export * from './hosts';
export * from './maps';
