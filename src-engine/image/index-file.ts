// index.bin (docs/image-format.md), little-endian: `0` magic TMIMGIDX · `8` u32 version ·
// `12` u32 signature bytes · `16` u64 region count · `24` u64 stored count · `32` stored bitmap
// (⌈regionCount / 32⌉ u32 words, bits past the count zero) · one signature per stored region,
// ascending. Checked whole (length, SHA-256, header, bitmap) before use; signatures are then
// streamed, never held whole (2³¹ regions × 32 bytes).

import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { assert } from '../assert';
import { Bitset } from '../bitmap';
import { formatCount } from '../size';
import { MiB } from '../constants';
import { signatureBytes } from '../signature';
import { imageFormatVersion, indexBitmapBytes, indexHeaderBytes, indexMagic, indexName } from './layout';
import type { ImageManifest } from './manifest';
import { NotRegularFile, openRegular, readExactly } from './media';
import type { ProblemSink } from './problems';

const readChunkBytes = 4 * MiB;

assert(endianness() === 'LE', 'bitmap words are stored as this host holds them: little-endian');

export interface IndexHeader {
  readonly signatureBytes: number;
  readonly regionCount: number;
  readonly storedRegions: number;
}

export function encodeIndexHeader(header: IndexHeader): Uint8Array {
  const bytes = new Uint8Array(indexHeaderBytes);
  const view = new DataView(bytes.buffer);
  bytes.set(Buffer.from(indexMagic, 'ascii'), 0);
  view.setUint32(8, imageFormatVersion, true);
  view.setUint32(12, header.signatureBytes, true);
  view.setBigUint64(16, BigInt(header.regionCount), true);
  view.setBigUint64(24, BigInt(header.storedRegions), true);
  return bytes;
}

/** The bitmap's bytes as stored: the words, little-endian. */
export function bitmapBytes(bits: Bitset): Uint8Array {
  return new Uint8Array(bits.words.buffer, bits.words.byteOffset, bits.words.byteLength);
}

/** What a checked index.bin says: which regions are stored, and where their signatures start. */
export interface CheckedIndex {
  readonly stored: Bitset;
  readonly signaturesOffsetBytes: number;
}

/** Checks index.bin against the manifest: length, SHA-256, header and bitmap. Undefined after reporting a problem. */
export async function checkIndex(dir: string, manifest: ImageManifest, report: ProblemSink): Promise<CheckedIndex | undefined> {
  const path = join(dir, indexName);
  let opened;
  try {
    opened = await openRegular(path);
  } catch (error) {
    if (!(error instanceof NotRegularFile)) throw error;
    return void report({ file: indexName, kind: error.found === 'missing' ? 'missing' : 'not-regular', detail: error.message });
  }
  try {
    const { handle, sizeBytes } = opened;
    const expected = manifest.index.bytes;
    if (sizeBytes !== expected) {
      const kind = sizeBytes < expected ? 'truncated' : 'oversized';
      return void report({ file: indexName, kind, detail: `${sizeBytes} bytes, the manifest says ${expected}` });
    }
    const { sha256, head } = await hashIndex(handle, path, sizeBytes, indexHeaderBytes + indexBitmapBytes(manifest.volume.regionCount));
    if (sha256 !== manifest.index.sha256)
      return void report({ file: indexName, kind: 'checksum', detail: `SHA-256 ${sha256}, the manifest says ${manifest.index.sha256}` });
    const problem = headerProblem(head, manifest) ?? bitmapProblem(head, manifest);
    if (problem) return void report({ file: indexName, kind: 'structure', detail: problem });
    const words = new Uint32Array(head.buffer.slice(head.byteOffset + indexHeaderBytes, head.byteOffset + head.length));
    return { stored: new Bitset(manifest.volume.regionCount, words), signaturesOffsetBytes: head.length };
  } finally {
    await opened.handle.close();
  }
}

