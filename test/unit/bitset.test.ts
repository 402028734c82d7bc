import { describe, expect, it } from 'vitest';
import { Bitset, popcount32 } from '../../src-engine/bitmap';
import { regionCountMax } from '../../src-engine/constants';
import { TidemarkError } from '../../src-engine/errors';

describe('Bitset', () => {
  it('popcount32 counts bits of edge words', () => {
    expect(popcount32(0)).toBe(0);
    expect(popcount32(0xffffffff)).toBe(32);
    expect(popcount32(0x80000001)).toBe(2);
    expect(popcount32(0x55555555)).toBe(16);
  });

  it('handles ranges that cross words and a short tail word', () => {
    const bits = new Bitset(70);
    bits.setRange(30, 66);
    expect(bits.popcount()).toBe(36);
    expect(bits.nextSetBit(0)).toBe(30);
    expect(bits.nextClearBit(30)).toBe(66);
    expect([...bits.runs()]).toEqual([{ start: 30, end: 66 }]);
    bits.clearRange(31, 65);
    expect([...bits.indexes()]).toEqual([30, 65]);
  });

  it('full() sets exactly bitCount bits, never the padding', () => {
    const bits = Bitset.full(33);
    expect(bits.popcount()).toBe(33);
    expect(bits.words[1]).toBe(1);
    expect(bits.nextClearBit(0)).toBe(-1);
  });

  it('clone keeps the bits of a partial last word', () => {
    const bits = new Bitset(29_322);
    bits.set(29_312);
    bits.set(29_321);
    expect([...bits.clone().indexes()]).toEqual([29_312, 29_321]);
  });

  it('fromBytes masks padding bits beyond bitCount', () => {
    const bits = Bitset.fromBytes(10, new Uint8Array([0xff, 0xff]));
    expect(bits.popcount()).toBe(10);
  });

  it('refuses out-of-range indexes and mismatched lengths with an invariant error', () => {
    const bits = new Bitset(8);
    expect(() => bits.set(8)).toThrow(TidemarkError);
    expect(() => bits.setRange(3, 2)).toThrow(/range/);
    expect(() => bits.unionWith(new Bitset(9))).toThrow(/equal length/);
  });

  it('isSubsetOf and set algebra', () => {
    const a = new Bitset(100);
    const b = new Bitset(100);
    a.setRange(10, 20);
    b.setRange(0, 50);
    expect(a.isSubsetOf(b)).toBe(true);
    expect(b.isSubsetOf(a)).toBe(false);
    expect(b.clone().subtract(a).popcount()).toBe(40);
    expect(Bitset.union(a, b).popcount()).toBe(50);
  });

  it('an empty bitset scans to -1', () => {
    const bits = new Bitset(0);
    expect(bits.nextSetBit(0)).toBe(-1);
    expect(bits.popcount()).toBe(0);
    expect([...bits.runs()]).toEqual([]);
  });
});

describe('Bitset size cap', () => {
  it('refuses more bits than 32-bit word arithmetic indexes exactly', () => {
    expect(() => new Bitset(regionCountMax + 1)).toThrow(expect.objectContaining({ code: 'INVARIANT' }));
  });

  it('scans exactly at the top of the allowed range', () => {
    const bits = new Bitset(regionCountMax);
    const top = regionCountMax - 1;
    bits.set(top);
    bits.set(top - 40);
    expect(bits.nextSetBit(0)).toBe(top - 40);
    expect(bits.nextSetBit(top - 39)).toBe(top);
    expect(bits.nextClearBit(top)).toBe(-1);
    expect(bits.nextClearBit(top - 40)).toBe(top - 39);
    expect([...bits.runs(top - 64)]).toEqual([
      { start: top - 40, end: top - 39 },
      { start: top, end: top + 1 },
    ]);
    expect(bits.popcount(top - 64, regionCountMax)).toBe(2);
  });
});
