// Signing a copy-on-write snapshot while the volume keeps being written: every signature is
// of the bytes at snapshot time, including regions located on the volume and overwritten
// before a worker read them.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';
import { SignaturePool, signBytes, type RegionToSign, type SignOptions } from '../../src-engine/signature';
import { createSnapshot, signSnapshot, signSnapshotBatches, type RegionSigner } from '../../src-engine/snapshot';
import { VolumeCatalog } from '../../src-engine/volume';
import { randomBytes, seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 64 * 1024;
const regionCount = 64;

async function makeVolume() {
  const dir = await tempDir();
  const catalog = new VolumeCatalog(join(dir, 'home'));
  const path = join(dir, 'vol.img');
  await catalog.create(path, regionCount * regionBytes, regionBytes);
  const opened = await catalog.open(path);
  await opened.volume.write(0, randomBytes(seededRandom(3), regionCount * regionBytes));
  return { dir, opened, volume: opened.volume };
}

async function expectedSignatures(data: Buffer): Promise<string[]> {
  const hex: string[] = [];
  for (let r = 0; r < regionCount; r++) {
    hex.push(Buffer.from(await signBytes('sha256', data.subarray(r * regionBytes, (r + 1) * regionBytes))).toString('hex'));
  }
  return hex;
}

describe('signSnapshot', () => {
  let pool: SignaturePool;
  beforeAll(async () => {
    pool = await SignaturePool.start('sha256', 2);
  });
  afterAll(async () => {
    await pool.dispose();
  });

  it('re-signs from the store a region overwritten between locating and reading it', async () => {
    const { dir, opened, volume } = await makeVolume();
    const atSnapshot = await volume.read(0, regionCount * regionBytes);
    const snapshot = await createSnapshot(volume, join(dir, 'snap'), { reflink: 'never' });
    // The worst case, made certain: every region is located first, then written, then read.
    const lateReader: RegionSigner = {
      algorithm: pool.algorithm,
      sign: async function* (items: Iterable<RegionToSign>, options?: SignOptions) {
        const located = [...items];
        for (let r = 20; r < 32; r++) await volume.write(r * regionBytes, Buffer.alloc(regionBytes, 0x5a));
        yield* pool.sign(located, options);
      },
    };
    const map = await signSnapshot(lateReader, snapshot);
    const expected = await expectedSignatures(atSnapshot);
    for (let r = 0; r < regionCount; r++) expect(map.hex(r), `region ${r}`).toBe(expected[r]);
    await snapshot.delete();
    await opened.close();
  });

  it('streams each region once, never a signature of bytes written after the snapshot', async () => {
    const { dir, opened, volume } = await makeVolume();
    const atSnapshot = await volume.read(0, regionCount * regionBytes);
    const snapshot = await createSnapshot(volume, join(dir, 'snap'), { reflink: 'never' });
    let overwritten = false;
    const lateReader: RegionSigner = {
      algorithm: pool.algorithm,
      sign: async function* (items: Iterable<RegionToSign>, options?: SignOptions) {
        const located = [...items];
        if (!overwritten) for (let r = 8; r < 40; r += 3) await volume.write(r * regionBytes, Buffer.alloc(regionBytes, 0xa5));
        overwritten = true;
        yield* pool.sign(located, options);
      },
    };
    const expected = await expectedSignatures(atSnapshot);
    const seen: number[] = [];
    for await (const batch of signSnapshotBatches(
      lateReader,
      snapshot,
      Array.from({ length: 40 }, (_, r) => r),
      { batchBytesMax: 4 * regionBytes },
    )) {
      batch.regionIndexes.forEach((r, i) => {
        seen.push(r);
        expect(Buffer.from(batch.signatures.subarray(i * 32, (i + 1) * 32)).toString('hex'), `region ${r}`).toBe(expected[r]);
      });
    }
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, r) => r));
    await snapshot.delete();
    await opened.close();
  });

  it('signs the point in time while writers keep writing, and signs only the regions asked for', async () => {
    const { dir, opened, volume } = await makeVolume();
    const atSnapshot = await volume.read(0, regionCount * regionBytes);
    const snapshot = await createSnapshot(volume, join(dir, 'snap'), { reflink: 'never' });
    const signing = signSnapshot(pool, snapshot, { batchBytesMax: regionBytes });
    const writes = Array.from({ length: regionCount }, (_, r) => volume.write(r * regionBytes, Buffer.alloc(regionBytes, r)));
    const [map] = await Promise.all([signing, ...writes]);
    const expected = await expectedSignatures(atSnapshot);
    for (let r = 0; r < regionCount; r++) expect(map.hex(r), `region ${r}`).toBe(expected[r]);
    const subset = new Bitset(regionCount);
    subset.setRange(10, 13);
    const partial = await signSnapshot(pool, snapshot, { regions: subset });
    expect([...partial.present.indexes()]).toEqual([10, 11, 12]);
    expect(partial.hex(11)).toBe(expected[11]);
    await snapshot.delete();
    await opened.close();
  });
});
