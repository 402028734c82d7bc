// MOOS tracking (seed 003): a volatile OOS bitmap of regions out of sync, and a persisted
// "maybe out of sync" superset kept durable before any host write is acknowledged.

import { assert, assertCount, invariantViolated } from '../assert';
import { bitmapBitsPerSegment, moosPredictMax } from '../constants';
import { Bitset } from './bitset';
import type { PersistentBitmap } from './persistent-bitmap';

/**
 * A run of writes the predictor follows: the regions it predicted for it most recently
 * (`[lo, hi)`, kept in MOOS while the stream lives) and its current window.
 */
interface Stream {
  lo: number;
  hi: number;
  windowRegions: number;
  /** Moving towards higher regions (the usual case), or lower. */
  forward: boolean;
}

/** A stream's next window: double its last, up to `windowMax`. */
function grownWindow(stream: Stream, windowMax: number): number {
  return Math.min(windowMax, Math.max(1, stream.windowRegions * 2));
}

/** Streams followed at once (the most recently extended first); a new one evicts the oldest. */
export const moosStreamsMax = 4;

export interface MoosPredictorOptions {
  /** In-memory OOS to start from (default: empty). */
  readonly oos?: Bitset;
  /**
   * How far a stream's window may grow (regions). Default: the predict window N (a fixed
   * window, seed 003's embodiment). Larger: a miss within this many regions of a stream's
   * predicted regions continues it and doubles its window up to this bound, so sequential
   * writers (and clients that send a burst in descending order) destage once per window, not
   * once per N + 1 regions; a crash then resends at most this many more regions per stream.
   */
  readonly streamWindowMaxRegions?: number;
}

/**
 * The predictor owns the in-memory OOS bits and the MOOS PersistentBitmap. For a write to
 * regions [first, last]: set OOS; if MOOS already holds those bits durably, the write may be
 * acknowledged at once. Otherwise set MOOS [first, last + N] (the predicted next writes) —
 * more when the write continues a stream (see `streamWindowMaxRegions`) — clear, in the
 * segments touched, MOOS bits absent from OOS (regions already shipped) outside the live
 * streams' predictions, and destage those segments before acknowledging. After a crash
 * MOOS ⊇ OOS at failure.
 */
export class MoosPredictor {
  readonly oos: Bitset;
  /**
   * Regions taken for shipping and not yet durable on the secondary: out of OOS (a write
   * re-marks them), still covered by MOOS — a crash before the secondary holds them resends.
   */
  readonly inFlight: Bitset;
  private readonly moos: PersistentBitmap;
  /** N: a write to region E marks E..E+N; may change while tracking (the next predictions use it). */
  predictRegions: number;
  private readonly streamWindowMaxRegions: number;
  /** Most recently extended first; at most `moosStreamsMax`. */
  private streams: Stream[] = [];
  /**
   * Whether this process changed OOS (a write recorded, a region shipped, taken or settled).
   * Only then may `compact` write its view back: a process that only looked (a `pair show`
   * beside a shipping one) holds the MOOS as it was when it opened, and writing that back
   * could drop bits another process made durable since (docs/home-layout.md).
   */
  private changed = false;

  constructor(moos: PersistentBitmap, predictRegions: number, options: MoosPredictorOptions = {}) {
    assertCount(predictRegions, 'predictRegions');
    assert(predictRegions <= moosPredictMax, `predict window ${predictRegions} <= ${moosPredictMax}`);
    const streamWindowMaxRegions = options.streamWindowMaxRegions ?? predictRegions;
    assertCount(streamWindowMaxRegions, 'streamWindowMaxRegions');
    this.moos = moos;
    this.predictRegions = predictRegions;
    this.streamWindowMaxRegions = streamWindowMaxRegions;
    this.oos = options.oos ?? new Bitset(moos.bitCount);
    this.inFlight = new Bitset(moos.bitCount);
    assert(this.oos.bitCount === moos.bitCount, 'OOS and MOOS have one length');
  }

  get moosBits(): Bitset {
    return this.moos.bits;
  }

  get regionCount(): number {
    return this.oos.bitCount;
  }

