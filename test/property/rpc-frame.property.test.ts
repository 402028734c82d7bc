// RPC frames: round trips, and the decoder under random and mutated input — it either yields
// well-formed frames or refuses with a reason; it never throws anything else or hangs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rpcFrameBytesMax } from '../../src-engine/constants';
import { FrameDecoder, FrameError, encodeFrame, frameTypes, type Frame, type FrameType } from '../../src-engine/transport/frame';

const frameArb: fc.Arbitrary<Frame> = fc.record({
  type: fc.constantFrom(...(Object.keys(frameTypes) as FrameType[])),
  id: fc.nat({ max: 2 ** 32 - 1 }),
  json: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })) as fc.Arbitrary<Record<string, unknown>>,
  payload: fc.uint8Array({ maxLength: 2000 }),
});

function feed(decoder: FrameDecoder, bytes: Buffer, splits: number[]): Frame[] {
  const frames: Frame[] = [];
  let at = 0;
  for (const split of [...splits.map((s) => s % (bytes.length + 1)).sort((a, b) => a - b), bytes.length]) {
    frames.push(...decoder.push(bytes.subarray(at, Math.max(at, split))));
    at = Math.max(at, split);
  }
  return frames;
}

describe('RPC frames', () => {
  it('round-trip in any split of the byte stream', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 6 }), (frames, splits) => {
        const bytes = Buffer.concat(frames.map(encodeFrame));
        const decoded = feed(new FrameDecoder(), bytes, splits);
        expect(decoded).toHaveLength(frames.length);
        decoded.forEach((d, i) => {
          expect(d.type).toBe(frames[i]!.type);
          expect(d.id).toBe(frames[i]!.id);
          expect(d.json).toEqual(JSON.parse(JSON.stringify(frames[i]!.json)));
          expect(Buffer.from(d.payload).equals(Buffer.from(frames[i]!.payload))).toBe(true);
        });
      }),
    );
  });

  it('random bytes: frames or a FrameError, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          for (const frame of new FrameDecoder().push(Buffer.from(bytes))) expect(typeof frame.json).toBe('object');
        } catch (error) {
          expect(error).toBeInstanceOf(FrameError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('mutated valid frames: frames or a FrameError, never another exception', () => {
    fc.assert(
      fc.property(frameArb, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }), (frame, flips) => {
        const bytes = encodeFrame(frame);
        for (const [at, value] of flips) bytes[at % bytes.length] = value;
        try {
          new FrameDecoder().push(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(FrameError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ['an oversized length', (b: Buffer) => b.writeUInt32BE(rpcFrameBytesMax, 0), /exceeds/],
    ['a length shorter than a header', (b: Buffer) => b.writeUInt32BE(3, 0), /shorter than a header/],
    ['an unknown type', (b: Buffer) => b.writeUInt8(99, 4), /unknown frame type 99/],
    ['reserved bits', (b: Buffer) => b.writeUInt8(1, 5), /reserved/],
    ['a JSON length past the frame', (b: Buffer) => b.writeUInt32BE(10_000, 12), /runs past/],
    ['JSON that is not an object', (b: Buffer) => b.write('[1]', 16), /not an object|does not parse/],
  ])('refuses %s with the reason', (_name, corrupt, reason) => {
    const bytes = encodeFrame({ type: 'request', id: 1, json: { abc: 1 }, payload: new Uint8Array(4) });
    corrupt(bytes);
    expect(() => new FrameDecoder().push(bytes)).toThrow(reason);
  });

  it('an oversized frame is refused from its length alone, before it arrives', () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(rpcFrameBytesMax + 1, 0);
    expect(() => new FrameDecoder().push(header)).toThrow(/exceeds/);
  });

  it('the encoder refuses to build an oversized frame', () => {
    expect(() => encodeFrame({ type: 'response', id: 1, json: {}, payload: new Uint8Array(rpcFrameBytesMax) })).toThrow(FrameError);
  });
});
