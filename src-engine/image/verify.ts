// `image verify DIR`: every problem of an image, one per finding, each naming its file — the
// manifest, index.bin, each data file (missing, not regular, truncated, oversized, altered with
// its first bad region) and entries that do not belong. Reads the media once.

import { dataFileBytes, dataFileCount, exportStateDirName, manifestName } from './layout';
import { checkData, extraEntries, inspectImage } from './inspect';
import { PhaseProgress, type ImageProgress } from './progress';
import type { ImageProblem } from './problems';

export interface ImageVerifyOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: ImageProgress) => void;
}

export interface ImageVerifyResult {
  readonly ok: boolean;
  readonly dir: string;
  readonly imageId: string | null;
  /** SHA-256 of manifest.json: compare it with what the export printed (and `pair show` at the primary site). */
  readonly manifestSha256: string | null;
  readonly problems: readonly ImageProblem[];
  readonly regions: number;
  readonly storedRegions: number;
  readonly bytesVerified: number;
  readonly regionsTransferred: 0;
  readonly bytesTransferred: 0;
  readonly durationMs: number;
}

export async function verifyImage(dir: string, options: ImageVerifyOptions = {}): Promise<ImageVerifyResult> {
  const startedMs = performance.now();
  const problems: ImageProblem[] = [];
  const collect = (problem: ImageProblem) => void problems.push(problem);
  const inspected = await inspectImage(dir, collect);
  for (const name of extraEntries(inspected.manifest, inspected.entries)) {
    if (name === exportStateDirName && !inspected.entries.has(manifestName)) continue; // reported as unfinished
    const detail =
      name === exportStateDirName
        ? 'left by an export that finished without cleaning up: run the same export again to remove it'
        : 'it is not part of the image; nothing else belongs in an image directory';
    collect({ file: name, kind: 'extra', detail });
  }
  let bytesVerified = 0;
  const image = inspected.image;
  if (image) {
    const bytesTotal = Array.from({ length: dataFileCount(image.layout) }, (_, k) => dataFileBytes(image.layout, k)).reduce((a, b) => a + b, 0);
    const progress = new PhaseProgress('verify', bytesTotal, options.onProgress);
    await checkData(image, collect, { signal: options.signal, onBytes: (bytes) => progress.add(bytes) });
    progress.report();
    bytesVerified = progress.done;
  }
  return {
    ok: problems.length === 0,
    dir,
    imageId: inspected.manifest?.imageId ?? null,
    manifestSha256: inspected.manifestSha256 ?? null,
    problems,
    regions: inspected.manifest?.volume.regionCount ?? 0,
    storedRegions: inspected.manifest?.storedRegions ?? 0,
    bytesVerified,
    regionsTransferred: 0,
    bytesTransferred: 0,
    durationMs: Math.round(performance.now() - startedMs),
  };
}