  /**
   * Records a host write to regions [firstRegion, lastRegion]. Resolves when the write may be
   * acknowledged: every one of its regions is set in the durable MOOS image.
   */
  async recordWrite(firstRegion: number, lastRegion: number): Promise<void> {
    // Hot path (every host write): messages are built only when a check fails.
    if (!(0 <= firstRegion && firstRegion <= lastRegion && lastRegion < this.regionCount))
      invariantViolated(`write regions [${firstRegion}, ${lastRegion}] within volume`);
    const end = lastRegion + 1;
    this.changed = true;
    this.oos.setRange(firstRegion, end);
    if (!this.moos.bits.allSet(firstRegion, end)) this.predict(firstRegion, end);
    this.readAhead(firstRegion, end);
    // Bits may be set in memory by a concurrent write whose destage is still running, or a
    // running destage may carry an image from before our bits: ensureDurable covers both.
    await this.moos.ensureDurable(firstRegion, end);
    if (!this.oosDurable(firstRegion, end)) invariantViolated('OOS ⊆ durable MOOS for an acknowledged write');
  }

  /**
   * recordWrite's fast path (every host write): when MOOS holds the write's regions durably
   * already, records the write (sets OOS) and answers true — it may be acknowledged at once.
   * False: nothing recorded; call recordWrite.
   */
  tryRecordWrite(firstRegion: number, lastRegion: number): boolean {
    if (!(0 <= firstRegion && firstRegion <= lastRegion && lastRegion < this.regionCount))
      invariantViolated(`write regions [${firstRegion}, ${lastRegion}] within volume`);
    const end = lastRegion + 1;
    if (!this.moos.rangeSetDurably(firstRegion, end)) return false;
    this.changed = true;
    this.oos.setRange(firstRegion, end);
    this.readAhead(firstRegion, end);
    return true;
  }

  /**
   * A write within a live stream's prediction, past the middle of its window in the direction
   * it moves: the stream's next window is marked now and destaged in the background, so a
   * sequential writer finds its regions durable when it gets there instead of waiting for a
   * pass. (A failed background pass leaves its segments dirty: the write that needs them
   * destages again, and fails if it must.)
   */
  private readAhead(from: number, end: number): void {
    const windowMax = this.windowMaxRegions();
    if (windowMax <= this.predictRegions) return;
    const stream = this.streams.find((s) => from >= s.lo && end <= s.hi);
    if (!stream) return;
    const half = stream.windowRegions >>> 1;
    const windowRegions = grownWindow(stream, windowMax);
    let range: [number, number];
    if (stream.forward) {
      if (stream.hi >= this.regionCount || end + half < stream.hi) return;
      range = [stream.hi, Math.min(this.regionCount, stream.hi + windowRegions)];
    } else {
      if (stream.lo <= 0 || from - half > stream.lo) return;
      range = [Math.max(0, stream.lo - windowRegions), stream.lo];
    }
    this.keepInStream(stream, range, windowRegions, stream.forward);
    this.mark(range[0], range[1]);
    void this.moos.destage().catch(() => undefined);
  }

  private windowMaxRegions(): number {
    return this.predictRegions === 0 ? 0 : Math.max(this.predictRegions, this.streamWindowMaxRegions);
  }

  /** The stream's kept regions grow by `range` and keep its last two windows' worth: what it was predicted to write next. */
  private keepInStream(stream: Stream, range: readonly [number, number], windowRegions: number, forward: boolean): void {
    const lo = Math.min(stream.lo, range[0]);
    const hi = Math.max(stream.hi, range[1]);
    const keep = 2 * this.windowMaxRegions();
    stream.lo = forward ? Math.max(lo, hi - keep) : lo;
    stream.hi = forward ? hi : Math.min(hi, lo + keep);
    stream.windowRegions = windowRegions;
    stream.forward = forward;
  }

  /** Every region of [from, end) still out of sync is set in the durable MOOS image. */
  private oosDurable(from: number, end: number): boolean {
    for (let i = this.oos.nextSetBit(from, end); i !== -1; i = i + 1 < end ? this.oos.nextSetBit(i + 1, end) : -1) {
      if (!this.moos.durableGet(i)) return false;
    }
    return true;
  }

  private predict(from: number, end: number): void {
    this.mark(...this.predictedRange(from, end));
  }

