// PersistentBitmap: a Bitset kept durable in a file of checksummed segments, each with two
// alternating slots, destaging only the segments that changed. Format: docs/bitmap-format.md.

import { crc32 } from 'node:zlib';
import { assert, assertCount, invariantViolated } from '../assert';
import { bitmapBitsPerSegment, bitmapSlotBytes, bitmapSlotHeaderBytes, bitmapSuperblockBytes } from '../constants';
import { TidemarkError } from '../errors';
import { Bitset } from './bitset';
import type { BitmapFile } from './file';

const superMagic = 'TMBITMAP';
const formatVersion = 1;
const slotMagic = 0x47534d54; // "TMSG" little-endian
const superChecksumOffset = 60;
const wordsPerSegment = bitmapBitsPerSegment / 32;
/** The sequence of the image `create` writes to slot A of every segment. */
const creationSequence = 1;
/** A next-slot value meaning "write A, sync, then B" (healing a segment after recovery). */
const bothSlots = 2;

/** Why a segment was loaded as all-set instead of from a slot. */
export interface SegmentRecovery {
  readonly segmentIndex: number;
  readonly reason: string;
}

export interface BitmapLoadReport {
  /** Segments whose slots failed verification; their bits were set (the safe choice). */
  readonly recovered: readonly SegmentRecovery[];
}

interface Geometry {
  readonly bitCount: number;
  readonly segmentCount: number;
  readonly tag: string;
}

function segmentCountFor(bitCount: number): number {
  return Math.max(1, Math.ceil(bitCount / bitmapBitsPerSegment));
}

function slotOffset(segmentIndex: number, slot: 0 | 1): number {
  return bitmapSuperblockBytes + (segmentIndex * 2 + slot) * bitmapSlotBytes;
}

export function bitmapFileBytes(bitCount: number): number {
  return slotOffset(segmentCountFor(bitCount), 0);
}

function encodeSuperblock(geometry: Geometry): Uint8Array {
  const bytes = new Uint8Array(bitmapSuperblockBytes);
  const view = new DataView(bytes.buffer);
  bytes.set(Buffer.from(superMagic, 'ascii'), 0);
  view.setUint32(8, formatVersion, true);
  view.setUint32(12, bitmapSlotBytes, true);
  view.setUint32(16, geometry.bitCount % 2 ** 32, true);
  view.setUint32(20, Math.floor(geometry.bitCount / 2 ** 32), true);
  view.setUint32(24, bitmapBitsPerSegment, true);
  view.setUint32(28, geometry.segmentCount, true);
  const tag = Buffer.from(geometry.tag, 'utf8');
  assert(tag.length <= 24, 'bitmap tag fits in 24 bytes');
  bytes.set(tag, 32);
  view.setUint32(superChecksumOffset, crc32(bytes.subarray(0, superChecksumOffset)), true);
  return bytes;
}

function decodeSuperblock(bytes: Uint8Array, path: string): Geometry {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const corrupt = (why: string) =>
    new TidemarkError(
      'METADATA_CORRUPT',
      `bitmap ${path} is unreadable: ${why}`,
      'the file was damaged outside Tidemark; keep it for support, and run a full resync of this volume (nothing is assumed in sync)',
    );
  if (bytes.length < bitmapSuperblockBytes) throw corrupt('the file is shorter than its header');
  if (Buffer.from(bytes.subarray(0, 8)).toString('ascii') !== superMagic) throw corrupt('it is not a Tidemark bitmap (bad magic)');
  if (view.getUint32(superChecksumOffset, true) !== crc32(bytes.subarray(0, superChecksumOffset))) throw corrupt('header checksum mismatch');
  if (view.getUint32(8, true) !== formatVersion) throw corrupt(`unsupported format version ${view.getUint32(8, true)}`);
  if (view.getUint32(12, true) !== bitmapSlotBytes || view.getUint32(24, true) !== bitmapBitsPerSegment) throw corrupt('unsupported segment geometry');
  const bitCount = view.getUint32(16, true) + view.getUint32(20, true) * 2 ** 32;
  const segmentCount = view.getUint32(28, true);
  if (segmentCount !== segmentCountFor(bitCount)) throw corrupt('segment count does not match bit count');
  const tagBytes = bytes.subarray(32, 56);
  const tagEnd = tagBytes.indexOf(0);
  const tag = Buffer.from(tagBytes.subarray(0, tagEnd === -1 ? 24 : tagEnd)).toString('utf8');
  return { bitCount, segmentCount, tag };
}

