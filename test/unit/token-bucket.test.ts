// --limit-rate's token bucket on a fake clock: a burst of at most a quarter second (or one
// item), then items pass at the rate; an item larger than the depth waits for its share.
import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src-engine/token-bucket';

/** A clock that advances only when the bucket sleeps (setTimeout is replaced by advancing it). */
function fakeTime() {
  let nowMs = 0;
  const realSetTimeout = globalThis.setTimeout;
  return {
    now: () => nowMs,
    async run<T>(work: () => Promise<T>): Promise<T> {
      globalThis.setTimeout = ((callback: () => void, ms?: number) => {
        nowMs += ms ?? 0;
        return realSetTimeout(callback, 0);
      }) as typeof setTimeout;
      try {
        return await work();
      } finally {
        globalThis.setTimeout = realSetTimeout;
      }
    },
  };
}

describe('TokenBucket', () => {
  it('sends a quarter second at once, then at the rate', async () => {
    const time = fakeTime();
    const bucket = new TokenBucket(1000, 100, time.now);
    await time.run(async () => {
      for (let i = 0; i < 2; i++) await bucket.take(100); // the 250-byte burst covers two
      expect(time.now()).toBe(0);
      for (let i = 0; i < 10; i++) await bucket.take(100);
    });
    // 1200 bytes at 1000 B/s with 250 bytes of burst: at least 0.95 s of waiting, not much more.
    expect(time.now()).toBeGreaterThanOrEqual(950);
    expect(time.now()).toBeLessThanOrEqual(1000);
  });

  it('lets an item larger than the burst through after its share of time', async () => {
    const time = fakeTime();
    const bucket = new TokenBucket(1000, 4000, time.now); // depth = max(item, rate/4) = 4000
    await time.run(async () => {
      await bucket.take(4000);
      await bucket.take(4000);
    });
    expect(time.now()).toBeGreaterThanOrEqual(4000);
    expect(time.now()).toBeLessThanOrEqual(4300);
  });

  it('stops waiting when cancelled', async () => {
    const time = fakeTime();
    const bucket = new TokenBucket(10, 100, time.now);
    const controller = new AbortController();
    await time.run(async () => {
      await bucket.take(100);
      controller.abort();
      await expect(bucket.take(100, controller.signal)).rejects.toThrow(/cancelled/);
    });
  });
});
