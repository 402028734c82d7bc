// Seeded randomness for benchmark data (mulberry32), so every run can be reproduced from its seed.

import type { RandomUint32 } from '../src-engine/random';

export { mulberry32, type RandomUint32 } from '../src-engine/random';

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
