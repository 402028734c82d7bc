// SignatureMap: the signatures of a volume's regions (all, or those in a region set), as one
// flat byte array, and the function that fills one from a pool.

import { assert } from '../assert';
import { Bitset } from '../bitmap';
import { signatureBytes, type HashAlgorithm } from './algorithms';
import type { SignaturePool, SignOptions } from './pool';
import type { RegionLocation } from './read-hash';

export class SignatureMap {
  readonly bytesPerSignature: number;
  readonly bytes: Uint8Array;
  /** Regions whose signature is present. */
  readonly present: Bitset;

  constructor(
    readonly algorithm: HashAlgorithm,
    readonly regionCount: number,
  ) {
    this.bytesPerSignature = signatureBytes(algorithm);
    this.bytes = new Uint8Array(regionCount * this.bytesPerSignature);
    this.present = new Bitset(regionCount);
  }

  get(regionIndex: number): Uint8Array | undefined {
    if (!this.present.get(regionIndex)) return undefined;
    return this.bytes.subarray(regionIndex * this.bytesPerSignature, (regionIndex + 1) * this.bytesPerSignature);
  }

  put(regionIndex: number, signature: Uint8Array): void {
    assert(signature.length === this.bytesPerSignature, `signature of ${this.bytesPerSignature} bytes`);
    this.bytes.set(signature, regionIndex * this.bytesPerSignature);
    this.present.set(regionIndex);
  }

  hex(regionIndex: number): string | undefined {
    const signature = this.get(regionIndex);
    return signature ? Buffer.from(signature).toString('hex') : undefined;
  }

  /** Regions present in both maps whose signatures differ. */
  differing(other: SignatureMap): Bitset {
    assert(other.algorithm === this.algorithm && other.regionCount === this.regionCount, 'comparable signature maps');
    const both = this.present.clone().intersectWith(other.present);
    const result = new Bitset(this.regionCount);
    const width = this.bytesPerSignature;
    for (const r of both.indexes()) {
      const a = this.bytes.subarray(r * width, (r + 1) * width);
      const b = other.bytes.subarray(r * width, (r + 1) * width);
      if (Buffer.compare(a, b) !== 0) result.set(r);
    }
    return result;
  }
}

/** Signs `regions` (all regions by default) of a volume whose region i lives at `locate(i)`. */
export async function signRegions(
  pool: SignaturePool,
  regionCount: number,
  locate: (regionIndex: number) => RegionLocation,
  options: SignOptions & { regions?: Bitset } = {},
): Promise<SignatureMap> {
  const map = new SignatureMap(pool.algorithm, regionCount);
  const regions = options.regions;
  function* allRegions() {
    for (let regionIndex = 0; regionIndex < regionCount; regionIndex++) yield regionIndex;
  }
  function* items() {
    for (const regionIndex of regions ? regions.indexes() : allRegions()) yield { regionIndex, location: locate(regionIndex) };
  }
  for await (const batch of pool.sign(items(), options)) {
    batch.regionIndexes.forEach((regionIndex, i) =>
      map.put(regionIndex, batch.signatures.subarray(i * map.bytesPerSignature, (i + 1) * map.bytesPerSignature)),
    );
  }
  return map;
}
