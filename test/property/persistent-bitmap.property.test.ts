// PersistentBitmap under crashes: torn destages at every write point, bit flips and
// truncation never yield a cleared bit that was durably set before the crash and still set
// when it struck (a bit the caller cleared may come back: that is safe, losing one is not).
// Several lives with failing syncs: persistent-bitmap-lives.property.test.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Bitset, PersistentBitmap } from '../../src-engine/bitmap';
import { bitmapSlotBytes, bitmapSuperblockBytes } from '../../src-engine/constants';
import { TidemarkError } from '../../src-engine/errors';
import { CrashError, SimFile } from '../sim/sim-file';

type Edit = { set: boolean; from: number; length: number };

function editArb(bitCount: number): fc.Arbitrary<Edit> {
  return fc.record({ set: fc.boolean(), from: fc.nat({ max: bitCount - 1 }), length: fc.integer({ min: 1, max: 3000 }) });
}

function applyEdit(bitmap: PersistentBitmap, model: boolean[], edit: Edit): void {
  const to = Math.min(bitmap.bitCount, edit.from + edit.length);
  if (edit.set) bitmap.setRange(edit.from, to);
  else bitmap.clearRange(edit.from, to);
  for (let i = edit.from; i < to; i++) model[i] = edit.set;
}

/** Bits that must survive a crash now: durable, and not cleared since. */
function mustSurvive(bitmap: PersistentBitmap): Bitset {
  return bitmap.durableBits().intersectWith(bitmap.bits);
}

function expectSuperset(loaded: Bitset, durable: Bitset): void {
  const lost = durable.clone().subtract(loaded);
  expect(lost.popcount(), `durably set bits lost: first ${lost.nextSetBit(0)}`).toBe(0);
}

async function loadImage(image: Uint8Array) {
  return PersistentBitmap.load(SimFile.from(image));
}

