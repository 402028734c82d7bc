// ByteQueue (the NBD parser's input): under any chunking of the stream and any sequence of
// peeks, takes, copies and skips, it hands out exactly the bytes a flat reference array would.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../../src-engine/nbd/byte-queue';

type Op = { kind: 'push'; bytes: Uint8Array } | { kind: 'peek' | 'take' | 'skip' | 'takeInto'; bytes: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  // Chunk lengths are random; their content is filled in below with the stream position, so a
  // byte handed out twice or skipped shows (random bytes are often all zeros, which hides it).
  fc.nat({ max: 40 }).map((length) => ({ kind: 'push' as const, bytes: new Uint8Array(length) })),
  fc.record({ kind: fc.constantFrom('peek' as const, 'take' as const, 'skip' as const, 'takeInto' as const), bytes: fc.nat({ max: 60 }) }),
);

describe('ByteQueue', () => {
  it('matches a flat reference for any chunking and any peek/take/skip sequence', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const queue = new ByteQueue();
        let reference = Buffer.alloc(0);
        let pushedBytes = 0;
        for (const op of ops) {
          if (op.kind === 'push') {
            for (let i = 0; i < op.bytes.length; i++) op.bytes[i] = (pushedBytes + i) % 251;
            pushedBytes += op.bytes.length;
            queue.push(Buffer.from(op.bytes));
            reference = Buffer.concat([reference, op.bytes]);
          } else {
            const n = Math.min(op.bytes, reference.length);
            if (op.kind === 'peek') {
              expect(queue.peek(n).equals(reference.subarray(0, n))).toBe(true);
            } else if (op.kind === 'take') {
              expect(queue.take(n).equals(reference.subarray(0, n))).toBe(true);
              reference = reference.subarray(n);
            } else if (op.kind === 'takeInto') {
              const target = Buffer.alloc(n + 3, 0xee);
              queue.takeInto(target, 2, n);
              expect(target.subarray(2, 2 + n).equals(reference.subarray(0, n))).toBe(true);
              expect([target[0], target[1], target[n + 2]]).toEqual([0xee, 0xee, 0xee]);
              reference = reference.subarray(n);
            } else {
              queue.skip(n);
              reference = reference.subarray(n);
            }
          }
          expect(queue.length).toBe(reference.length);
        }
      }),
    );
  });

  it('reads a chunked stream back as the parser does (peek a header, then take, copy or skip it)', () => {
    const readArb = fc.record({ peekBytes: fc.integer({ min: 1, max: 80 }), kind: fc.constantFrom('take' as const, 'takeInto' as const, 'skip' as const) });
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 2, maxLength: 30 }),
        fc.array(readArb, { minLength: 1, maxLength: 30 }),
        (chunkLengths, reads) => {
          const stream = Buffer.from(Array.from({ length: chunkLengths.reduce((a, b) => a + b, 0) }, (_, i) => i % 251));
          const queue = new ByteQueue();
          let at = 0;
          for (const length of chunkLengths) {
            queue.push(stream.subarray(at, at + length));
            at += length;
          }
          let readAt = 0;
          for (const { peekBytes, kind } of reads) {
            const n = Math.min(peekBytes, stream.length - readAt);
            expect(queue.peek(n).equals(stream.subarray(readAt, readAt + n))).toBe(true);
            if (kind === 'take') {
              expect(queue.take(n).equals(stream.subarray(readAt, readAt + n))).toBe(true);
            } else if (kind === 'takeInto') {
              const target = Buffer.alloc(n);
              queue.takeInto(target, 0, n);
              expect(target.equals(stream.subarray(readAt, readAt + n))).toBe(true);
            } else {
              queue.skip(n);
            }
            readAt += n;
            expect(queue.length).toBe(stream.length - readAt);
          }
          expect(queue.take(queue.length).equals(stream.subarray(readAt))).toBe(true);
        },
      ),
    );
  });

  it('a peek across chunks that ends inside a chunk keeps the rest of that chunk once (regression)', () => {
    const queue = new ByteQueue();
    queue.push(Buffer.from('abc'));
    queue.push(Buffer.from('defghij'));
    expect(queue.peek(5).toString()).toBe('abcde');
    expect(queue.take(10).toString()).toBe('abcdefghij');
    expect(queue.length).toBe(0);
  });

  it('takes a frame inside one chunk as a view (no copy) and refuses to read past what is buffered', () => {
    const queue = new ByteQueue();
    const chunk = Buffer.from('header+payload');
    queue.push(chunk);
    const view = queue.take(6);
    expect(view.buffer).toBe(chunk.buffer);
    expect(view.toString()).toBe('header');
    expect(() => queue.take(100)).toThrow(/within 8 buffered/);
  });
});
