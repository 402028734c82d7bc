// Signing a snapshot while its volume stays live. A copy-on-write snapshot's unwritten
// regions live on the volume, and a host write may replace them between the moment a batch
// is located and the moment a worker reads it. The copy-aside always happens before the
// volume write, so a region whose validation bit is still clear once its batch is hashed was
// read intact; one whose bit was set meanwhile is held back and signed again from the store.

import { assert } from '../assert';
import type { Bitset } from '../bitmap';
import { SignatureMap, signatureBytes, type SignaturePool, type SignatureBatch, type SignOptions, type RegionToSign } from '../signature';
import { SnapshotBase, type Snapshot } from './snapshot';

/** What signs batches of region locations: a SignaturePool (tests wrap one). */
export type RegionSigner = Pick<SignaturePool, 'algorithm' | 'sign'>;

export interface SnapshotSignOptions extends SignOptions {
  /** Only these regions (all by default). */
  readonly regions?: Bitset;
}

/** Signs `regions` (all by default) of `snapshot` exactly as they were when it was taken. */
export async function signSnapshot(signer: RegionSigner, snapshot: Snapshot, options: SnapshotSignOptions = {}): Promise<SignatureMap> {
  assert(snapshot instanceof SnapshotBase, 'signSnapshot takes a snapshot made by createSnapshot or openSnapshot');
  const map = new SignatureMap(signer.algorithm, snapshot.regionCount);
  for await (const batch of signSnapshotBatches(signer, snapshot, regionsToSign(snapshot.regionCount, options.regions), options)) putBatch(map, batch);
  return map;
}

/**
 * Streams the signatures of `regionIndexes` of `snapshot`, batch by batch (in no particular
 * order), each of the bytes the region held when the snapshot was taken. A region read from
 * the volume and copied aside meanwhile is held back from its batch and signed again from the
 * store once the rest is done (a signer serves one call at a time). Once the snapshot is
 * closed (deleted) nothing proves a region intact any more: the stream fails (checkOpen)
 * before the next batch.
 */
export async function* signSnapshotBatches(
  signer: RegionSigner,
  snapshot: Snapshot,
  regionIndexes: Iterable<number>,
  options: SignOptions = {},
): AsyncGenerator<SignatureBatch> {
  assert(snapshot instanceof SnapshotBase, 'signSnapshotBatches takes a snapshot made by createSnapshot or openSnapshot');
  const width = signatureBytes(signer.algorithm);
  // Bounded by what the signer has located but not yet returned (its read-ahead).
  const readFromVolume = new Set<number>();
  // Bounded by the regions written while they were being signed.
  const resign: number[] = [];
  const located = function* (): Generator<RegionToSign> {
    for (const regionIndex of regionIndexes) {
      const { location, onVolume } = snapshot.whereIs(regionIndex);
      if (onVolume) readFromVolume.add(regionIndex);
      yield { regionIndex, location };
    }
  };
  try {
    for await (const batch of signer.sign(located(), options)) {
      // The worker is done reading this batch: only now does a clear bit prove the bytes
      // intact, and only while the snapshot is open (its hook still copies regions aside).
      snapshot.checkOpen();
      const intact = batch.regionIndexes.map((r) => !(readFromVolume.delete(r) && snapshot.copiedAside(r)));
      if (intact.every(Boolean)) yield batch;
      else yield withoutRegions(batch, intact, width, resign);
    }
    assert(readFromVolume.size === 0, 'every region located on the volume was signed and re-checked');
    if (resign.length > 0) yield* signFromStore(signer, snapshot, resign, options);
  } catch (error) {
    snapshot.checkOpen(); // a read failed because the snapshot went away: say that
    throw error;
  }
}

/** The regions of `batch` marked intact, with their signatures; the others are added to `heldBack`. */
function withoutRegions(batch: SignatureBatch, intact: readonly boolean[], width: number, heldBack: number[]): SignatureBatch {
  assert(batch.signatures.length === batch.regionIndexes.length * width, 'a batch holds one signature per region');
  const regionIndexes: number[] = [];
  const signatures = new Uint8Array(intact.filter(Boolean).length * width);
  batch.regionIndexes.forEach((r, i) => {
    if (!intact[i]) return void heldBack.push(r);
    signatures.set(batch.signatures.subarray(i * width, (i + 1) * width), regionIndexes.length * width);
    regionIndexes.push(r);
  });
  return { regionIndexes, signatures };
}

/** Signs regions copied aside while they were being read; their store bytes never change. */
async function* signFromStore(signer: RegionSigner, snapshot: SnapshotBase, regions: readonly number[], options: SignOptions): AsyncGenerator<SignatureBatch> {
  const fromStore = function* (): Generator<RegionToSign> {
    for (const regionIndex of regions) {
      const { location, onVolume } = snapshot.whereIs(regionIndex);
      assert(!onVolume, 'a region copied aside stays in the store');
      yield { regionIndex, location };
    }
  };
  let signed = 0;
  // Progress already counted these regions once; report none twice.
  for await (const batch of signer.sign(fromStore(), { signal: options.signal, batchBytesMax: options.batchBytesMax })) {
    snapshot.checkOpen();
    signed += batch.regionIndexes.length;
    yield batch;
  }
  assert(signed === regions.length, 'every region held back was signed from the store');
}

function* regionsToSign(regionCount: number, regions: Bitset | undefined): Generator<number> {
  if (regions) {
    yield* regions.indexes();
    return;
  }
  for (let regionIndex = 0; regionIndex < regionCount; regionIndex++) yield regionIndex;
}

function putBatch(map: SignatureMap, batch: SignatureBatch): void {
  const width = map.bytesPerSignature;
  batch.regionIndexes.forEach((regionIndex, i) => map.put(regionIndex, batch.signatures.subarray(i * width, (i + 1) * width)));
}