/** Encodes one slot: header (magic, segment, sequence, payload length, checksums) + payload. */
function encodeSlot(segmentIndex: number, sequence: number, payload: Uint32Array): Uint8Array {
  const slot = new Uint8Array(bitmapSlotBytes);
  const view = new DataView(slot.buffer);
  const payloadBytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  slot.set(payloadBytes, bitmapSlotHeaderBytes);
  view.setUint32(0, slotMagic, true);
  view.setUint32(4, segmentIndex, true);
  view.setUint32(8, sequence % 2 ** 32, true);
  view.setUint32(12, Math.floor(sequence / 2 ** 32), true);
  view.setUint32(16, payloadBytes.length, true);
  // The checksum covers the whole slot body, padding included, so any flipped bit shows.
  view.setUint32(20, crc32(slot.subarray(bitmapSlotHeaderBytes)), true);
  view.setUint32(24, crc32(slot.subarray(0, 24)), true);
  return slot;
}

type SlotState =
  { kind: 'valid'; sequence: number; words: Uint32Array } | { kind: 'empty' } | { kind: 'invalid'; reason: string; headerSequence: number | undefined };

/** The sequence in a slot header whose own checksum passes (payload unchecked), if any. */
function headerSequence(slot: Uint8Array, segmentIndex: number): number | undefined {
  const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  if (view.getUint32(0, true) !== slotMagic || view.getUint32(24, true) !== crc32(slot.subarray(0, 24))) return undefined;
  if (view.getUint32(4, true) !== segmentIndex) return undefined;
  return view.getUint32(8, true) + view.getUint32(12, true) * 2 ** 32;
}

function decodeSlot(slot: Uint8Array, segmentIndex: number, wordCount: number): SlotState {
  if (slot.every((byte) => byte === 0)) return { kind: 'empty' };
  const invalid = (reason: string): SlotState => ({ kind: 'invalid', reason, headerSequence: headerSequence(slot, segmentIndex) });
  const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  if (view.getUint32(0, true) !== slotMagic) return invalid('bad slot magic');
  if (view.getUint32(24, true) !== crc32(slot.subarray(0, 24))) return invalid('slot header checksum mismatch');
  if (view.getUint32(4, true) !== segmentIndex) return invalid('slot belongs to another segment');
  // Bytes 28‥31 are outside both checksums; they are written as zero, so damage there shows too.
  if (view.getUint32(28, true) !== 0) return invalid('slot header padding not zero');
  const payloadBytes = view.getUint32(16, true);
  if (payloadBytes !== wordCount * 4) return invalid('slot payload length mismatch');
  if (view.getUint32(20, true) !== crc32(slot.subarray(bitmapSlotHeaderBytes))) return invalid('slot payload checksum mismatch');
  const payload = slot.subarray(bitmapSlotHeaderBytes, bitmapSlotHeaderBytes + payloadBytes);
  const sequence = view.getUint32(8, true) + view.getUint32(12, true) * 2 ** 32;
  return { kind: 'valid', sequence, words: new Uint32Array(payload.slice().buffer) };
}

function slotSequence(state: SlotState): number {
  if (state.kind === 'valid') return state.sequence;
  return state.kind === 'invalid' ? (state.headerSequence ?? 0) : 0;
}

/**
 * Chooses a segment's content from its two slots. Only two outcomes are trusted: both slots
 * valid (the higher sequence wins) or one valid with the creation sequence and the other never
 * written. Any slot that fails verification makes the whole segment all-set: a torn destage
 * and later media corruption look identical on disk, and trusting the older slot in the second
 * case could clear a bit that was durably set. A blank slot beside a destaged one (sequence
 * above the creation sequence) is damage too: a healthy file never has one, and a zeroed or
 * re-extended page would otherwise let a stale image win. See docs/bitmap-format.md.
 */
