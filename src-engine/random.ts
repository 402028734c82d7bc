// One seeded PRNG (mulberry32) for everything that needs reproducible randomness: the lab's
// write generator, benchmarks and tests. Not for anything secret (use node:crypto).

/** A generator of uniformly distributed unsigned 32-bit integers. */
export type RandomUint32 = () => number;

export function mulberry32(seed: number): RandomUint32 {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Uniform fractions in [0, 1) from a seed. */
export function seededFractions(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 2 ** 32;
}
