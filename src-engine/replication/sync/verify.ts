// `verify NAME`: both agents sign the pair's extent in parallel, the orchestrator compares.
// Only signatures cross the wire (16 B a region for xxh3-128).

import { runsOf } from '../../bitmap';
import { signatureBytes } from '../../signature';
import type { PairEndpoints } from '../endpoints';
import type { PairRecord } from '../pair-store';
import { selectionWindowRegions } from './select';
import { sinceMapName } from './names';

export interface VerifyResult {
  readonly pair: string;
  readonly regions: number;
  readonly regionsDiffering: number;
  /** The first differing regions (100 unless differingMax says otherwise). */
  readonly differing: readonly number[];
  /** Regions written on the primary that the secondary has not been sent yet (null: no sync yet). */
  readonly pendingRegions: number | null;
  readonly regionsTransferred: 0;
  /** Signature bytes received from both agents. */
  readonly bytesTransferred: number;
  readonly durationMs: number;
}

export interface VerifyOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (regionsDone: number, regionCount: number) => void;
  /** Only these regions (ascending), not the whole extent. */
  readonly regions?: readonly number[];
  /** Sign the primary's side from this snapshot of it (a migrate's check after the swap). */
  readonly primarySnapshotId?: string;
  /** How many differing regions to list (default 100). */
  readonly differingMax?: number;
}

async function windowSignatures(
  endpoint: PairEndpoints['primary'],
  pair: PairRecord,
  start: number,
  end: number,
  signal?: AbortSignal,
  snapshotId?: string,
): Promise<Buffer> {
  const bytes = signatureBytes(pair.hash);
  const out = Buffer.alloc((end - start) * bytes);
  for await (const batch of endpoint.agent.signatures(endpoint.path, pair.hash, start, end - start, { signal, ...(snapshotId ? { snapshotId } : {}) })) {
    batch.regionIndexes.forEach((r, i) => out.set(batch.signatures.subarray(i * bytes, (i + 1) * bytes), (r - start) * bytes));
  }
  return out;
}

export async function verifyPair(pair: PairRecord, endpoints: PairEndpoints, options: VerifyOptions = {}): Promise<VerifyResult> {
  const startedAtMs = performance.now();
  const { primary, secondary } = endpoints;
  const member = (await primary.agent.volumeState(primary.path)).members.find((m) => m.pairId === pair.pairId);
  const regionCount = member?.regionCount ?? (await primary.agent.volumeInfo(primary.path)).regions;
  const bytes = signatureBytes(pair.hash);
  const differing: number[] = [];
  let regionsDiffering = 0;
  const windows = options.regions ? windowsOfRuns(options.regions) : windowsOfExtent(regionCount);
  const total = windows.reduce((sum, [start, end]) => sum + end - start, 0);
  let done = 0;
  for (const [start, end] of windows) {
    const [p, s] = await Promise.all([
      windowSignatures(primary, pair, start, end, options.signal, options.primarySnapshotId),
      windowSignatures(secondary, pair, start, end, options.signal),
    ]);
    for (let i = 0; i < end - start; i++) {
      if (p.compare(s, i * bytes, (i + 1) * bytes, i * bytes, (i + 1) * bytes) !== 0) {
        regionsDiffering += 1;
        if (differing.length < (options.differingMax ?? 100)) differing.push(start + i);
      }
    }
    done += end - start;
    options.onProgress?.(done, total);
  }
  const since = (await primary.agent.bitmapList(primary.path).catch(() => [])).find((m) => m.name === sinceMapName(pair.pairId));
  return {
    pair: pair.name,
    regions: regionCount,
    regionsDiffering,
    differing,
    pendingRegions: since ? since.setCount : null,
    regionsTransferred: 0,
    bytesTransferred: 2 * total * bytes,
    durationMs: Math.round(performance.now() - startedAtMs),
  };
}

/** [start, end) windows of at most selectionWindowRegions over the extent. */
function windowsOfExtent(regionCount: number): Array<[number, number]> {
  const windows: Array<[number, number]> = [];
  for (let start = 0; start < regionCount; start += selectionWindowRegions) windows.push([start, Math.min(regionCount, start + selectionWindowRegions)]);
  return windows;
}

/** The runs of `regions` (ascending), each cut into windows of at most selectionWindowRegions. */
function windowsOfRuns(regions: readonly number[]): Array<[number, number]> {
  const windows: Array<[number, number]> = [];
  for (const [first, count] of runsOf(regions)) {
    for (let start = first; start < first + count; start += selectionWindowRegions)
      windows.push([start, Math.min(first + count, start + selectionWindowRegions)]);
  }
  return windows;
}
