// Public surface of bitmap/: Bitset, PersistentBitmap and the MOOS predictor.

export { Bitset, popcount32, type BitRun } from './bitset';
export { PersistentBitmap, bitmapFileBytes, type BitmapLoadReport, type SegmentRecovery, type PersistentBitmapStats } from './persistent-bitmap';
export { NodeBitmapFile, type BitmapFile } from './file';
export { MoosPredictor, moosStreamsMax, type MoosPredictorOptions } from './moos';
export { createBitmapFile, openBitmapFile } from './open';
export { runsOf } from './runs';
