// When writes up to 1 MiB may run on the event loop's thread (FileBackend.trySyncWrite). A
// synchronous `pwrite` into the page cache takes microseconds, but the kernel can hold one for milliseconds:
// dirty-page throttling (every write, for as long as writeback lags) or a journal commit the
// inode's timestamp update must wait for (one write, when an `fdatasync` elsewhere on the file
// system commits — MOOS destages are such). On a shared VM a write also looks slow when the
// vCPU was descheduled during it. While writes keep stalling, they go through libuv's thread
// pool so the loop stays responsive.
//
// One short stall alone is a hiccup, already paid for: leaving this thread would only make the
// next writes dearer (a pool hand-off costs more than a page-cache copy). Two within
// syncWriteStallRepeatMs (counted from the later of the last stall and the last back-off's
// end), or one longer than syncWriteStallLongMs, mean the cause persists: writes back off to
// the pool, for syncWriteBackoffMinMs at first, doubling while stalls resume as soon as the
// back-off ends, up to syncWriteBackoffMaxMs. Measured (4 KiB NBD writes, docs/nbd.md): backing off for 1 s
// after every single stall sent 25–50% of a benchmark's writes to the pool.

import { assert } from '../assert';

/** A synchronous write slower than this blocked the event loop too long: a stall... */
export const syncWriteStallMs = 2;
/** ...plus this much per MiB it copies (a 1 MiB page-cache copy takes 0.1–0.3 ms here, 1 ms is slack for a busy host). */
export const syncWriteStallMsPerMiB = 1;
/** A second stall this soon after one (or after a back-off ends) means the cause persists. */
export const syncWriteStallRepeatMs = 100;
/** A stall this long is no hiccup (writes spaced out under throttling would never repeat soon). */
export const syncWriteStallLongMs = 50;
/** The first back-off after a quiet spell. */
export const syncWriteBackoffMinMs = 25;
/** The longest back-off, reached by stalls that keep coming. */
export const syncWriteBackoffMaxMs = 1_000;

export class SyncWritePolicy {
  private backoffMs = syncWriteBackoffMinMs;
  /** Writes go through the pool until then (the end of the last back-off). */
  private syncAfterMs = Number.NEGATIVE_INFINITY;
  private lastStallEndMs = Number.NEGATIVE_INFINITY;
  /** Synchronous writes, and how many of them stalled (tests, diagnostics). */
  readonly stats = { syncWrites: 0, stalls: 0, backoffs: 0 };

  /** May a write starting at `nowMs` run synchronously? */
  maySyncWrite(nowMs: number): boolean {
    return nowMs >= this.syncAfterMs;
  }

  /** A synchronous write of `bytes` ran from `startMs` to `endMs` (monotonic milliseconds). */
  wrote(startMs: number, endMs: number, bytes: number): void {
    assert(endMs >= startMs, 'a write ends after it starts');
    this.stats.syncWrites += 1;
    if (endMs - startMs <= syncWriteStallMs + (bytes / 1_048_576) * syncWriteStallMsPerMiB) return;
    this.stats.stalls += 1;
    const repeated = startMs - Math.max(this.lastStallEndMs, this.syncAfterMs) <= syncWriteStallRepeatMs;
    this.lastStallEndMs = endMs;
    if (!repeated && endMs - startMs <= syncWriteStallLongMs) return;
    // Stalling again right after the last back-off: back off longer.
    const resumed = startMs - this.syncAfterMs <= 2 * this.backoffMs;
    this.backoffMs = resumed ? Math.min(syncWriteBackoffMaxMs, 2 * this.backoffMs) : syncWriteBackoffMinMs;
    this.syncAfterMs = endMs + this.backoffMs;
    this.stats.backoffs += 1;
  }
}