function chooseSlot(a: SlotState, b: SlotState): { slot: 0 | 1; sequence: number; words: Uint32Array } | { reason: string } {
  if (a.kind === 'invalid') return { reason: `slot A: ${a.reason}` };
  if (b.kind === 'invalid') return { reason: `slot B: ${b.reason}` };
  if (a.kind === 'valid' && b.kind === 'valid') {
    if (a.sequence > b.sequence) return { slot: 0, sequence: a.sequence, words: a.words };
    if (b.sequence > a.sequence) return { slot: 1, sequence: b.sequence, words: b.words };
    return { reason: 'both slots carry the same sequence' };
  }
  const only = a.kind === 'valid' ? { slot: 0 as const, state: a } : b.kind === 'valid' ? { slot: 1 as const, state: b } : undefined;
  if (!only) return { reason: 'both slots empty' };
  if (only.state.sequence !== creationSequence) return { reason: `slot ${only.slot === 0 ? 'B' : 'A'} blank beside a destaged slot` };
  return { slot: only.slot, sequence: only.state.sequence, words: only.state.words };
}

/**
 * How the next destage of a segment after recovery makes the file whole again: rewrite only
 * the damaged slot when the other one is valid, otherwise both (A, a sync, then B, so a crash
 * in between never leaves a stale slot beside a blank one).
 */
function healPlan(a: SlotState, b: SlotState, truncated: boolean): 0 | 1 | typeof bothSlots {
  if (!truncated && a.kind === 'valid' && b.kind === 'invalid') return 1;
  if (!truncated && b.kind === 'valid' && a.kind === 'invalid') return 0;
  return bothSlots;
}

export interface PersistentBitmapStats {
  /** Destage passes that wrote at least one segment and synced. */
  destages: number;
  /** Segment slots written in all (passes that failed included). */
  segmentWrites: number;
  /** Destage passes that failed (a write or the sync); their segments stay dirty. */
  failedDestages: number;
}

/** Where each segment's next image goes: slot 0, 1 or both (healing), and with which sequence. */
interface SlotPlan {
  readonly nextSlot: Uint8Array;
  readonly nextSequence: Float64Array;
}

/** What load() found in one segment's slots. */
interface SegmentLoad {
  readonly words: Uint32Array | undefined;
  readonly reason: string | undefined;
  readonly nextSlot: 0 | 1 | typeof bothSlots;
  /** Sequence of the chosen slot, or the highest sequence readable in the segment's headers. */
  readonly sequence: number;
}

async function loadSegment(file: BitmapFile, geometry: Geometry, segmentIndex: number, fileBytes: number, pair: Uint8Array): Promise<SegmentLoad> {
  pair.fill(0);
  await file.read(pair, slotOffset(segmentIndex, 0));
  const wordCount = segmentWordCount(geometry.bitCount, segmentIndex);
  const a = decodeSlot(pair.subarray(0, bitmapSlotBytes), segmentIndex, wordCount);
  const b = decodeSlot(pair.subarray(bitmapSlotBytes), segmentIndex, wordCount);
  const truncated = slotOffset(segmentIndex + 1, 0) > fileBytes;
  const choice = truncated ? { reason: 'file truncated' } : chooseSlot(a, b);
  const sequence = Math.max(slotSequence(a), slotSequence(b));
  if ('reason' in choice) return { words: undefined, reason: choice.reason, nextSlot: healPlan(a, b, truncated), sequence };
  return { words: choice.words, reason: undefined, nextSlot: (1 - choice.slot) as 0 | 1, sequence: choice.sequence };
}

/**
 * The in-memory bits (`bits`) are the working copy; `destage()` makes them durable. A caller
 * that needs a bit durable before acknowledging something (seed 003: a host write) awaits
 * `ensureDurable()` after setting it. Concurrent destage calls are coalesced (group commit).
 */
