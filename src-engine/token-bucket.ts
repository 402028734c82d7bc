// --limit-rate: a token bucket on bytes. Depth max(one item, rate / 4): a burst of at most a
// quarter second, and an item larger than that still passes (after waiting for its share).

import { assert } from './assert';
import { TidemarkError } from './errors';

export class TokenBucket {
  private tokens: number;
  private lastMs: number;
  private readonly depth: number;

  constructor(
    readonly bytesPerSecond: number,
    itemBytesMax: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    assert(bytesPerSecond > 0 && itemBytesMax > 0, 'a positive rate and item size');
    this.depth = Math.max(itemBytesMax, bytesPerSecond / 4);
    this.tokens = this.depth;
    this.lastMs = nowMs();
  }

  /** Resolves once `bytes` may be sent. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      const now = this.nowMs();
      this.tokens = Math.min(this.depth, this.tokens + ((now - this.lastMs) * this.bytesPerSecond) / 1000);
      this.lastMs = now;
      if (this.tokens >= Math.min(bytes, this.depth)) {
        this.tokens -= bytes; // may go negative for an item larger than the depth: later items wait
        return;
      }
      if (signal?.aborted) throw new TidemarkError('CANCELLED', 'cancelled while waiting for the rate limit', '');
      const waitMs = Math.ceil(((Math.min(bytes, this.depth) - this.tokens) * 1000) / this.bytesPerSecond);
      await new Promise((wake) => setTimeout(wake, Math.max(1, Math.min(waitMs, 250))));
    }
  }
}
