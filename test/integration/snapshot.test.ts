// Snapshots on real files: after random writes a snapshot reads exactly the volume as it was
// at snapshot time, concurrent writers included; it survives a reopen; delete releases it.
import fc from 'fast-check';
import { readFile, readdir, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openBitmapFile } from '../../src-engine/bitmap';
import { TidemarkError } from '../../src-engine/errors';
import { createSnapshot, openSnapshot } from '../../src-engine/snapshot';
import { FileBackend, Volume, VolumeCatalog, type VolumeBackend } from '../../src-engine/volume';
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

/** Files under `directory` this process still holds open (Linux /proc). */
async function openDescriptorsUnder(directory: string): Promise<string[]> {
  const targets = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((target) => target.startsWith(directory));
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
    await opened.volume.write(5, Buffer.alloc(10, 2)); // region 0 again: no second copy
    await opened.volume.write(3 * regionBytes, Buffer.alloc(regionBytes + 1, 3));
    await opened.volume.write(4 * regionBytes, Buffer.alloc(1, 4)); // region 4 again
    expect(snapshot.copiedRegions()).toBe(3);
    expect(snapshot.stats.regionsCopied).toBe(3);
    // A second copy would have put post-snapshot bytes into the store.
    expect((await snapshot.read(0, 5 * regionBytes)).equals(Buffer.alloc(5 * regionBytes))).toBe(true);
    expect((await stat(join(dir, 'snap', 'store.img'))).blocks * 512).toBeLessThan(volumeBytes / 4); // sparse store
    await snapshot.delete();
    await opened.close();
  });

  it('a batch announced ahead of its writes is copied aside, durably, before any of them lands', async () => {
    const dir = await tempDir();
    const path = join(dir, 'vol.img');
    const old = randomBytes(seededRandom(7), volumeBytes);
    old.fill(0, 5 * regionBytes, 6 * regionBytes); // an all-zero region: validated, nothing stored
    await writeFile(path, old);
    const file = await FileBackend.open(path);
    const snapDir = join(dir, 'snap');
    const checked: number[] = [];
    // Every write to the volume first checks, from the files, that its regions' snapshot
    // bytes are already in the store and validated in valid.tmbm (the copy-on-write order).
    const backend: VolumeBackend = {
      path: file.path,
      kind: file.kind,
      sizeBytes: file.sizeBytes,
      pread: (buffer, offsetBytes) => file.pread(buffer, offsetBytes),
      pwrite: async (buffer, offsetBytes) => {
        const { bitmap } = await openBitmapFile(join(snapDir, 'valid.tmbm'), 'r');
        const store = await readFile(join(snapDir, 'store.img'));
        for (let r = Math.floor(offsetBytes / regionBytes); r * regionBytes < offsetBytes + buffer.length; r++) {
          expect(bitmap.durableGet(r)).toBe(true);
          expect(store.subarray(r * regionBytes, (r + 1) * regionBytes).equals(old.subarray(r * regionBytes, (r + 1) * regionBytes))).toBe(true);
          checked.push(r);
        }
        await bitmap.close();
        await file.pwrite(buffer, offsetBytes);
      },
      flush: () => file.flush(),
      close: () => file.close(),
    };
    const volume = new Volume(backend, regionBytes);
    const snapshot = await createSnapshot(volume, snapDir, { reflink: 'never' });
    const batch = [9, 2, 5, 7, 2, 64];
    await volume.prepareWrites(batch);
    expect(snapshot.copiedRegions()).toBe(5);
    for (const r of [2, 5, 7, 9, 64]) expect(snapshot.locate(r).path).toBe(join(snapDir, 'store.img'));
    for (const r of [2, 5, 7, 9]) await volume.write(r * regionBytes, Buffer.alloc(regionBytes, 0xee));
    expect(snapshot.stats.regionsCopied).toBe(5); // the writes found their regions copied already
    await volume.write(3 * regionBytes, Buffer.alloc(10, 0xdd)); // not announced: copied by its own write
    expect(checked).toEqual([2, 5, 7, 9, 3]);
    expect((await snapshot.read(0, volumeBytes)).equals(old)).toBe(true);
    await expect(volume.prepareWrites([65])).rejects.toThrow(/outside/);
    await snapshot.delete();
    await volume.close();
  });

  it('a registered volume prepares its snapshots when regions are marked written ahead of a batch', async () => {
    const { dir, opened } = await makeVolume();
    await opened.volume.write(0, Buffer.alloc(4 * regionBytes, 0x11));
    const snapshot = await createSnapshot(opened.volume, join(dir, 'snap'), { reflink: 'never' });
    await opened.realized!.markWritten([1, 3, 20]);
    expect(snapshot.copiedRegions()).toBe(3);
    expect(opened.realized!.bitmap.durableGet(20)).toBe(true);
    await opened.volume.write(regionBytes, Buffer.alloc(regionBytes, 0x22));
    expect((await snapshot.readRegion(1)).equals(Buffer.alloc(regionBytes, 0x11))).toBe(true);
    await snapshot.delete();
    await opened.close();
  });

  it('closing one snapshot while a write runs its hook leaves the other snapshot copying', async () => {
    const { dir, opened } = await makeVolume();
    const { volume } = opened;
    await volume.write(regionBytes, Buffer.alloc(regionBytes, 0xaa));
    const first = await createSnapshot(volume, join(dir, 'a'), { reflink: 'never' });
    const second = await createSnapshot(volume, join(dir, 'b'), { reflink: 'never' });
    const write = volume.write(regionBytes, Buffer.alloc(regionBytes, 0xbb));
    await new Promise((resolve) => setImmediate(resolve)); // the write is inside the hooks now
    await first.close();
    await write;
    expect((await second.readRegion(1)).equals(Buffer.alloc(regionBytes, 0xaa))).toBe(true);
    expect(second.stats.regionsCopied).toBe(1);
    await second.delete();
    await opened.close();
  });

  it('reopens only with the volume it was taken of', async () => {
    const { dir, catalog, opened } = await makeVolume();
    const snapshot = await createSnapshot(opened.volume, join(dir, 'snap'), { reflink: 'never' });
    await snapshot.close();
    const otherPath = join(dir, 'other.img');
    await catalog.create(otherPath, volumeBytes, regionBytes);
    const other = await catalog.open(otherPath);
    await expect(openSnapshot(other.volume, join(dir, 'snap'))).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && e.code === 'USAGE' && /was taken of .*vol\.img, not of .*other\.img/.test(e.message),
    );
    await other.close();
    await opened.close();
  });

  it('reopening attaches with the volume still: a write already in flight finishes first', async () => {
    const { dir, opened } = await makeVolume();
    const { volume } = opened;
    const snapshot = await createSnapshot(volume, join(dir, 'snap'), { reflink: 'never' });
    await snapshot.close();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    volume.addWriteHook({ name: 'held', beforeWrite: () => held });
    const order: string[] = [];
    const write = volume.write(0, Buffer.alloc(1, 7)).then(() => order.push('write'));
    await new Promise((resolve) => setImmediate(resolve));
    const reopening = openSnapshot(volume, join(dir, 'snap')).then((s) => (order.push('open'), s));
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    const reopened = await reopening;
    await write;
    expect(order).toEqual(['write', 'open']);
    await reopened.delete();
    await opened.close();
  });

  it('closing while a copy-aside fails still releases the store and the validation map', async () => {
    const dir = await tempDir();
    const path = join(dir, 'vol.img');
    await writeFile(path, Buffer.alloc(volumeBytes));
    const file = await FileBackend.open(path);
    let releaseRead: (() => void) | undefined;
    const backend: VolumeBackend = {
      path: file.path,
      kind: file.kind,
      sizeBytes: file.sizeBytes,
      // Once armed, the next read waits for the test, then fails (a dying disk).
      pread: (buffer, offsetBytes) =>
        releaseRead === undefined
          ? file.pread(buffer, offsetBytes)
          : new Promise((_, reject) => (releaseRead = () => reject(Object.assign(new Error('EIO'), { code: 'EIO' })))),
      pwrite: (buffer, offsetBytes) => file.pwrite(buffer, offsetBytes),
      flush: () => file.flush(),
      close: () => file.close(),
    };
    const volume = new Volume(backend, regionBytes);
    const snapshot = await createSnapshot(volume, join(dir, 'snap'), { reflink: 'never' });
    releaseRead = () => undefined;
    const write = volume.write(0, Buffer.alloc(1, 1));
    const writeFailed = expect(write).rejects.toThrow(/EIO/);
    await new Promise((resolve) => setImmediate(resolve)); // the copy-aside is reading now
    const closing = snapshot.close();
    releaseRead();
    await closing;
    await writeFailed;
    expect(await openDescriptorsUnder(join(dir, 'snap'))).toEqual([]);
    await volume.close();
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
