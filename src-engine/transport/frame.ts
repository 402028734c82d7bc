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

export function encodeFrame(frame: Frame): Buffer {
  const json = Buffer.from(JSON.stringify(frame.json), 'utf8');
  const total = frameHeaderBytes + json.length + frame.payload.length;
  if (total > rpcFrameBytesMax) throw new FrameError(`frame of ${total} bytes exceeds the ${rpcFrameBytesMax}-byte limit`);
  const header = Buffer.alloc(frameHeaderBytes);
  header.writeUInt32BE(total - lengthFieldBytes, 0);
  header.writeUInt8(frameTypes[frame.type], 4);
  header.writeUInt32BE(frame.id >>> 0, 8);
  header.writeUInt32BE(json.length, 12);
  return Buffer.concat([header, json, frame.payload]);
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

  private take(bytes: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const taken = all.subarray(0, bytes);
    const rest = all.subarray(bytes);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= bytes;
    return taken;
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
    return this.parse(this.take(length + lengthFieldBytes));
  }

  private parse(bytes: Buffer): Frame {
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
    // Copy the payload out of the receive buffer so a caller may keep it.
    const payload = Uint8Array.prototype.slice.call(bytes.subarray(frameHeaderBytes + jsonBytes));
    return { type, id, json: json as Record<string, unknown>, payload };
  }
}
