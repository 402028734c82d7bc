// ByteQueue: the bytes received on a connection and not yet parsed, as a list of the socket's
// own chunks. Frames are taken without copying when they lie within one chunk. Every call is on
// the per-request path: check messages are built only when a check fails.

import { invariantViolated } from '../assert';

export class ByteQueue {
  private chunks: Buffer[] = [];
  /** Bytes of chunks[0] already consumed. */
  private headOffset = 0;
  private lengthBytes = 0;

  get length(): number {
    return this.lengthBytes;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.lengthBytes += chunk.length;
  }

  /**
   * The first `bytes` bytes, not consumed. A view of the first chunk when they lie in it (the
   * common case for headers); otherwise they are joined into the first chunk once, so asking
   * again is free.
   */
  peek(bytes: number): Buffer {
    if (!(bytes <= this.lengthBytes)) invariantViolated(`peek of ${bytes} bytes within ${this.lengthBytes} buffered`);
    if (bytes === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length - this.headOffset >= bytes) return first.subarray(this.headOffset, this.headOffset + bytes);
    const joined = this.gather(bytes);
    this.consumeChunks(bytes);
    // Put the joined bytes back in front, so they stay queued. The chunk now first may be
    // partly consumed: it keeps its unread part only, as headOffset will be the joined chunk's.
    if (this.headOffset > 0) this.chunks[0] = this.chunks[0]!.subarray(this.headOffset);
    this.chunks.unshift(joined);
    this.headOffset = 0;
    this.lengthBytes += bytes;
    return joined;
  }

  /** Consumes and returns `bytes` bytes: a view when they lie in one chunk, else one copy. */
  take(bytes: number): Buffer {
    if (!(bytes <= this.lengthBytes)) invariantViolated(`take of ${bytes} bytes within ${this.lengthBytes} buffered`);
    if (bytes === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length - this.headOffset >= bytes) {
      const view = first.subarray(this.headOffset, this.headOffset + bytes);
      this.advance(bytes);
      return view;
    }
    const joined = this.gather(bytes);
    this.consumeChunks(bytes);
    return joined;
  }

  /** Consumes `bytes` bytes, copying them into `target` at `at`. */
  takeInto(target: Uint8Array, at: number, bytes: number): void {
    if (!(bytes <= this.lengthBytes && at + bytes <= target.length))
      invariantViolated(`copy of ${bytes} bytes within ${this.lengthBytes} buffered and the target`);
    let copied = 0;
    // Bounded by the number of chunks: each pass copies at least one byte of one chunk.
    while (copied < bytes) {
      const first = this.chunks[0]!;
      const n = Math.min(first.length - this.headOffset, bytes - copied);
      first.copy(target, at + copied, this.headOffset, this.headOffset + n);
      this.advance(n);
      copied += n;
    }
  }

  /** Drops `bytes` bytes. */
  skip(bytes: number): void {
    if (!(bytes <= this.lengthBytes)) invariantViolated(`skip of ${bytes} bytes within ${this.lengthBytes} buffered`);
    this.consumeChunks(bytes);
  }

  clear(): void {
    this.chunks = [];
    this.headOffset = 0;
    this.lengthBytes = 0;
  }

  private advance(bytes: number): void {
    this.headOffset += bytes;
    this.lengthBytes -= bytes;
    if (this.headOffset === this.chunks[0]!.length) {
      this.chunks.shift();
      this.headOffset = 0;
    }
  }

  /** Copies the first `bytes` bytes (which span chunks) into one new buffer, consuming nothing. */
  private gather(bytes: number): Buffer {
    const joined = Buffer.allocUnsafe(bytes);
    let copied = 0;
    let offset = this.headOffset;
    for (let i = 0; copied < bytes; i++) {
      const chunk = this.chunks[i]!;
      const n = Math.min(chunk.length - offset, bytes - copied);
      chunk.copy(joined, copied, offset, offset + n);
      copied += n;
      offset = 0;
    }
    return joined;
  }

  private consumeChunks(bytes: number): void {
    let left = bytes;
    // Bounded by the number of chunks: each pass consumes at least one byte of one chunk.
    while (left > 0) {
      const first = this.chunks[0]!;
      const n = Math.min(first.length - this.headOffset, left);
      this.advance(n);
      left -= n;
    }
  }
}
