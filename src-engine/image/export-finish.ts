// The end of an export: index.bin and the per-file checksums from sigs.part (one pass: each
// signature goes to its place in index.bin and into its file's checksum, each index sets a bit;
// the header and bitmap are written last), then manifest.json — written last of all, so the
// image exists exactly when it does.

import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from '../assert';
import { Bitset } from '../bitmap';
import { MiB } from '../constants';
import { fromSystemError } from '../errors';
import { signatureBytes } from '../signature';
import { tidemarkVersion } from '../version';
import { FileChecksum } from './checksum';
import { sigRecordBytes, sigsPathOf, type ExportState } from './export-state';
import { bitmapBytes, encodeIndexHeader } from './index-file';
import {
  dataFileBytes,
  dataFileCount,
  dataFileName,
  indexBitmapBytes,
  indexFileBytes,
  indexHeaderBytes,
  indexName,
  manifestName,
  regionsPerFileFor,
  type ImageGeometry,
} from './layout';
import { encodeManifest, type ImageManifest } from './manifest';
import { readExactly, writeExactly, writeFileDurable } from './media';

const chunkRecords = 64 * 1024;

export interface FinishedImage {
  readonly manifest: ImageManifest;
  readonly manifestSha256: string;
}

export async function finishImage(dir: string, state: ExportState): Promise<FinishedImage> {
  assert(state.nextRegion === state.regionCount && state.snapshotId !== null && state.pointInTime !== null, 'an export finishes after its last region');
  const width = signatureBytes(state.hash);
  const sigs = await open(sigsPathOf(dir), 'r').catch((error: unknown) => {
    throw fromSystemError(error, 'open', sigsPathOf(dir));
  });
  try {
    const geometry = await geometryOf(state, sigs, width);
    const checksums = await writeIndex(dir, state, geometry, sigs, width);
    const index = {
      name: indexName,
      bytes: indexFileBytes(state.regionCount, state.storedRegions, width),
      sha256: await sha256Of(join(dir, indexName)),
    } as const;
    const manifest: ImageManifest = {
      imageId: state.imageId,
      createdAt: new Date().toISOString(),
      pointInTime: state.pointInTime!,
      tidemarkVersion: tidemarkVersion.slice(0, 64),
      volume: { volumeId: state.volumeId, sizeBytes: state.sizeBytes, regionBytes: state.regionBytes, regionCount: state.regionCount, source: state.source },
      pair: state.pair,
      hash: state.hash,
      compression: 'none',
      splitBytes: state.splitBytes,
      regionsPerFile: geometry.regionsPerFile,
      storedRegions: state.storedRegions,
      index,
      files: checksums.map((checksum, k) => ({ name: dataFileName(k), regions: fileRegions(geometry, k), bytes: dataFileBytes(geometry, k), checksum })),
    };
    const text = encodeManifest(manifest);
    await writeFileDurable(join(dir, manifestName), text);
    return { manifest, manifestSha256: createHash('sha256').update(text).digest('hex') };
  } finally {
    await sigs.close();
  }
}

const fileRegions = (g: ImageGeometry, k: number) => Math.min(g.regionsPerFile, g.storedRegions - k * g.regionsPerFile);

/** The layout of what was stored; whether the (perhaps short) last region is among it is in sigs.part's last record. */
async function geometryOf(state: ExportState, sigs: FileHandle, width: number): Promise<ImageGeometry> {
  const recordBytes = sigRecordBytes(width);
  let lastRegionStored = false;
  if (state.storedRegions > 0) {
    const last = new Uint8Array(recordBytes);
    await readExactly(sigs, last, (state.storedRegions - 1) * recordBytes, 'sigs.part');
    lastRegionStored = new DataView(last.buffer).getUint32(0, true) === state.regionCount - 1;
  }
  const geometry = { ...state, regionsPerFile: regionsPerFileFor(state.splitBytes, state.regionBytes), lastRegionStored };
  const total = Array.from({ length: dataFileCount(geometry) }, (_, k) => dataFileBytes(geometry, k)).reduce((a, b) => a + b, 0);
  assert(total === state.dataBytes, `the data files hold ${state.dataBytes} bytes as committed, the layout gives ${total}`);
  return geometry;
}

/** Writes index.bin from sigs.part; returns each data file's checksum. */
async function writeIndex(dir: string, state: ExportState, geometry: ImageGeometry, sigs: FileHandle, width: number): Promise<string[]> {
  const path = join(dir, indexName);
  const index = await open(path, 'w', 0o644).catch((error: unknown) => {
    throw fromSystemError(error, 'create', path);
  });
  try {
    const stored = new Bitset(state.regionCount);
    const checksums = await copySignatures(state, geometry, sigs, index, stored, width);
    assert(stored.popcount() === state.storedRegions, 'one bit per stored region');
    await writeExactly(index, encodeIndexHeader({ signatureBytes: width, regionCount: state.regionCount, storedRegions: state.storedRegions }), 0, path);
    await writeExactly(index, bitmapBytes(stored), indexHeaderBytes, path);
    await index.sync();
    return checksums;
  } finally {
    await index.close();
  }
}

/** One pass over sigs.part: signatures into index.bin, bits into `stored`, signatures into each file's checksum. */
async function copySignatures(
  state: ExportState,
  geometry: ImageGeometry,
  sigs: FileHandle,
  index: FileHandle,
  stored: Bitset,
  width: number,
): Promise<string[]> {
  const recordBytes = sigRecordBytes(width);
  const signaturesOffsetBytes = indexHeaderBytes + indexBitmapBytes(state.regionCount);
  const checksums: string[] = [];
  let checksum: FileChecksum | undefined;
  let previousRegion = -1;
  for (let first = 0; first < state.storedRegions; first += chunkRecords) {
    const count = Math.min(chunkRecords, state.storedRegions - first);
    const records = new Uint8Array(count * recordBytes);
    await readExactly(sigs, records, first * recordBytes, 'sigs.part');
    const signatures = new Uint8Array(count * width);
    for (let i = 0; i < count; i++) {
      const ordinal = first + i;
      const regionIndex = new DataView(records.buffer, i * recordBytes, 4).getUint32(0, true);
      assert(regionIndex > previousRegion && regionIndex < state.regionCount, `sigs.part record ${ordinal} is region ${regionIndex}, ascending`);
      previousRegion = regionIndex;
      stored.set(regionIndex);
      const signature = records.subarray(i * recordBytes + 4, (i + 1) * recordBytes);
      signatures.set(signature, i * width);
      if (ordinal % geometry.regionsPerFile === 0) {
        if (checksum) checksums.push(checksum.end());
        checksum = await FileChecksum.begin(state.hash, dataFileBytes(geometry, ordinal / geometry.regionsPerFile));
      }
      checksum!.add(signature);
    }
    await writeExactly(index, signatures, signaturesOffsetBytes + first * width, indexName);
  }
  if (checksum) checksums.push(checksum.end());
  assert(checksums.length === dataFileCount(geometry), 'one checksum per data file');
  return checksums;
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'r');
  try {
    const chunk = new Uint8Array(4 * MiB);
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) return hash.digest('hex');
      hash.update(chunk.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
}
