// Seeded randomness for benchmark data (mulberry32), so every run can be reproduced from its seed.

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

/** A uniformly chosen integer in [0, count). */
export function randomIndexBelow(random: RandomUint32, count: number): number {
  return Math.floor((random() / 2 ** 32) * count);
}

/** A buffer of `bytes` random bytes (a multiple of 4). */
export function randomBuffer(random: RandomUint32, bytes: number): Buffer {
  if (bytes % 4 !== 0) throw new Error(`random buffer of ${bytes} bytes is not whole 32-bit words`);
  const buffer = Buffer.alloc(bytes);
  const words = new Uint32Array(buffer.buffer, buffer.byteOffset, bytes / 4);
  for (let w = 0; w < words.length; w++) words[w] = random();
  return buffer;
}
