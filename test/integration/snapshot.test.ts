// Snapshots on real files: after random writes a snapshot reads exactly the volume as it was
// at snapshot time, concurrent writers included; it survives a reopen; delete releases it.
import fc from 'fast-check';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '../../src-engine/errors';
import { createSnapshot, openSnapshot } from '../../src-engine/snapshot';
import { VolumeCatalog } from '../../src-engine/volume';
import { randomBytes, seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const volumeBytes = 64 * regionBytes + 1000; // a short last region

async function makeVolume() {
  const dir = await tempDir();
  const catalog = new VolumeCatalog(join(dir, 'home'));
  const path = join(dir, 'vol.img');
  await catalog.create(path, volumeBytes, regionBytes);
  return { dir, catalog, path, opened: await catalog.open(path) };
}

const writeArb = fc.record({ offset: fc.nat({ max: volumeBytes - 1 }), length: fc.integer({ min: 1, max: 3 * regionBytes }), seed: fc.nat() });

describe('copy-on-write snapshot', () => {
  it('reads the volume as of snapshot time after random writes, before and after reopening', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(writeArb, { maxLength: 12 }), fc.array(writeArb, { minLength: 1, maxLength: 20 }), async (before, after) => {
        const { dir, catalog, path, opened } = await makeVolume();
        const { volume } = opened;
        const apply = async (w: { offset: number; length: number; seed: number }) => {
          const length = Math.min(w.length, volumeBytes - w.offset);
          await volume.write(w.offset, randomBytes(seededRandom(w.seed), length));
        };
        for (const w of before) await apply(w);
        const expected = await volume.read(0, volumeBytes);
        const snapshot = await createSnapshot(volume, join(dir, 'snap'), { reflink: 'never' });
        await Promise.all(after.map(apply)); // concurrent writers
        expect((await snapshot.read(0, volumeBytes)).equals(expected)).toBe(true);
        for (let r = 0; r < volume.regionCount; r += 7) {
          const span = volume.geometry.region(r);
          expect((await snapshot.readRegion(r)).equals(expected.subarray(span.offsetBytes, span.offsetBytes + span.bytes))).toBe(true);
        }
        await snapshot.close();
        await opened.close();
        const reopened = await catalog.open(path);
        const again = await openSnapshot(reopened.volume, join(dir, 'snap'));
        await reopened.volume.write(0, Buffer.alloc(volumeBytes, 0xee));
        expect((await again.read(0, volumeBytes)).equals(expected)).toBe(true);
        await again.delete();
        await reopened.close();
        expect(await readdir(dir)).not.toContain('snap');
      }),
      { numRuns: 25 },
    );
  });

  it('copies a region aside only once, and only regions written after the snapshot', async () => {
    const { dir, opened } = await makeVolume();
    const snapshot = await createSnapshot(opened.volume, join(dir, 'snap'), { reflink: 'never' });
    await opened.volume.write(0, Buffer.alloc(10, 1));
    await opened.volume.write(5, Buffer.alloc(10, 2));
    await opened.volume.write(3 * regionBytes, Buffer.alloc(regionBytes + 1, 3));
    expect(snapshot.copiedRegions()).toBe(3);
    expect((await stat(join(dir, 'snap', 'store.img'))).blocks * 512).toBeLessThan(volumeBytes / 4); // sparse store
    await snapshot.delete();
    await opened.close();
  });

  it('refuses a damaged validation map instead of reading wrong bytes', async () => {
    const { dir, catalog, path, opened } = await makeVolume();
    const snapshot = await createSnapshot(opened.volume, join(dir, 'snap'), { reflink: 'never' });
    await opened.volume.write(0, Buffer.alloc(100, 9));
    await snapshot.close();
    await opened.close();
    const { open } = await import('node:fs/promises');
    const handle = await open(join(dir, 'snap', 'valid.tmbm'), 'r+');
    await handle.write(Buffer.from([0xff, 0xff]), 0, 2, 4096 + 40);
    await handle.close();
    const reopened = await catalog.open(path);
    await expect(openSnapshot(reopened.volume, join(dir, 'snap'))).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && e.code === 'METADATA_CORRUPT' && /delete this snapshot/.test(e.hint),
    );
    await reopened.close();
  });

  it('reflink "always" on a filesystem without reflinks fails with the reason and the fix', async () => {
    const { dir, opened } = await makeVolume();
    const result = createSnapshot(opened.volume, join(dir, 'snap'), { reflink: 'always' });
    // ext4 and tmpfs refuse FICLONE; XFS/Btrfs would succeed and produce a reflink snapshot.
    const outcome = await result.then(
      (s) => ({ kind: s.record.kind, snapshot: s }),
      (e: unknown) => ({ kind: 'error' as const, error: e as TidemarkError }),
    );
    if (outcome.kind === 'error') {
      expect(outcome.error.code).toBe('UNSUPPORTED');
      expect(outcome.error.hint).toMatch(/XFS, Btrfs/);
      expect(await readdir(dir)).not.toContain('snap');
    } else {
      expect(outcome.kind).toBe('reflink');
      await outcome.snapshot.delete();
    }
    await opened.close();
  });
});
