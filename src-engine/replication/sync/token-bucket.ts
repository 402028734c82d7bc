// Moved to the engine root (the primary's agent rate-limits direct shipping with it too).
export { TokenBucket } from '../../token-bucket';