export class PersistentBitmap {
  readonly bits: Bitset;
  /**
   * A lower bound of what a crash now would leave: the images of the last completed destage,
   * intersected with the image of every pass since that failed (its writes may still reach
   * the disk, and a reload may then pick them).
   */
  private readonly durableWords: Uint32Array;
  private readonly dirtySegments = new Set<number>();
  private readonly plan: SlotPlan;
  private inflight: Promise<number> | undefined;
  /** Segments the running destage pass writes (with the images it took). */
  /**
   * The images the pass in flight is writing, by segment. Once it ends, a bit of those
   * segments is durable only if it is set in the image (success: the image is durable;
   * failure: only what both images hold counts).
   */
  private inflightImages = new Map<number, Uint32Array>();
  private closed = false;
  /** Set for bitmaps opened only to read (inspection): they never write, not even to heal. */
  private readOnly = false;
  readonly stats: PersistentBitmapStats = { destages: 0, segmentWrites: 0, failedDestages: 0 };

  private constructor(
    private readonly file: BitmapFile,
    readonly tag: string,
    bits: Bitset,
    plan: SlotPlan,
  ) {
    this.bits = bits;
    this.durableWords = bits.words.slice();
    this.plan = plan;
  }

  get path(): string {
    return this.file.path;
  }

  get bitCount(): number {
    return this.bits.bitCount;
  }

  get segmentCount(): number {
    return this.plan.nextSlot.length;
  }

  /**
   * Initialises `file` (empty, opened for writing) as a bitmap of `bitCount` clear bits and
   * syncs it. Callers create the file under a temporary name and rename it into place.
   */
  static async create(file: BitmapFile, bitCount: number, tag: string): Promise<PersistentBitmap> {
    assertCount(bitCount, 'bitCount');
    const segmentCount = segmentCountFor(bitCount);
    await file.write(encodeSuperblock({ bitCount, segmentCount, tag }), 0);
    const bits = new Bitset(bitCount);
    for (let s = 0; s < segmentCount; s++) {
      await file.write(encodeSlot(s, creationSequence, segmentWords(bits, s)), slotOffset(s, 0));
    }
    // Slot B of the last segment is written as zeros so the file has its full length.
    await file.write(new Uint8Array(bitmapSlotBytes), slotOffset(segmentCount - 1, 1));
    await file.sync();
    const plan = { nextSlot: new Uint8Array(segmentCount).fill(1), nextSequence: new Float64Array(segmentCount).fill(creationSequence + 1) };
    return new PersistentBitmap(file, tag, bits, plan);
  }

  /** Loads a bitmap. Segments that fail verification come back all-set and are reported. */
  static async load(file: BitmapFile, options: { readOnly?: boolean } = {}): Promise<{ bitmap: PersistentBitmap; report: BitmapLoadReport }> {
    const superblock = new Uint8Array(bitmapSuperblockBytes);
    const headerBytes = await file.read(superblock, 0);
    const geometry = decodeSuperblock(superblock.subarray(0, headerBytes), file.path);
    const bits = new Bitset(geometry.bitCount);
    const plan = { nextSlot: new Uint8Array(geometry.segmentCount), nextSequence: new Float64Array(geometry.segmentCount) };
    const recovered: SegmentRecovery[] = [];
    const pair = new Uint8Array(bitmapSlotBytes * 2);
    const fileBytes = await file.sizeBytes();
    let highestSequence = creationSequence;
    for (let s = 0; s < geometry.segmentCount; s++) {
      const segment = await loadSegment(file, geometry, s, fileBytes, pair);
      highestSequence = Math.max(highestSequence, segment.sequence);
      plan.nextSlot[s] = segment.nextSlot;
      plan.nextSequence[s] = segment.sequence + 1;
      if (segment.words) {
        bits.copyWordsFrom(segment.words, s * wordsPerSegment);
      } else {
        recovered.push({ segmentIndex: s, reason: segment.reason! });
        bits.setRange(s * bitmapBitsPerSegment, Math.min(geometry.bitCount, (s + 1) * bitmapBitsPerSegment));
      }
    }
    // A recovered segment's next image must outrank anything a surviving slot holds, whatever
    // the recoveries before this one did: above every sequence readable anywhere in the file.
    for (const r of recovered) plan.nextSequence[r.segmentIndex] = highestSequence + 1;
    const bitmap = new PersistentBitmap(file, geometry.tag, bits, plan);
    bitmap.readOnly = options.readOnly ?? false;
    // Recovered segments are rewritten at the next destage so the file heals.
    for (const r of recovered) bitmap.dirtySegments.add(r.segmentIndex);
    return { bitmap, report: { recovered } };
  }

