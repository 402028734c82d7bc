// Signing a snapshot while its volume stays live. A copy-on-write snapshot's unwritten
// regions live on the volume, and a host write may replace them between the moment a batch
// is located and the moment a worker reads it. The copy-aside always happens before the
// volume write, so a region whose validation bit is still clear once its batch is hashed was
// read intact; one whose bit was set meanwhile is signed again from the store.

import { assert } from '../assert';
import { Bitset } from '../bitmap';
import { SignatureMap, type SignaturePool, type SignatureBatch, type SignOptions, type RegionToSign } from '../signature';
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
  const readFromVolume = new Bitset(snapshot.regionCount);
  const resign = new Bitset(snapshot.regionCount);
  const located = function* (): Generator<RegionToSign> {
    for (const regionIndex of regionsToSign(snapshot.regionCount, options.regions)) {
      const { location, onVolume } = snapshot.whereIs(regionIndex);
      if (onVolume) readFromVolume.set(regionIndex);
      yield { regionIndex, location };
    }
  };
  for await (const batch of signer.sign(located(), options)) {
    putBatch(map, batch);
    // The worker is done reading this batch: only now does a clear bit prove the bytes intact.
    for (const r of batch.regionIndexes) if (readFromVolume.get(r) && snapshot.copiedAside(r)) resign.set(r);
  }
  if (resign.anySet()) await signFromStore(signer, snapshot, resign, map, options);
  return map;
}

/** Re-signs regions copied aside while they were being read; their store bytes never change. */
async function signFromStore(signer: RegionSigner, snapshot: SnapshotBase, regions: Bitset, map: SignatureMap, options: SignOptions): Promise<void> {
  const fromStore = function* (): Generator<RegionToSign> {
    for (const regionIndex of regions.indexes()) {
      const { location, onVolume } = snapshot.whereIs(regionIndex);
      assert(!onVolume, 'a region copied aside stays in the store');
      yield { regionIndex, location };
    }
  };
  // Progress already counted these regions once; report none twice.
  for await (const batch of signer.sign(fromStore(), { signal: options.signal, batchBytesMax: options.batchBytesMax })) putBatch(map, batch);
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
