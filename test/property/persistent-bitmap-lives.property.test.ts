// PersistentBitmap across several lives: each life loads what the last one left (after a
// process crash, or a power loss keeping any subset of unsynced writes), edits, destages and
// acknowledges bits with ensureDurable while syncs fail at random and a crash may tear any
// write. No bit that was acknowledged and not cleared since is ever lost, in any life.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Bitset, PersistentBitmap } from '../../src-engine/bitmap';
import { bitmapSlotBytes } from '../../src-engine/constants';
import { CrashError, SimFile, SyncFailure } from '../sim/sim-file';

type Op = { kind: 'set' | 'clear'; from: number; length: number } | { kind: 'ensure'; from: number; length: number } | { kind: 'destage' };

interface Life {
  readonly ops: Op[];
  /** Bit i set: sync attempt i (mod 31) of this life fails with EIO. */
  readonly syncFailMask: number;
  readonly crash: { atWrite: number; tornBytes: number } | null;
  readonly restart: 'process-crash' | 'power-loss';
  readonly keepMask: number;
}

/** A life is rounds of edits, each ending with ensureDurable or destage, so most rounds write. */
function opsArb(bitCount: number): fc.Arbitrary<Op[]> {
  const span = { from: fc.nat({ max: bitCount - 1 }), length: fc.integer({ min: 1, max: 3000 }) };
  const edit = fc.record({ kind: fc.constantFrom('set' as const, 'set' as const, 'clear' as const), ...span });
  const commit = fc.oneof(fc.record({ kind: fc.constant('ensure' as const), ...span }), fc.record({ kind: fc.constant('destage' as const) }));
  const round = fc.tuple(fc.array(edit, { minLength: 1, maxLength: 3 }), commit).map(([edits, last]): Op[] => [...edits, last]);
  return fc.array(round, { minLength: 2, maxLength: 5 }).map((rounds) => rounds.flat());
}

// Tears that end inside the header (past the sequence) or the used payload are the ones that
// corrupt a slot of a small bitmap: past them the new and the old slot are both zero padding.
const tornBytesArb = fc.oneof(fc.integer({ min: 9, max: 31 }), fc.nat({ max: 160 }), fc.nat({ max: bitmapSlotBytes - 1 }));

function lifeArb(bitCount: number): fc.Arbitrary<Life> {
  return fc.record({
    ops: opsArb(bitCount),
    syncFailMask: fc.oneof(fc.constant(0), fc.nat()),
    crash: fc.option(fc.record({ atWrite: fc.nat({ max: 3 }), tornBytes: tornBytesArb }), { freq: 8 }),
    restart: fc.constantFrom('process-crash' as const, 'power-loss' as const),
    keepMask: fc.nat(),
  });
}

function expectSuperset(loaded: Bitset, required: Bitset, what: string): void {
  const lost = required.clone().subtract(loaded);
  expect(lost.popcount(), `${what}: acknowledged bits lost, first ${lost.nextSetBit(0)}`).toBe(0);
}

/** Runs one operation; returns false once the simulated process has crashed. */
async function runOp(bitmap: PersistentBitmap, op: Op, acknowledged: Bitset): Promise<boolean> {
  const to = op.kind === 'destage' ? bitmap.bitCount : Math.min(bitmap.bitCount, op.from + op.length);
  const from = op.kind === 'destage' ? 0 : op.from;
  try {
    if (op.kind === 'set') bitmap.setRange(from, to);
    else if (op.kind === 'clear') {
      bitmap.clearRange(from, to);
      acknowledged.clearRange(from, to); // a cleared bit may come back, it need not
    } else {
      await (op.kind === 'ensure' ? bitmap.ensureDurable(from, to) : bitmap.destage());
      for (const run of bitmap.bits.runs(from, to)) acknowledged.setRange(run.start, run.end);
    }
    return true;
  } catch (error) {
    if (error instanceof SyncFailure) return true; // the caller is told; nothing is acknowledged
    expect(error).toBeInstanceOf(CrashError);
    return false;
  }
}

/** A power loss now, keeping none or all of the unsynced writes, keeps every bit claimed durable. */
async function expectClaimHolds(file: SimFile, bitmap: PersistentBitmap): Promise<void> {
  const claimed = bitmap.durableBits().intersectWith(bitmap.bits);
  for (const image of [file.durable, file.imageWith(() => true)]) {
    expectSuperset((await PersistentBitmap.load(SimFile.from(image))).bitmap.bits, claimed, 'claimed durable');
  }
}

async function liveOnce(file: SimFile, bitmap: PersistentBitmap, life: Life, acknowledged: Bitset): Promise<Uint8Array> {
  file.failSync = (attempt) => ((life.syncFailMask >>> (attempt % 31)) & 1) === 1;
  if (life.crash) file.armCrash(life.crash.atWrite, life.crash.tornBytes);
  for (const op of life.ops) {
    if (!(await runOp(bitmap, op, acknowledged))) break;
    await expectClaimHolds(file, bitmap);
  }
  // The bitmap's own claim is at least as strong as what it acknowledged.
  const claimed = bitmap.durableBits().intersectWith(bitmap.bits);
  expect(acknowledged.isSubsetOf(claimed)).toBe(true);
  const image = life.restart === 'process-crash' ? file.volatile : file.imageWith((i) => ((life.keepMask >>> (i % 31)) & 1) === 1);
  expectSuperset((await PersistentBitmap.load(SimFile.from(image))).bitmap.bits, claimed, 'claimed durable');
  return image;
}

describe('PersistentBitmap across lives, with failing syncs', () => {
  it('never loses an acknowledged bit through crashes, power losses, EIO and recoveries', async () => {
    await fc.assert(
      fc.asyncProperty(
        // Mostly one segment, so lives keep hitting the same slots; sometimes three.
        fc
          .oneof({ arbitrary: fc.integer({ min: 1, max: 2000 }), weight: 3 }, { arbitrary: fc.integer({ min: 1, max: 80_000 }), weight: 1 })
          .chain((bitCount) => fc.record({ bitCount: fc.constant(bitCount), lives: fc.array(lifeArb(bitCount), { minLength: 3, maxLength: 6 }) })),
        async ({ bitCount, lives }) => {
          const acknowledged = new Bitset(bitCount);
          let image: Uint8Array | undefined;
          for (const [index, life] of lives.entries()) {
            const file = image ? SimFile.from(image) : new SimFile();
            const bitmap = image ? (await PersistentBitmap.load(file)).bitmap : await PersistentBitmap.create(file, bitCount, 'lives');
            expectSuperset(bitmap.bits, acknowledged, `start of life ${index}`);
            image = await liveOnce(file, bitmap, life, acknowledged);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
