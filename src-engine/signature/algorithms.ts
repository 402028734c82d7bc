// Region signature algorithms: xxh3-128 (default; WebAssembly from hash-wasm, no native code)
// and sha256 (node:crypto). A signature is the digest in canonical (big-endian) byte order,
// the same bytes `xxhsum -H2` and `sha256sum` print as hex.

import { createHash } from 'node:crypto';
import { createXXHash128, type IHasher } from 'hash-wasm';
import { usageError } from '../errors';

export const hashAlgorithms = ['xxh3-128', 'sha256'] as const;
export type HashAlgorithm = (typeof hashAlgorithms)[number];
export const hashAlgorithmDefault: HashAlgorithm = 'xxh3-128';

export function signatureBytes(algorithm: HashAlgorithm): number {
  return algorithm === 'sha256' ? 32 : 16;
}

export function parseHashAlgorithm(text: string): HashAlgorithm {
  if ((hashAlgorithms as readonly string[]).includes(text)) return text as HashAlgorithm;
  throw usageError(`unknown hash "${text}"`, `use one of: ${hashAlgorithms.join(', ')}`);
}

/** An incremental hasher over one region at a time. */
export interface RegionHasher {
  begin(): void;
  update(data: Uint8Array): void;
  /** Writes the signature into `target` at `offset`. */
  end(target: Uint8Array, offset: number): void;
}

class Xxh3Hasher implements RegionHasher {
  constructor(private readonly wasm: IHasher) {}
  begin(): void {
    this.wasm.init();
  }
  update(data: Uint8Array): void {
    this.wasm.update(data);
  }
  end(target: Uint8Array, offset: number): void {
    target.set(this.wasm.digest('binary'), offset);
  }
}

class Sha256Hasher implements RegionHasher {
  private hash = createHash('sha256');
  begin(): void {
    this.hash = createHash('sha256');
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  end(target: Uint8Array, offset: number): void {
    target.set(this.hash.digest(), offset);
  }
}

export async function createRegionHasher(algorithm: HashAlgorithm): Promise<RegionHasher> {
  return algorithm === 'sha256' ? new Sha256Hasher() : new Xxh3Hasher(await createXXHash128());
}

/** Signature of one buffer (a region in hand). */
export async function signBytes(algorithm: HashAlgorithm, data: Uint8Array): Promise<Uint8Array> {
  const hasher = await createRegionHasher(algorithm);
  const signature = new Uint8Array(signatureBytes(algorithm));
  hasher.begin();
  hasher.update(data);
  hasher.end(signature, 0);
  return signature;
}
