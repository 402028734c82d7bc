// Payload buffers for WRITE requests, reused: a 1 MiB write otherwise costs a fresh allocation
// (page faults on first touch, then garbage collection) on top of receiving it.

import { assert, invariantViolated } from '../assert';
import { nbdPoolBufferBytesMin } from './protocol';

export class BufferPool {
  /** Free buffers by size (a power of two). */
  private readonly free = new Map<number, Buffer[]>();
  private pooledBytes = 0;
  /** Buffers acquired and neither released nor abandoned: in use by requests (tests check it returns to 0). */
  private lent = 0;

  constructor(private readonly pooledBytesMax: number) {
    assert(Number.isSafeInteger(pooledBytesMax) && pooledBytesMax >= 0, 'pool bound is a byte count');
  }

  /** The size a buffer for `bytes` bytes has: the next power of two, at least nbdPoolBufferBytesMin. */
  static sizeFor(bytes: number): number {
    // Per request, so integer bit arithmetic: payloads are at most nbdRequestBytesMax <= 2^30.
    return bytes <= nbdPoolBufferBytesMin ? nbdPoolBufferBytesMin : 1 << (32 - Math.clz32(bytes - 1));
  }

  /** A buffer of at least `bytes` bytes, with unspecified content; give it back with release(). */
  acquire(bytes: number): Buffer {
    const size = BufferPool.sizeFor(bytes);
    const buffer = this.free.get(size)?.pop();
    this.lent += 1;
    if (buffer === undefined) return Buffer.allocUnsafeSlow(size);
    this.pooledBytes -= size;
    return buffer;
  }

  /** Takes a buffer back once nobody reads it any more; kept while the pool is under its bound. */
  release(buffer: Buffer): void {
    if (buffer.length !== BufferPool.sizeFor(buffer.length)) invariantViolated('only pool buffers come back');
    this.abandon();
    if (this.pooledBytes + buffer.length > this.pooledBytesMax) return;
    const list = this.free.get(buffer.length) ?? [];
    list.push(buffer);
    this.free.set(buffer.length, list);
    this.pooledBytes += buffer.length;
  }

  /** A lent buffer that will not come back (a read may still land in it): no longer counted as lent. */
  abandon(): void {
    this.lent -= 1;
    assert(this.lent >= 0, 'no more buffers come back than were lent');
  }

  get lentBuffers(): number {
    return this.lent;
  }
}
