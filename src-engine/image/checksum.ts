// Signatures as an image uses them: of a region in hand, and a data file's checksum,
// H(u64le bytes ‖ the signatures of its regions in order) — every data byte is in exactly one
// region, so the file is covered by the one hashing pass that signs its regions.

import { assert } from '../assert';
import { createRegionHasher, signatureBytes, type HashAlgorithm, type RegionHasher } from '../signature';

/** Signs regions one after another on this thread (one hasher, reused). */
export class RegionSigner {
  readonly signatureBytes: number;

  private constructor(
    readonly hash: HashAlgorithm,
    private readonly hasher: RegionHasher,
  ) {
    this.signatureBytes = signatureBytes(hash);
  }

  static async create(hash: HashAlgorithm): Promise<RegionSigner> {
    return new RegionSigner(hash, await createRegionHasher(hash));
  }

  sign(data: Uint8Array): Uint8Array {
    const signature = new Uint8Array(this.signatureBytes);
    this.hasher.begin();
    this.hasher.update(data);
    this.hasher.end(signature, 0);
    return signature;
  }
}

/** A data file's checksum, fed the file's length first and then its regions' signatures. */
export class FileChecksum {
  private signaturesAdded = 0;

  private constructor(
    private readonly hasher: RegionHasher,
    private readonly width: number,
  ) {}

  static async begin(hash: HashAlgorithm, fileBytes: number): Promise<FileChecksum> {
    assert(Number.isSafeInteger(fileBytes) && fileBytes >= 0, `file length ${fileBytes} is a safe integer`);
    const checksum = new FileChecksum(await createRegionHasher(hash), signatureBytes(hash));
    const length = new Uint8Array(8);
    new DataView(length.buffer).setBigUint64(0, BigInt(fileBytes), true);
    checksum.hasher.begin();
    checksum.hasher.update(length);
    return checksum;
  }

  add(signature: Uint8Array): void {
    assert(signature.length === this.width, `a signature has ${this.width} bytes`);
    this.hasher.update(signature);
    this.signaturesAdded += 1;
  }

  get regions(): number {
    return this.signaturesAdded;
  }

  end(): string {
    const digest = new Uint8Array(this.width);
    this.hasher.end(digest, 0);
    return Buffer.from(digest).toString('hex');
  }
}

/** True when every byte is zero (one memcmp against a shared zero buffer). */
let zeros = Buffer.alloc(0);
export function isAllZero(data: Uint8Array): boolean {
  if (zeros.length < data.length) zeros = Buffer.alloc(data.length);
  return Buffer.from(data.buffer, data.byteOffset, data.length).compare(zeros, 0, data.length) === 0;
}
