// Seeded test data (the engine's mulberry32), so every test byte is reproducible.

export { seededFractions as seededRandom } from '../../src-engine/random';

export function randomBytes(random: () => number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}