  /**
   * Sets MOOS [from, to) and marks its segments for the next destage. Those segments are
   * written anyway: their bits of regions no longer out of sync go (outside what the live
   * streams were predicted to write next).
   */
  private mark(predictedFrom: number, predictedEnd: number): void {
    const firstSegment = Math.floor(predictedFrom / bitmapBitsPerSegment);
    const lastSegment = Math.floor((predictedEnd - 1) / bitmapBitsPerSegment);
    // These segments are destaged anyway: drop MOOS bits whose regions are no longer OOS.
    // `>>> 5` is exact: bit counts stay below 2^31 (regionCountMax), so these stay below 2^32.
    const moosWords = this.moos.bits.words;
    const oosWords = this.oos.words;
    const inFlightWords = this.inFlight.words;
    const segmentFrom = firstSegment * bitmapBitsPerSegment;
    const segmentEnd = Math.min(this.regionCount, (lastSegment + 1) * bitmapBitsPerSegment);
    const wordFrom = segmentFrom >>> 5;
    const wordTo = Math.min(moosWords.length, ((lastSegment + 1) * bitmapBitsPerSegment) >>> 5);
    for (let w = wordFrom; w < wordTo; w++) moosWords[w]! &= oosWords[w]! | inFlightWords[w]!;
    // ...except what the live streams were predicted to write next (set before, set again).
    for (const stream of this.streams) {
      const lo = Math.max(stream.lo, segmentFrom);
      const hi = Math.min(stream.hi, segmentEnd);
      if (lo < hi) this.moos.bits.setRange(lo, hi);
    }
    this.moos.bits.setRange(predictedFrom, predictedEnd);
    this.moos.markChanged(segmentFrom, segmentEnd);
  }

  /**
   * The regions to mark for a write to [from, end) that missed MOOS: the write and the N
   * after it, or, when it continues a live stream, the stream's next window — in the
   * direction it moves, with the gap between its last prediction and this write filled.
   */
  private predictedRange(from: number, end: number): [number, number] {
    const windowMax = this.windowMaxRegions();
    const fixed: [number, number] = [from, Math.min(this.regionCount, end + this.predictRegions)];
    if (windowMax <= this.predictRegions) return fixed;
    const index = this.streams.findIndex((s) => from < s.hi + windowMax && end > s.lo - windowMax);
    if (index === -1) {
      this.streams.unshift({ lo: fixed[0], hi: fixed[1], windowRegions: this.predictRegions, forward: true });
      if (this.streams.length > moosStreamsMax) this.streams.pop();
      return fixed;
    }
    const stream = this.streams[index]!;
    this.streams.splice(index, 1);
    this.streams.unshift(stream);
    const windowRegions = grownWindow(stream, windowMax);
    const forward = from >= stream.lo;
    const range: [number, number] = forward
      ? [Math.min(from, stream.hi), Math.min(this.regionCount, end + windowRegions)]
      : [Math.max(0, from - windowRegions), Math.max(end, stream.lo)];
    this.keepInStream(stream, range, windowRegions, forward);
    return range;
  }

  /**
   * Marks regions as shipped: clears their OOS bits. MOOS bits are cleared lazily. The
   * shipper must not ship a region while a host write to it is in flight (the write sets OOS
   * before its data lands); the tracking layer serialises the two.
   */
  markShipped(firstRegion: number, lastRegion: number): void {
    this.changed = true;
    this.oos.clearRange(firstRegion, lastRegion + 1);
  }

  /**
   * Takes an OOS region for shipping (seed 003: its bit is cleared before it is read, so a
   * write meanwhile marks it again). It stays in MOOS until `settle` says where it went.
   */
  take(regionIndex: number): void {
    if (!this.oos.get(regionIndex)) invariantViolated(`region ${regionIndex} taken while out of sync`);
    if (this.inFlight.get(regionIndex)) invariantViolated(`region ${regionIndex} taken once until settled`);
    this.changed = true;
    this.oos.clear(regionIndex);
    this.inFlight.set(regionIndex);
  }

  /** A taken region is durable on the secondary (`shipped`), or is out of sync again. */
  settle(regionIndex: number, shipped: boolean): void {
    if (!this.inFlight.get(regionIndex)) invariantViolated(`region ${regionIndex} settled while taken`);
    this.inFlight.clear(regionIndex);
    if (!shipped) this.oos.set(regionIndex);
  }

  /**
   * Drops every MOOS bit absent from OOS ∪ in flight (a clean stop): a restart resends exactly
   * those. Nothing when this process never changed OOS (see `changed`): MOOS stays the superset.
   */
  async compact(): Promise<void> {
    if (!this.changed) {
      this.streams = [];
      return;
    }
    const moosWords = this.moos.bits.words;
    for (let w = 0; w < moosWords.length; w++) moosWords[w]! &= this.oos.words[w]! | this.inFlight.words[w]!;
    this.streams = [];
    this.moos.markChanged(0, this.regionCount);
    await this.moos.destage();
  }

  /**
   * After a crash: the regions to resend are MOOS (the durable superset). Seeds OOS with
   * them so shipping resends exactly those.
   */
  recoverFromMoos(): number {
    this.oos.unionWith(this.moos.bits);
    return this.oos.popcount();
  }
}