/** SHA-256 of the whole file, streamed, keeping its first `headBytes` (header and bitmap). */
async function hashIndex(handle: FileHandle, path: string, sizeBytes: number, headBytes: number): Promise<{ sha256: string; head: Uint8Array }> {
  const hash = createHash('sha256');
  const head = new Uint8Array(headBytes);
  const chunk = new Uint8Array(Math.min(readChunkBytes, sizeBytes));
  for (let positionBytes = 0; positionBytes < sizeBytes;) {
    const part = chunk.subarray(0, Math.min(chunk.length, sizeBytes - positionBytes));
    await readExactly(handle, part, positionBytes, path);
    hash.update(part);
    if (positionBytes < headBytes) head.set(part.subarray(0, Math.min(part.length, headBytes - positionBytes)), positionBytes);
    positionBytes += part.length;
  }
  return { sha256: hash.digest('hex'), head };
}

function headerProblem(head: Uint8Array, m: ImageManifest): string | undefined {
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  const found = {
    magic: Buffer.from(head.subarray(0, 8)).toString('latin1'),
    version: view.getUint32(8, true),
    signatureBytes: view.getUint32(12, true),
    regionCount: view.getBigUint64(16, true),
    storedRegions: view.getBigUint64(24, true),
  };
  if (found.magic !== indexMagic) return `it does not start with ${indexMagic}`;
  if (found.version !== imageFormatVersion) return `header version ${found.version}, expected ${imageFormatVersion}`;
  if (found.signatureBytes !== signatureBytes(m.hash)) return `header says ${found.signatureBytes}-byte signatures, ${m.hash} has ${signatureBytes(m.hash)}`;
  if (found.regionCount !== BigInt(m.volume.regionCount)) return `header says ${found.regionCount} regions, the manifest ${m.volume.regionCount}`;
  if (found.storedRegions !== BigInt(m.storedRegions)) return `header says ${found.storedRegions} stored regions, the manifest ${m.storedRegions}`;
  return undefined;
}

function bitmapProblem(head: Uint8Array, m: ImageManifest): string | undefined {
  const regionCount = m.volume.regionCount;
  const words = new Uint32Array(head.buffer.slice(head.byteOffset + indexHeaderBytes, head.byteOffset + head.length));
  const tailBits = regionCount % 32;
  if (tailBits !== 0 && words[words.length - 1]! >>> tailBits !== 0) return `bits past region ${regionCount - 1} are set`;
  const stored = new Bitset(regionCount, words).popcount();
  if (stored !== m.storedRegions) return `its bitmap marks ${formatCount(stored, 'region')} stored, the header ${m.storedRegions}`;
  return undefined;
}

/** Streams consecutive signatures from index.bin, starting at a stored ordinal. */
export class SignatureStream {
  private buffer = new Uint8Array(0);
  private bufferOrdinal = 0;
  private nextOrdinal: number;

  private constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
    private readonly signaturesOffsetBytes: number,
    private readonly width: number,
    private readonly storedRegions: number,
    firstOrdinal: number,
  ) {
    this.nextOrdinal = firstOrdinal;
  }

  /** Opens index.bin again (a regular file of the checked length) to stream from `firstOrdinal`. */
  static async open(dir: string, manifest: ImageManifest, index: CheckedIndex, firstOrdinal: number): Promise<SignatureStream> {
    const path = join(dir, indexName);
    const { handle, sizeBytes } = await openRegular(path);
    if (sizeBytes !== manifest.index.bytes) {
      await handle.close();
      throw new NotRegularFile(path, 'other');
    }
    return new SignatureStream(handle, path, index.signaturesOffsetBytes, signatureBytes(manifest.hash), manifest.storedRegions, firstOrdinal);
  }

  /** The signature of the next stored region. */
  async next(): Promise<Uint8Array> {
    assert(this.nextOrdinal < this.storedRegions, 'no signature is read past the last stored region');
    const at = (this.nextOrdinal - this.bufferOrdinal) * this.width;
    if (this.nextOrdinal < this.bufferOrdinal || at + this.width > this.buffer.length) await this.fill();
    const from = (this.nextOrdinal - this.bufferOrdinal) * this.width;
    this.nextOrdinal += 1;
    return this.buffer.subarray(from, from + this.width);
  }

  private async fill(): Promise<void> {
    const count = Math.min(Math.floor(readChunkBytes / this.width), this.storedRegions - this.nextOrdinal);
    this.buffer = new Uint8Array(count * this.width);
    this.bufferOrdinal = this.nextOrdinal;
    await readExactly(this.handle, this.buffer, this.signaturesOffsetBytes + this.nextOrdinal * this.width, this.path);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