  /** Marks the segments holding bits [from, to) as changed; call after editing `bits`. */
  markChanged(from: number, to = from + 1): void {
    if (!(0 <= from && from <= to && to <= this.bitCount)) invariantViolated(`changed range [${from}, ${to}) within bitmap`);
    if (from === to) return;
    const first = Math.floor(from / bitmapBitsPerSegment);
    const last = Math.floor((to - 1) / bitmapBitsPerSegment);
    for (let s = first; s <= last; s++) this.dirtySegments.add(s);
  }

  set(index: number): void {
    if (!this.bits.get(index)) {
      this.bits.set(index);
      this.markChanged(index);
    }
  }

  clear(index: number): void {
    if (this.bits.get(index)) {
      this.bits.clear(index);
      this.markChanged(index);
    }
  }

  setRange(from: number, to: number): void {
    if (!this.bits.allSet(from, to)) {
      this.bits.setRange(from, to);
      this.markChanged(from, to);
    }
  }

  clearRange(from: number, to: number): void {
    if (this.bits.anySet(from, to)) {
      this.bits.clearRange(from, to);
      this.markChanged(from, to);
    }
  }

  /**
   * Sets bits [from, to) and resolves once they are durable: what a write hook does so its
   * map covers a region before the region's data lands (realization, change maps).
   */
  async setRangeDurable(from: number, to: number): Promise<void> {
    this.setRange(from, to);
    await this.ensureDurable(from, to);
  }

  /**
   * setRangeDurable's fast path (every write through a hook): true when every bit of [from, to)
   * is set and durable already (nothing to do), false when setRangeDurable must run.
   */
  rangeSetDurably(from: number, to: number): boolean {
    return this.bits.allSet(from, to) && this.durableNow(from, to);
  }

  /**
   * True when ensureDurable(from, to) would resolve at once: every bit set in memory in
   * [from, to) is durable, and stays so whatever the pass in flight does (its image holds it).
   */
  durableNow(from: number, to: number): boolean {
    // Hot path (every tracked write): the message is built only when the check fails.
    if (!(0 <= from && from <= to && to <= this.bitCount)) invariantViolated(`range [${from}, ${to}) within bitmap`);
    const images = this.inflightImages;
    for (let i = this.bits.nextSetBit(from, to); i !== -1; i = i + 1 < to ? this.bits.nextSetBit(i + 1, to) : -1) {
      if (!this.durableGet(i)) return false;
      // A pass in flight that snapshotted this segment without the bit would clear it on disk.
      const segment = Math.floor(i / bitmapBitsPerSegment);
      const image = images.size === 0 ? undefined : images.get(segment);
      if (image && (image[(i - segment * bitmapBitsPerSegment) >>> 5]! & (1 << (i & 31))) === 0) return false;
    }
    return true;
  }

  get dirty(): boolean {
    return this.dirtySegments.size > 0;
  }

  /** True when bit `index` is set in the durable image (survives a crash now). */
  durableGet(index: number): boolean {
    if (!(index >= 0 && index < this.bitCount)) invariantViolated(`bit ${index} within bitmap`);
    return (this.durableWords[index >>> 5]! & (1 << (index & 31))) !== 0;
  }

  /** A copy of the durable image. */
  durableBits(): Bitset {
    return new Bitset(this.bitCount, this.durableWords.slice());
  }

  /**
   * Resolves when every bit set in memory in [from, to) is durable and no destage pass in
   * flight can overwrite it with an older image. This is what "acknowledge only once the bit
   * is durable" means under concurrency: a pass that snapshotted before the bit was set
   * would otherwise clear it on disk after the caller was told it was safe.
   */
  async ensureDurable(from: number, to: number): Promise<void> {
    // Hot path (every tracked write): the message is built only when the check fails.
    if (!(0 <= from && from <= to && to <= this.bitCount)) invariantViolated(`range [${from}, ${to}) within bitmap`);
    for (let attempt = 0; ; attempt++) {
      if (attempt >= 10_000) invariantViolated('ensureDurable converges');
      if (this.durableNow(from, to)) return;
      // Waits for a pass in flight, then writes what changed since (if anything did).
      await this.destage();
    }
  }

