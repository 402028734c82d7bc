// Bitset against a naive boolean-array model over random operation sequences.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';

type Op =
  | { kind: 'set' | 'clear'; at: number }
  | { kind: 'setRange' | 'clearRange'; from: number; to: number }
  | { kind: 'union' | 'intersect' | 'subtract'; seedBits: number[] };

function opArb(bitCount: number): fc.Arbitrary<Op> {
  const index = fc.nat({ max: bitCount - 1 });
  const range = fc.tuple(fc.nat({ max: bitCount }), fc.nat({ max: bitCount })).map(([a, b]) => (a <= b ? { from: a, to: b } : { from: b, to: a }));
  return fc.oneof(
    fc.record({ kind: fc.constantFrom('set' as const, 'clear' as const), at: index }),
    range.chain((r) => fc.constantFrom('setRange' as const, 'clearRange' as const).map((kind) => ({ kind, ...r }))),
    fc.record({ kind: fc.constantFrom('union' as const, 'intersect' as const, 'subtract' as const), seedBits: fc.array(index, { maxLength: 20 }) }),
  );
}

function apply(bits: Bitset, model: boolean[], op: Op): void {
  switch (op.kind) {
    case 'set':
      bits.set(op.at);
      model[op.at] = true;
      break;
    case 'clear':
      bits.clear(op.at);
      model[op.at] = false;
      break;
    case 'setRange':
    case 'clearRange':
      if (op.kind === 'setRange') bits.setRange(op.from, op.to);
      else bits.clearRange(op.from, op.to);
      for (let i = op.from; i < op.to; i++) model[i] = op.kind === 'setRange';
      break;
    default: {
      const other = new Bitset(bits.bitCount);
      const otherModel = new Array<boolean>(bits.bitCount).fill(false);
      for (const i of op.seedBits) {
        other.set(i);
        otherModel[i] = true;
      }
      if (op.kind === 'union') bits.unionWith(other);
      if (op.kind === 'intersect') bits.intersectWith(other);
      if (op.kind === 'subtract') bits.subtract(other);
      for (let i = 0; i < model.length; i++) {
        model[i] = op.kind === 'union' ? model[i]! || otherModel[i]! : op.kind === 'intersect' ? model[i]! && otherModel[i]! : model[i]! && !otherModel[i]!;
      }
    }
  }
}

function naiveNext(model: boolean[], from: number, value: boolean): number {
  for (let i = from; i < model.length; i++) if (model[i] === value) return i;
  return -1;
}

describe('Bitset vs naive model', () => {
  it('agrees on get, popcount, scans, runs and serialisation after random operations', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 200 })
          .chain((bitCount) => fc.tuple(fc.constant(bitCount), fc.array(opArb(bitCount), { maxLength: 40 }), fc.nat({ max: bitCount }))),
        ([bitCount, ops, probe]) => {
          const bits = new Bitset(bitCount);
          const model = new Array<boolean>(bitCount).fill(false);
          for (const op of ops) apply(bits, model, op);
          for (let i = 0; i < bitCount; i++) expect(bits.get(i)).toBe(model[i]);
          expect(bits.popcount()).toBe(model.filter(Boolean).length);
          expect(bits.popcount(probe, bitCount)).toBe(model.slice(probe).filter(Boolean).length);
          expect(bits.nextSetBit(probe)).toBe(naiveNext(model, probe, true));
          expect(bits.nextClearBit(probe)).toBe(naiveNext(model, probe, false));
          const runs = [...bits.runs()].flatMap((r) => Array.from({ length: r.end - r.start }, (_, k) => r.start + k));
          expect(runs).toEqual(model.flatMap((v, i) => (v ? [i] : [])));
          expect([...bits.indexes()]).toEqual(runs);
          expect(Bitset.fromBytes(bitCount, bits.toBytes()).equals(bits)).toBe(true);
          expect(bits.clone().equals(bits)).toBe(true);
          expect(new Bitset(bitCount, bits.words.slice()).popcount()).toBe(bits.popcount());
          expect(bits.allSet(0, bitCount)).toBe(model.every(Boolean));
        },
      ),
    );
  });

  it('runs are maximal and disjoint', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 300 }), (model) => {
        const bits = new Bitset(model.length);
        model.forEach((v, i) => v && bits.set(i));
        const runs = [...bits.runs()];
        for (let k = 0; k < runs.length; k++) {
          const run = runs[k]!;
          expect(run.start).toBeLessThan(run.end);
          if (run.start > 0) expect(model[run.start - 1]).toBe(false);
          if (run.end < model.length) expect(model[run.end]).toBe(false);
          if (k > 0) expect(runs[k - 1]!.end).toBeLessThan(run.start);
        }
      }),
    );
  });
});
