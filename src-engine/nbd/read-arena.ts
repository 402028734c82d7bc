// ReadArena: where a connection's socket reads land. Node reads a socket into a fresh 64 KiB
// buffer per read and the parser then copied write payloads out of those: on 1 MiB writes the
// allocations (page faults on fresh memory, then garbage collection) and the copy cost more
// than the socket read itself. Here the socket reads into memory the connection owns instead
// (net.Socket's `onread` with a buffer function): headers and small frames into a reused
// staging buffer, and the bulk of a large WRITE payload straight into that request's pooled
// buffer, so its bytes are copied once, by the kernel.

import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { assert } from '../assert';
import { ByteQueue } from './byte-queue';

export interface ReadArenaSizes {
  /** Each of the two staging buffers. */
  readonly stagingBytes: number;
  /** Most bytes one read into staging may take (more would copy payload that could go direct). */
  readonly readMaxBytes: number;
  /** A staging read is given at least this much room; less free space compacts first. */
  readonly readMinBytes: number;
}

/**
 * The bytes received and not yet parsed (`queue`, views into staging), and the choice of where
 * the next read lands. Staging is written only by reads, and only past every queued byte, so
 * the queue's views stay valid until consumed; nothing else may keep a view into staging
 * (frames the parser keeps are copied out, as every write payload is).
 */
export class ReadArena {
  readonly queue = new ByteQueue();
  private staging: Buffer;
  /** Holds nothing live: compaction copies the queued bytes into it, then the two swap. */
  private spare: Buffer;
  /** End of the bytes read into staging; reads land at or past it. */
  private cursor = 0;
  /** The region handed out for the next read, and whether it is a caller's (direct) region. */
  private target: Buffer | undefined;
  private targetDirect = false;

  constructor(private readonly sizes: ReadArenaSizes) {
    assert(
      Number.isSafeInteger(sizes.readMinBytes) &&
        sizes.readMinBytes > 0 &&
        sizes.readMinBytes <= sizes.readMaxBytes &&
        sizes.readMaxBytes <= sizes.stagingBytes &&
        Number.isSafeInteger(sizes.stagingBytes),
      'read arena sizes: 0 < readMin <= readMax <= staging',
    );
    this.staging = Buffer.allocUnsafeSlow(sizes.stagingBytes);
    this.spare = Buffer.allocUnsafeSlow(sizes.stagingBytes);
  }

  /**
   * The region the next read fills. `direct` — where the next bytes of the stream belong (the
   * rest of a large WRITE payload) — is used when nothing is queued before them; the caller
   * must not reuse that memory before the read is delivered (or the connection is dropped).
   * A staging read takes at most `limitBytes` (a header known to come next, and likely a
   * large payload after it that should not be read into staging).
   */
  nextTarget(direct?: Buffer, limitBytes = Infinity): Buffer {
    const queued = this.queue.length;
    if (direct !== undefined && direct.length > 0 && queued === 0) {
      this.target = direct;
      this.targetDirect = true;
      return direct;
    }
    const { stagingBytes, readMaxBytes, readMinBytes } = this.sizes;
    if (queued === 0) {
      this.cursor = 0;
    } else if (stagingBytes - this.cursor < readMinBytes && queued <= stagingBytes - readMinBytes) {
      // Move what is queued (the start of a frame) to the front of the spare buffer, and swap.
      this.queue.takeInto(this.spare, 0, queued);
      [this.staging, this.spare] = [this.spare, this.staging];
      this.cursor = queued;
      this.queue.push(this.staging.subarray(0, queued));
    }
    // Almost all of staging queued (reading paused while requests drain): a one-off buffer.
    const target =
      stagingBytes - this.cursor >= readMinBytes
        ? this.staging.subarray(this.cursor, this.cursor + Math.min(readMaxBytes, stagingBytes - this.cursor, Math.max(1, limitBytes)))
        : Buffer.allocUnsafe(readMaxBytes);
    this.target = target;
    this.targetDirect = false;
    return target;
  }

  /**
   * `bytes` bytes were read into `region` (the last target). Staging bytes are queued; returns
   * true when they went to the direct region instead.
   */
  received(bytes: number, region: Uint8Array): boolean {
    assert(region === this.target && bytes > 0 && bytes <= region.length, 'a read fills the region last handed out');
    this.target = undefined;
    if (this.targetDirect) return true;
    const view = region as Buffer;
    if (view.buffer === this.staging.buffer) this.cursor = view.byteOffset - this.staging.byteOffset + bytes;
    this.queue.push(view.subarray(0, bytes));
    return false;
  }

  /** Drops everything queued (the connection is closing); the pending target stays valid. */
  clear(): void {
    this.queue.clear();
  }
}

/** What adoption needs of Node's stream handle (TCP or Pipe wrap). */
interface StreamHandle {
  readStart(): number;
  useUserBuffer?: unknown;
}

/**
 * `accepted` (from a server listening with `pauseOnConnect`, not read from yet) as a socket
 * whose reads go to `onread`. Node takes `onread` only when it constructs a socket for the
 * caller, and a server constructs its own; so the accepted socket's handle moves into a new
 * Socket built with `onread` (the constructor's `handle` option, as Node's server itself uses),
 * and the emptied accepted socket is destroyed, which only closes the server's count of it.
 * Undefined when this Node's internals are not as expected: the caller then reads `accepted`
 * as a stream.
 */
export function adoptWithOnread(accepted: Socket, onread: OnReadOpts): Socket | undefined {
  const holder = accepted as unknown as { _handle?: StreamHandle | null };
  const handle = holder._handle;
  if (!handle || typeof handle.readStart !== 'function' || typeof handle.useUserBuffer !== 'function' || accepted.destroyed) return undefined;
  holder._handle = null;
  const socket = new Socket({ handle, onread, readable: true, writable: true, allowHalfOpen: false } as SocketConstructorOpts);
  accepted.destroy();
  return socket;
}