  /**
   * Writes every changed segment to its inactive slot, then syncs once. Resolves with the
   * number of segments written when everything changed before the call is durable.
   */
  async destage(): Promise<number> {
    if (this.closed) invariantViolated('destage after close');
    if (this.readOnly) invariantViolated(`destage of ${this.path}, opened read-only`);
    // A pass already running may have snapshotted before our changes: wait, then run our own.
    while (this.inflight) await this.inflight.catch(() => 0);
    if (this.dirtySegments.size === 0) return 0;
    this.inflight = this.destagePass();
    try {
      return await this.inflight;
    } finally {
      this.inflight = undefined;
    }
  }

  private async destagePass(): Promise<number> {
    const segments = [...this.dirtySegments].sort((a, b) => a - b);
    this.dirtySegments.clear();
    const images = segments.map((s) => segmentWords(this.bits, s).slice());
    this.inflightImages = new Map(segments.map((s, i) => [s, images[i]!]));
    try {
      await this.writeImages(segments, images);
    } catch (error) {
      this.passFailed(segments, images);
      throw error;
    } finally {
      this.inflightImages = new Map();
    }
    this.passSucceeded(segments, images);
    return segments.length;
  }

  /** Writes each image to its planned slot and syncs; segments being healed get A, a sync, then B. */
  private async writeImages(segments: readonly number[], images: readonly Uint32Array[]): Promise<void> {
    const healing: number[] = [];
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      const slot = this.plan.nextSlot[s] === bothSlots ? 0 : (this.plan.nextSlot[s] as 0 | 1);
      if (this.plan.nextSlot[s] === bothSlots) healing.push(i);
      await this.file.write(encodeSlot(s, this.plan.nextSequence[s]!, images[i]!), slotOffset(s, slot));
      this.stats.segmentWrites += 1;
    }
    if (healing.length > 0) {
      await this.file.sync();
      for (const i of healing) {
        const s = segments[i]!;
        await this.file.write(encodeSlot(s, this.plan.nextSequence[s]! + 1, images[i]!), slotOffset(s, 1));
        this.stats.segmentWrites += 1;
      }
    }
    await this.file.sync();
  }

  private passSucceeded(segments: readonly number[], images: readonly Uint32Array[]): void {
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      const healed = this.plan.nextSlot[s] === bothSlots;
      // After healing, B holds the newer image (sequence + 1), so A is next.
      this.plan.nextSequence[s] = this.plan.nextSequence[s]! + (healed ? 2 : 1);
      this.plan.nextSlot[s] = healed ? 0 : 1 - this.plan.nextSlot[s]!;
      this.durableWords.set(images[i]!, s * wordsPerSegment);
    }
    this.stats.destages += 1;
  }

  /**
   * A failed pass may still have put its images on disk (writeback continues after a failed
   * fsync), and a reload would then pick them: what survives a crash is either the old image
   * or this one, so only their intersection counts as durable. The segments stay dirty, and
   * the next pass writes the same slots with the same sequences: the slot that must not be
   * touched is still the one holding the last image that was durably synced.
   */
  private passFailed(segments: readonly number[], images: readonly Uint32Array[]): void {
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      const image = images[i]!;
      const base = s * wordsPerSegment;
      for (let w = 0; w < image.length; w++) this.durableWords[base + w]! &= image[w]!;
      this.dirtySegments.add(s);
    }
    this.stats.failedDestages += 1;
  }

  /** Destages what is pending, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.readOnly) await this.destage();
    } finally {
      this.closed = true;
      await this.file.close();
    }
  }
}

function segmentWordCount(bitCount: number, segmentIndex: number): number {
  const totalWords = Math.ceil(bitCount / 32);
  return Math.max(0, Math.min(wordsPerSegment, totalWords - segmentIndex * wordsPerSegment));
}

function segmentWords(bits: Bitset, segmentIndex: number): Uint32Array {
  const from = segmentIndex * wordsPerSegment;
  return bits.words.subarray(from, from + segmentWordCount(bits.bitCount, segmentIndex));
}