describe('PersistentBitmap', () => {
  it('round-trips exactly when nothing crashes, writing only changed segments', async () => {
    const file = new SimFile();
    const bitCount = 100_000; // 4 segments
    const bitmap = await PersistentBitmap.create(file, bitCount, 'test');
    bitmap.setRange(10, 20);
    bitmap.set(99_999);
    expect(await bitmap.destage()).toBe(2);
    expect(await bitmap.destage()).toBe(0);
    bitmap.clear(15);
    expect(await bitmap.destage()).toBe(1);
    const { bitmap: loaded, report } = await loadImage(file.durable);
    expect(report.recovered).toEqual([]);
    expect(loaded.tag).toBe('test');
    expect([...loaded.bits.indexes()]).toEqual([10, 11, 12, 13, 14, 16, 17, 18, 19, 99_999]);
  });

  it('a torn destage at every write point, every torn size, keeps every durable bit', async () => {
    const bitCount = 70_000; // 3 segments
    for (let crashWrite = 0; crashWrite < 3; crashWrite++) {
      for (const tornBytes of [0, 1, 24, 31, 33, bitmapSlotBytes / 2, bitmapSlotBytes - 1]) {
        for (const image of ['volatile', 'durable', 'odd-writes'] as const) {
          const file = new SimFile();
          const bitmap = await PersistentBitmap.create(file, bitCount, 't');
          bitmap.setRange(0, 40_000);
          bitmap.set(69_999);
          await bitmap.destage();
          bitmap.clearRange(0, 20_000); // clearing is the dangerous direction
          bitmap.setRange(50_000, 50_010);
          bitmap.clear(69_999);
          const survive = mustSurvive(bitmap);
          expect(survive.popcount()).toBe(20_000);
          file.armCrash(crashWrite, tornBytes);
          await expect(bitmap.destage()).rejects.toBeInstanceOf(CrashError);
          const restart = image === 'odd-writes' ? file.imageWith((i) => i % 2 === 1) : file[image];
          const { bitmap: loaded } = await loadImage(restart);
          expectSuperset(loaded.bits, survive);
        }
      }
    }
  });

  it('random edits, destages and a crash anywhere never lose a durable bit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 80_000 }).chain((bitCount) =>
          fc.record({
            bitCount: fc.constant(bitCount),
            rounds: fc.array(fc.array(editArb(bitCount), { maxLength: 6 }), { minLength: 1, maxLength: 5 }),
            crashWrite: fc.nat({ max: 4 }),
            tornBytes: fc.nat({ max: bitmapSlotBytes - 1 }),
            keepMask: fc.nat(),
          }),
        ),
        async ({ bitCount, rounds, crashWrite, tornBytes, keepMask }) => {
          const file = new SimFile();
          const bitmap = await PersistentBitmap.create(file, bitCount, 'prop');
          const model = new Array<boolean>(bitCount).fill(false);
          let survive = new Bitset(bitCount);
          let crashed = false;
          for (let r = 0; r < rounds.length && !crashed; r++) {
            for (const edit of rounds[r]!) applyEdit(bitmap, model, edit);
            if (r === rounds.length - 1) file.armCrash(crashWrite, tornBytes);
            survive = mustSurvive(bitmap);
            try {
              await bitmap.destage();
              survive = mustSurvive(bitmap);
              // The durable image equals the model after a completed destage.
              const expected = new Bitset(bitCount);
              model.forEach((v, i) => v && expected.set(i));
              expect(bitmap.durableBits().equals(expected)).toBe(true);
            } catch (error) {
              expect(error).toBeInstanceOf(CrashError);
              crashed = true;
            }
          }
          // Power loss may persist any subset of the writes not yet synced.
          const { bitmap: loaded } = await loadImage(file.imageWith((i) => ((keepMask >>> (i % 31)) & 1) === 1));
          expectSuperset(loaded.bits, survive);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a flipped bit anywhere in the slots never loses a durable bit; in the header it is an error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: 2 ** 31 }), fc.nat({ max: 7 }), async (position, bitInByte) => {
        const file = new SimFile();
        const bitmap = await PersistentBitmap.create(file, 40_000, 'flip');
        bitmap.setRange(100, 35_000);
        await bitmap.destage();
        bitmap.clearRange(100, 200);
        await bitmap.destage();
        const durable = bitmap.durableBits();
        const image = file.durable.slice();
        const at = position % image.length;
        image[at]! ^= 1 << bitInByte;
        if (at < 64) {
          await expect(loadImage(image)).rejects.toSatisfy((e: unknown) => e instanceof TidemarkError && e.code === 'METADATA_CORRUPT');
          return;
        }
        if (at < bitmapSuperblockBytes) return; // unused header padding: not covered by the checksum, not read
        const { bitmap: loaded, report } = await loadImage(image);
        expectSuperset(loaded.bits, durable);
        // Every flipped bit in a slot is detected and reported, never silently accepted.
        expect(report.recovered.length).toBe(1);
      }),
      { numRuns: 200 },
    );
  });

  it('truncation anywhere never loses a durable bit', async () => {
    const file = new SimFile();
    const bitmap = await PersistentBitmap.create(file, 100_000, 'trunc');
    bitmap.setRange(0, 100_000);
    await bitmap.destage();
    bitmap.clearRange(0, 50_000);
    await bitmap.destage();
    const durable = bitmap.durableBits();
    for (let length = 0; length < file.durable.length; length += 1531) {
      const image = file.durable.slice(0, length);
      if (length < bitmapSuperblockBytes) {
        await expect(loadImage(image)).rejects.toThrow(/unreadable/);
        continue;
      }
      const { bitmap: loaded } = await loadImage(image);
      expectSuperset(loaded.bits, durable);
    }
  });

  // Damage to either slot (the newer or the older image), to both, a blank slot beside a
  // destaged one and a truncated tail must all heal in one destage. One destage leaves the
  // newer image in B; two leave it in A.
  const slotA = bitmapSuperblockBytes;
  const slotB = bitmapSuperblockBytes + bitmapSlotBytes;
  const damages: [string, number, (image: Uint8Array) => Uint8Array][] = [
    ['slot A (older)', 1, (image) => flipByte(image, slotA + 100)],
    ['slot B (newer)', 1, (image) => flipByte(image, slotB + 100)],
    ['slot A (newer)', 2, (image) => flipByte(image, slotA + 100)],
    ['slot B (older)', 2, (image) => flipByte(image, slotB + 100)],
    ['both slots', 2, (image) => flipByte(flipByte(image, slotA + 100), slotB + 100)],
    ['slot A (newer) zeroed', 2, (image) => zeroRange(image, slotA, bitmapSlotBytes)],
    ['slot B (older) zeroed', 2, (image) => zeroRange(image, slotB, bitmapSlotBytes)],
    ['truncated inside slot B', 1, (image) => image.slice(0, slotB + 100)],
  ];
  it.each(damages)(
    'recovered segments (damage: %s after %i destages) are rewritten at the next destage, so the file heals',
    async (_name, destages, damage) => {
      const file = new SimFile();
      const bitmap = await PersistentBitmap.create(file, 1000, 'heal');
      for (let d = 0; d < destages; d++) {
        bitmap.set(5 + d);
        await bitmap.destage();
      }
      const reopened = SimFile.from(damage(file.durable));
      const { bitmap: loaded, report } = await PersistentBitmap.load(reopened);
      expect(report.recovered).toHaveLength(1);
      expect(loaded.bits.popcount()).toBe(1000);
      loaded.clearRange(0, 1000);
      loaded.set(9);
      await loaded.destage();
      const { bitmap: healed, report: after } = await loadImage(reopened.durable);
      expect(after.recovered).toEqual([]);
      expect([...healed.bits.indexes()]).toEqual([9]);
    },
  );

  it('concurrent destage calls coalesce and each resolves only when its bits are durable', async () => {
    const file = new SimFile();
    const bitmap = await PersistentBitmap.create(file, 100_000, 'group');
    const syncsBefore = file.syncs;
    bitmap.set(1);
    const first = bitmap.destage();
    // Changed while the first pass runs: these need a second pass, and all three share it.
    bitmap.set(90_000);
    const second = bitmap.destage();
    bitmap.set(50_000);
    const third = bitmap.destage();
    const fourth = bitmap.destage();
    await Promise.all([first, second, third, fourth]);
    expect(bitmap.durableGet(1)).toBe(true);
    expect(bitmap.durableGet(90_000)).toBe(true);
    expect(bitmap.durableGet(50_000)).toBe(true);
    expect(bitmap.stats.destages).toBe(2);
    expect(file.syncs - syncsBefore).toBe(2);
  });
});

function flipByte(image: Uint8Array, at: number): Uint8Array {
  const copy = image.slice();
  copy[at]! ^= 0xff;
  return copy;
}

function zeroRange(image: Uint8Array, from: number, length: number): Uint8Array {
  const copy = image.slice();
  copy.fill(0, from, from + length);
  return copy;
}
