// RPC frames: a length-prefixed binary envelope carrying a JSON header and raw bytes, so
// region data never goes through base64. Spec: docs/agent-rpc.md. The decoder validates every
// field and refuses (with a reason) anything malformed, oversized or unknown.

import { rpcFrameBytesMax } from '../constants';

export const frameTypes = {
  hello: 1,
  request: 2,
  response: 3,
  chunk: 4,
  end: 5,
  error: 6,
  cancel: 7,
  ping: 8,
  pong: 9,
  credit: 10,
} as const;
export type FrameType = keyof typeof frameTypes;
const typeByCode = new Map<number, FrameType>(Object.entries(frameTypes).map(([name, code]) => [code, name as FrameType]));

/** Bytes before the JSON: length, type, flags, reserved, id, JSON length. */
export const frameHeaderBytes = 16;
const lengthFieldBytes = 4;

export interface Frame {
  readonly type: FrameType;
  /** The request this frame belongs to (0 for hello, ping, pong). */
  readonly id: number;
  /** A JSON object (never an array or a primitive). */
  readonly json: Record<string, unknown>;
  readonly payload: Uint8Array;
}

export class FrameError extends Error {
  constructor(readonly reason: string) {
    super(`malformed RPC frame: ${reason}`);
  }
}

/**
 * A frame as two pieces to write back to back: the header with its JSON, then the payload
 * as given (not copied — region data goes to the socket as is; the caller must not change it
 * until the frame is answered).
 */
export function encodeFrameParts(frame: Frame): [head: Buffer, payload: Uint8Array] {
  const json = JSON.stringify(frame.json);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  const total = frameHeaderBytes + jsonBytes + frame.payload.length;
  if (total > rpcFrameBytesMax) throw new FrameError(`frame of ${total} bytes exceeds the ${rpcFrameBytesMax}-byte limit`);
  const head = Buffer.allocUnsafe(frameHeaderBytes + jsonBytes);
  head.writeUInt32BE(total - lengthFieldBytes, 0);
  head.writeUInt8(frameTypes[frame.type], 4);
  head.writeUInt8(0, 5);
  head.writeUInt16BE(0, 6);
  head.writeUInt32BE(frame.id >>> 0, 8);
  head.writeUInt32BE(jsonBytes, 12);
  head.write(json, frameHeaderBytes, 'utf8');
  return [head, frame.payload];
}

/** The whole frame in one buffer (tests and fuzzing; the RPC peer writes the parts). */
export function encodeFrame(frame: Frame): Buffer {
  const [head, payload] = encodeFrameParts(frame);
  return Buffer.concat([head, payload]);
}

/**
 * Incremental decoder: push bytes as they arrive, take whole frames out. After a FrameError
 * the stream is unusable (framing is lost); the connection must be closed.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  push(bytes: Buffer): Frame[] {
    if (this.failed) throw new FrameError('decoder used after an error');
    this.chunks.push(bytes);
    this.buffered += bytes.length;
    const frames: Frame[] = [];
    for (;;) {
      const frame = this.next();
      if (!frame) return frames;
      frames.push(frame);
    }
  }

  /** The first `bytes` buffered bytes; concatenates only the chunks needed for them. */
  private peek(bytes: number): Buffer {
    if (this.chunks[0]!.length >= bytes) return this.chunks[0]!.subarray(0, bytes);
    let joined = 1;
    for (let have = this.chunks[0]!.length; have < bytes; joined++) have += this.chunks[joined]!.length;
    this.chunks.splice(0, joined, Buffer.concat(this.chunks.slice(0, joined)));
    return this.chunks[0]!.subarray(0, bytes);
  }

  /**
   * Removes the first `bytes` buffered bytes. From one received chunk they are a view of it
   * (`owned` false: the chunk may hold other frames); across chunks they are copied once into
   * a buffer of exactly that size (`owned` true: a payload may be handed out as a view).
   */
  private take(bytes: number): { bytes: Buffer; owned: boolean } {
    this.buffered -= bytes;
    const first = this.chunks[0]!;
    if (first.length >= bytes) {
      if (first.length === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
      return { bytes: first.subarray(0, bytes), owned: false };
    }
    const taken = Buffer.allocUnsafe(bytes);
    let filled = 0;
    while (filled < bytes) {
      const chunk = this.chunks[0]!;
      const used = Math.min(chunk.length, bytes - filled);
      chunk.copy(taken, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(used);
    }
    return { bytes: taken, owned: true };
  }

  private fail(reason: string): never {
    this.failed = true;
    throw new FrameError(reason);
  }

  private next(): Frame | undefined {
    if (this.buffered < lengthFieldBytes) return undefined;
    const length = this.peek(lengthFieldBytes).readUInt32BE(0);
    if (length + lengthFieldBytes > rpcFrameBytesMax) this.fail(`frame of ${length + lengthFieldBytes} bytes exceeds the ${rpcFrameBytesMax}-byte limit`);
    if (length < frameHeaderBytes - lengthFieldBytes) this.fail(`frame length ${length} is shorter than a header`);
    if (this.buffered < length + lengthFieldBytes) return undefined;
    const taken = this.take(length + lengthFieldBytes);
    return this.parse(taken.bytes, taken.owned);
  }

  private parse(bytes: Buffer, owned: boolean): Frame {
    const type = typeByCode.get(bytes.readUInt8(4));
    if (!type) this.fail(`unknown frame type ${bytes.readUInt8(4)}`);
    if (bytes.readUInt8(5) !== 0 || bytes.readUInt16BE(6) !== 0) this.fail('reserved header bits are set');
    const id = bytes.readUInt32BE(8);
    const jsonBytes = bytes.readUInt32BE(12);
    if (jsonBytes > bytes.length - frameHeaderBytes) this.fail(`JSON length ${jsonBytes} runs past the frame`);
    let json: unknown;
    try {
      json = JSON.parse(bytes.subarray(frameHeaderBytes, frameHeaderBytes + jsonBytes).toString('utf8'));
    } catch {
      this.fail('JSON header does not parse');
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) this.fail('JSON header is not an object');
    // A payload in a shared receive chunk is copied so a caller may keep it without pinning
    // the chunk; one in a buffer assembled for this frame alone is handed out as is.
    const view = bytes.subarray(frameHeaderBytes + jsonBytes);
    const payload = owned ? view : Uint8Array.prototype.slice.call(view);
    return { type, id, json: json as Record<string, unknown>, payload };
  }
}
