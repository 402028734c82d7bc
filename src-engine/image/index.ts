// Public surface of image/: seed images (docs/image-format.md) — export, verify, import.

export { exportImage, abandonExport, exportSnapshotLabel, type ImageExportOptions, type ImageExportSummary } from './export';
export { verifyImage, type ImageVerifyOptions, type ImageVerifyResult } from './verify';
export { importImage, type ImageImportOptions, type ImageImportSummary } from './import';
export { imageManifestKind, manifestBodySchema, type ImageManifest } from './manifest';
export { problemText, problemKinds, type ImageProblem, type ProblemKind } from './problems';
export type { ImageProgress, ImagePhase } from './progress';
export { splitBytesDefault, splitBytesMin, dataFilesMax, manifestName, indexName, dataFileName } from './layout';
