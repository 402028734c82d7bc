// bitscan: counting the set bits of a sparse Bitset with nextSetBit (word-level scan) against a
// per-bit loop over the same words. Both must find the same count.

import { Bitset } from '../src-engine/bitmap';
import { scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { mulberry32, randomIndexBelow } from './random';
import { makeFigure } from './report';
import { measureRounds, minMs } from './timing';

const bitCountBase = 16 * 2 ** 20;
const setFraction = 0.01;
const rounds = 5;
const goalRatio = 10;

/** Sets about `setFraction` of the bits at seeded random positions (repeats fall together). */
function sparseBitset(bitCount: number, seed: number): Bitset {
  const bits = new Bitset(bitCount);
  const random = mulberry32(seed);
  const picks = Math.max(1, Math.floor(bitCount * setFraction));
  for (let p = 0; p < picks; p++) bits.set(randomIndexBelow(random, bitCount));
  return bits;
}

/** Tidemark: jump from set bit to set bit. */
function countBySetBitScan(bits: Bitset): number {
  const bitCount = bits.bitCount;
  let count = 0;
  for (let i = bits.nextSetBit(0); i !== -1; i = i + 1 < bitCount ? bits.nextSetBit(i + 1) : -1) count++;
  return count;
}

/** Peer: test every bit, inline on the words (Bitset.get would add an assertion per bit). */
function countByPerBitLoop(bits: Bitset): number {
  const words = bits.words;
  const bitCount = bits.bitCount;
  let count = 0;
  for (let i = 0; i < bitCount; i++) if ((words[i >>> 5]! & (1 << (i & 31))) !== 0) count++;
  return count;
}

function checkCounts(counts: { scan: number[]; perBit: number[] }, expected: number): void {
  const wrong = [...counts.scan, ...counts.perBit].filter((count) => count !== expected);
  if (wrong.length > 0) {
    throw new Error(`bitscan: counts disagree — popcount ${expected}, nextSetBit ${counts.scan.join('/')}, per-bit ${counts.perBit.join('/')}`);
  }
}

function megabitsPerSecond(bitCount: number, elapsedMs: number): number {
  return bitCount / 1e6 / (elapsedMs / 1000);
}

async function run(context: BenchContext): Promise<void> {
  const bitCount = scaledCount(bitCountBase, context.sizeFactor, 32);
  context.log(`bitscan: ${bitCount} bits, ${setFraction * 100}% set at random (seed ${context.seed}), best of ${rounds}`);
  const bits = sparseBitset(bitCount, context.seed);
  const setBitCount = bits.popcount();
  const counts = { scan: [] as number[], perBit: [] as number[] };
  const samplesMs = await measureRounds(rounds, {
    perBit: () => counts.perBit.push(countByPerBitLoop(bits)),
    scan: () => counts.scan.push(countBySetBitScan(bits)),
  });
  checkCounts(counts, setBitCount);
  const scanMs = minMs(samplesMs.scan);
  const perBitMs = minMs(samplesMs.perBit);
  context.record(
    makeFigure({
      name: 'bitscan',
      tidemark: { value: megabitsPerSecond(bitCount, scanMs), unit: 'Mbit/s' },
      peer: { name: 'per-bit-loop', value: megabitsPerSecond(bitCount, perBitMs), unit: 'Mbit/s' },
      ratio: perBitMs / scanMs,
      goal: goalRatio,
      details: {
        seed: context.seed,
        bitCount,
        setBitCount,
        rounds,
        tidemarkBestMs: scanMs,
        peerBestMs: perBitMs,
        tidemarkMs: samplesMs.scan,
        peerMs: samplesMs.perBit,
      },
    }),
  );
}

export const bitscanBenchmark: Benchmark = {
  name: 'bitscan',
  description: 'count the set bits of a 1%-full 16 Mbit Bitset: nextSetBit scan vs a per-bit loop',
  run,
};
