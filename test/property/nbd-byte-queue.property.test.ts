// ByteQueue (the NBD parser's input): under any chunking of the stream and any sequence of
// peeks, takes, copies and skips, it hands out exactly the bytes a flat reference array would.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../../src-engine/nbd/byte-queue';

type Op = { kind: 'push'; bytes: Uint8Array } | { kind: 'peek' | 'take' | 'skip' | 'takeInto'; bytes: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((bytes) => ({ kind: 'push' as const, bytes })),
  fc.record({ kind: fc.constantFrom('peek' as const, 'take' as const, 'skip' as const, 'takeInto' as const), bytes: fc.nat({ max: 60 }) }),
);

describe('ByteQueue', () => {
  it('matches a flat reference for any chunking and any peek/take/skip sequence', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const queue = new ByteQueue();
        let reference = Buffer.alloc(0);
        for (const op of ops) {
          if (op.kind === 'push') {
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
