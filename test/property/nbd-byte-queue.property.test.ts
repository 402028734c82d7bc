// ByteQueue (the NBD parser's input): under any chunking of the stream and any sequence of
// peeks, takes, copies and skips, it hands out exactly the bytes a flat reference array would.
// ReadArena (where socket reads land): reads into reused staging memory and straight into
// payload buffers never lose, reorder or overwrite a byte the parser has not consumed.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../../src-engine/nbd/byte-queue';
import { ReadArena } from '../../src-engine/nbd/read-arena';

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

describe('ReadArena', () => {
  type Step =
    | { kind: 'read'; bytes: number }
    | { kind: 'consume'; how: 'take' | 'skip' | 'takeInto' | 'peek' | 'leave'; bytes: number }
    | { kind: 'direct'; bytes: number }
    | { kind: 'limit'; bytes: number };
  // Reads outweigh consumption, so the queue grows (a paused parser) and staging fills up.
  const stepArb: fc.Arbitrary<Step> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('read' as const), bytes: fc.integer({ min: 1, max: 40 }) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('consume' as const),
        how: fc.constantFrom('take' as const, 'skip' as const, 'takeInto' as const, 'peek' as const),
        bytes: fc.nat({ max: 30 }),
      }),
    },
    // As the parser does: every whole frame, leaving the start of one.
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('consume' as const), how: fc.constant('leave' as const), bytes: fc.nat({ max: 12 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('direct' as const), bytes: fc.integer({ min: 1, max: 120 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('limit' as const), bytes: fc.integer({ min: 1, max: 30 }) }) },
  );

  it('hands the parser exactly the stream, whatever the reads, consumption, pauses and direct fills', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 20, maxLength: 200, size: 'max' }), (steps) => {
        // Small sizes so that compaction, the spare swap and one-off buffers all happen.
        const arena = new ReadArena({ stagingBytes: 64, readMaxBytes: 24, readMinBytes: 8 });
        const streamByte = (i: number) => (i * 7 + 3) % 251;
        let sent = 0; // bytes the "socket" delivered
        let parsed = 0; // bytes the consumer has seen, in order
        /** A payload being filled: its buffer, how much is filled, and where in the stream it starts. */
        let fill: { buffer: Buffer; filled: number; streamAt: number } | undefined;
        let limit = Infinity;
        const checkFill = () => {
          if (fill && fill.filled === fill.buffer.length) {
            for (let i = 0; i < fill.buffer.length; i++) expect(fill.buffer[i]).toBe(streamByte(fill.streamAt + i));
            fill = undefined;
          }
        };
        // The socket reads into whatever region the arena hands out, then the callback runs.
        const read = (bytes: number) => {
          const direct = fill && arena.queue.length === 0 ? fill.buffer.subarray(fill.filled) : undefined;
          const target = arena.nextTarget(direct, limit);
          limit = Infinity;
          expect(target.length).toBeGreaterThan(0);
          const n = Math.min(bytes, target.length);
          for (let i = 0; i < n; i++) target[i] = streamByte(sent + i);
          sent += n;
          if (arena.received(n, target)) {
            expect(direct).toBeDefined();
            fill!.filled += n;
            parsed += n;
            checkFill();
          }
        };
        for (const step of steps) {
          if (step.kind === 'read') {
            read(step.bytes);
          } else if (step.kind === 'limit') {
            limit = step.bytes;
          } else if (step.kind === 'direct') {
            if (fill) continue;
            // A payload starts here: what is queued is copied, the rest comes by reads.
            fill = { buffer: Buffer.alloc(step.bytes), filled: 0, streamAt: parsed };
            const n = Math.min(step.bytes, arena.queue.length);
            arena.queue.takeInto(fill.buffer, 0, n);
            fill.filled = n;
            parsed += n;
            checkFill();
          } else {
            if (fill) {
              // The parser drains the queue into the payload first.
              const n = Math.min(fill.buffer.length - fill.filled, arena.queue.length);
              arena.queue.takeInto(fill.buffer, fill.filled, n);
              fill.filled += n;
              parsed += n;
              checkFill();
              continue;
            }
            const n = step.how === 'leave' ? Math.max(0, arena.queue.length - step.bytes) : Math.min(step.bytes, arena.queue.length);
            const expected = Buffer.from(Array.from({ length: n }, (_, i) => streamByte(parsed + i)));
            if (step.how === 'peek') {
              expect(arena.queue.peek(n).equals(expected)).toBe(true);
              continue;
            }
            if (step.how === 'take') expect(arena.queue.take(n).equals(expected)).toBe(true);
            else if (step.how === 'takeInto') {
              const target = Buffer.alloc(n);
              arena.queue.takeInto(target, 0, n);
              expect(target.equals(expected)).toBe(true);
            } else arena.queue.skip(n);
            parsed += n;
          }
          expect(parsed + arena.queue.length).toBe(sent);
        }
        // Whatever is still queued is the rest of the stream, in order.
        const rest = arena.queue.take(arena.queue.length);
        for (let i = 0; i < rest.length; i++) expect(rest[i]).toBe(streamByte(parsed + i));
      }),
    );
  });

  it('reads into staging past every queued byte, and straight into a payload only when nothing is queued', () => {
    const arena = new ReadArena({ stagingBytes: 64, readMaxBytes: 24, readMinBytes: 8 });
    const payload = Buffer.alloc(100);
    const first = arena.nextTarget(payload);
    expect(first.buffer).toBe(payload.buffer); // queue empty: direct
    expect(arena.received(5, first)).toBe(true);
    const second = arena.nextTarget(undefined, 28);
    expect(second.length).toBe(24); // readMax caps the limit
    first.fill(1);
    expect(arena.received(10, second)).toBe(false);
    const third = arena.nextTarget(payload.subarray(5));
    expect(third.buffer).not.toBe(payload.buffer); // bytes queued: staging, after them
    expect(third.byteOffset).toBe(second.byteOffset + 10);
    expect(() => arena.received(1, second)).toThrow(/region last handed out/);
  });
});
