// Bitset: a fixed-length set of region indexes over 32-bit words, with word-level scans.

import { assert, assertCount, invariantViolated } from '../assert';
import { regionCountMax } from '../constants';

/** Number of set bits in a 32-bit word (SWAR popcount). */
export function popcount32(word: number): number {
  let v = word >>> 0;
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Index of the lowest set bit of a non-zero word. */
function lowestBit(word: number): number {
  return 31 - Math.clz32(word & -word);
}

/** Mask of bits [from, to) within one word, 0 <= from < to <= 32. */
function wordMask(fromBit: number, toBit: number): number {
  const high = toBit === 32 ? 0xffffffff : (1 << toBit) - 1;
  return (high & ~((1 << fromBit) - 1)) >>> 0;
}

export interface BitRun {
  /** First set bit of the run. */
  readonly start: number;
  /** One past the last set bit of the run. */
  readonly end: number;
}

/**
 * Word arithmetic below (`index >>> 5`, `(w << 5)`) is 32-bit: exact because bitCount is at
 * most regionCountMax (< 2^31), so every index and every `w << 5` is a positive int32.
 */
export class Bitset {
  readonly bitCount: number;
  readonly words: Uint32Array;

  constructor(bitCount: number, words?: Uint32Array) {
    assertCount(bitCount, 'bitCount');
    if (bitCount > regionCountMax) invariantViolated(`bitset of ${bitCount} bits exceeds regionCountMax (${regionCountMax})`);
    this.bitCount = bitCount;
    const wordCount = Math.ceil(bitCount / 32);
    if (words) {
      assert(words.length === wordCount, `words length ${words.length} matches ${bitCount} bits`);
      this.words = words;
      this.maskTail();
    } else {
      this.words = new Uint32Array(wordCount);
    }
  }

  static full(bitCount: number): Bitset {
    const bits = new Bitset(bitCount);
    bits.setRange(0, bitCount);
    return bits;
  }

  /** Clears the bits past bitCount in the last word, so scans and popcounts never see them. */
  private maskTail(): void {
    const tailBits = this.bitCount % 32;
    if (tailBits !== 0) this.words[this.words.length - 1]! &= wordMask(0, tailBits);
  }

  private checkIndex(index: number): void {
    if (!(Number.isInteger(index) && index >= 0 && index < this.bitCount)) invariantViolated(`bit ${index} within 0..${this.bitCount - 1}`);
  }

  private checkRange(from: number, to: number): void {
    if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= this.bitCount))
      invariantViolated(`range [${from}, ${to}) within ${this.bitCount} bits`);
  }

  get(index: number): boolean {
    this.checkIndex(index);
    return (this.words[index >>> 5]! & (1 << (index & 31))) !== 0;
  }

  set(index: number): void {
    this.checkIndex(index);
    this.words[index >>> 5]! |= 1 << (index & 31);
  }

  clear(index: number): void {
    this.checkIndex(index);
    this.words[index >>> 5]! &= ~(1 << (index & 31));
  }

  /** Sets bits [from, to). */
  setRange(from: number, to: number): void {
    this.applyRange(from, to, (word, mask) => (word | mask) >>> 0);
  }

  /** Clears bits [from, to). */
  clearRange(from: number, to: number): void {
    this.applyRange(from, to, (word, mask) => (word & ~mask) >>> 0);
  }

  private applyRange(from: number, to: number, apply: (word: number, mask: number) => number): void {
    this.checkRange(from, to);
    if (from === to) return;
    const firstWord = from >>> 5;
    const lastWord = (to - 1) >>> 5;
    for (let w = firstWord; w <= lastWord; w++) {
      const lo = w === firstWord ? from & 31 : 0;
      const hi = w === lastWord ? ((to - 1) & 31) + 1 : 32;
      this.words[w] = apply(this.words[w]!, wordMask(lo, hi));
    }
  }

  /** Number of set bits in [from, to) (the whole set by default). */
  popcount(from = 0, to = this.bitCount): number {
    this.checkRange(from, to);
    if (from === to) return 0;
    const firstWord = from >>> 5;
    const lastWord = (to - 1) >>> 5;
    let count = 0;
    for (let w = firstWord; w <= lastWord; w++) {
      const lo = w === firstWord ? from & 31 : 0;
      const hi = w === lastWord ? ((to - 1) & 31) + 1 : 32;
      const word = lo === 0 && hi === 32 ? this.words[w]! : this.words[w]! & wordMask(lo, hi);
      if (word !== 0) count += popcount32(word);
    }
    return count;
  }

  /** True when every bit in [from, to) is set. An empty range is all set. */
  allSet(from: number, to: number): boolean {
    return this.popcount(from, to) === to - from;
  }

  /** True when any bit in [from, to) is set. */
  anySet(from = 0, to = this.bitCount): boolean {
    return this.nextSetBit(from, to) !== -1;
  }

  /** The lowest set bit at or after `from` and before `to`, or -1. Scans whole words. */
  nextSetBit(from: number, to = this.bitCount): number {
    if (!(Number.isInteger(from) && from >= 0 && to <= this.bitCount)) invariantViolated(`scan start ${from} / end ${to} within ${this.bitCount} bits`);
    if (from >= to) return -1;
    const words = this.words;
    let w = from >>> 5;
    let word = words[w]! & ~((1 << (from & 31)) - 1);
    const lastWord = (to - 1) >>> 5;
    for (;;) {
      if (word !== 0) {
        const index = (w << 5) + lowestBit(word);
        return index < to ? index : -1;
      }
      if (++w > lastWord) return -1;
      word = words[w]!;
    }
  }

  /** The lowest clear bit at or after `from` and before `to`, or -1. Scans whole words. */
  nextClearBit(from: number, to = this.bitCount): number {
    if (!(Number.isInteger(from) && from >= 0 && to <= this.bitCount)) invariantViolated(`scan start ${from} / end ${to} within ${this.bitCount} bits`);
    if (from >= to) return -1;
    const words = this.words;
    let w = from >>> 5;
    let word = ~words[w]! & ~((1 << (from & 31)) - 1);
    const lastWord = (to - 1) >>> 5;
    for (;;) {
      if (word !== 0) {
        const index = (w << 5) + lowestBit(word);
        return index < to ? index : -1;
      }
      if (++w > lastWord) return -1;
      word = ~words[w]!;
    }
  }

  /** Maximal runs of set bits, in order. */
  *runs(from = 0, to = this.bitCount): Generator<BitRun> {
    let start = this.nextSetBit(from, to);
    while (start !== -1) {
      const clear = this.nextClearBit(start, to);
      const end = clear === -1 ? to : clear;
      yield { start, end };
      start = end < to ? this.nextSetBit(end, to) : -1;
    }
  }

  /** Indexes of set bits, in order. */
  *indexes(from = 0, to = this.bitCount): Generator<number> {
    for (let i = this.nextSetBit(from, to); i !== -1; i = i + 1 < to ? this.nextSetBit(i + 1, to) : -1) yield i;
  }

  private checkSameLength(other: Bitset): void {
    assert(other.bitCount === this.bitCount, `bitsets of equal length (${this.bitCount} vs ${other.bitCount})`);
  }

  /** this := this ∪ other. */
  unionWith(other: Bitset): this {
    this.checkSameLength(other);
    for (let w = 0; w < this.words.length; w++) this.words[w]! |= other.words[w]!;
    return this;
  }

  /** this := this ∩ other. */
  intersectWith(other: Bitset): this {
    this.checkSameLength(other);
    for (let w = 0; w < this.words.length; w++) this.words[w]! &= other.words[w]!;
    return this;
  }

  /** this := this \ other. */
  subtract(other: Bitset): this {
    this.checkSameLength(other);
    for (let w = 0; w < this.words.length; w++) this.words[w]! &= ~other.words[w]!;
    return this;
  }

  /** True when every bit set here is also set in `other`. */
  isSubsetOf(other: Bitset): boolean {
    this.checkSameLength(other);
    for (let w = 0; w < this.words.length; w++) if ((this.words[w]! & ~other.words[w]!) !== 0) return false;
    return true;
  }

  equals(other: Bitset): boolean {
    if (other.bitCount !== this.bitCount) return false;
    for (let w = 0; w < this.words.length; w++) if (this.words[w] !== other.words[w]) return false;
    return true;
  }

  clone(): Bitset {
    return new Bitset(this.bitCount, this.words.slice());
  }

  /** Copies bits [from, from + source.bitCount) from `source` (word-aligned `from`). */
  copyWordsFrom(source: Uint32Array, fromWord: number): void {
    assert(fromWord >= 0 && fromWord + source.length <= this.words.length, 'copied words fit');
    this.words.set(source, fromWord);
    this.maskTail();
  }

  /** Serialises as little-endian bytes: bit i is bit (i % 8) of byte i / 8. */
  toBytes(): Uint8Array {
    const bytes = new Uint8Array(Math.ceil(this.bitCount / 8));
    const view = new DataView(bytes.buffer);
    const fullWords = Math.floor(bytes.length / 4);
    for (let w = 0; w < fullWords; w++) view.setUint32(w * 4, this.words[w]!, true);
    for (let b = fullWords * 4; b < bytes.length; b++) bytes[b] = (this.words[b >>> 2]! >>> ((b & 3) * 8)) & 0xff;
    return bytes;
  }

  static fromBytes(bitCount: number, bytes: Uint8Array): Bitset {
    assert(bytes.length === Math.ceil(bitCount / 8), `${bytes.length} bytes hold ${bitCount} bits`);
    const bits = new Bitset(bitCount);
    for (let b = 0; b < bytes.length; b++) bits.words[b >>> 2]! |= bytes[b]! << ((b & 3) * 8);
    bits.maskTail();
    return bits;
  }

  /** Union of several bitsets of one length, as a new bitset. */
  static union(...sets: Bitset[]): Bitset {
    assert(sets.length > 0, 'union of at least one bitset');
    const result = sets[0]!.clone();
    for (const other of sets.slice(1)) result.unionWith(other);
    return result;
  }
}
