// Volumes on real files and a real loop block device: sparse create, I/O by bytes and by
// region, realization tracked durably and computed by zero scan, clear refusals.
import { execFileSync } from 'node:child_process';
import { rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '../../src-engine/errors';
import { createBitmapFile } from '../../src-engine/bitmap';
import { FileBackend, Volume, VolumeCatalog, deviceNumbers, zeroScanRealized, type VolumeBackend, type WriteHook } from '../../src-engine/volume';
import { syncWriteBytesMax } from '../../src-engine/volume/backend';
import { mkfifo } from './fifo';
import { tempDir } from '../helpers/tmp';
import { requireTool } from '../helpers/tools';

const MiB = 2 ** 20;

function expectCode(code: string, pattern?: RegExp) {
  return (e: unknown) => e instanceof TidemarkError && e.code === code && (!pattern || pattern.test(e.oneLine()));
}

describe('file volumes', () => {
  it('creates a sparse file of the exact size and registers it', async () => {
    const dir = await tempDir();
    const catalog = new VolumeCatalog(join(dir, 'home'));
    const record = await catalog.create(join(dir, 'v.img'), 1024 * MiB, MiB);
    const info = await stat(join(dir, 'v.img'));
    expect(info.size).toBe(1024 * MiB);
    expect(info.blocks).toBeLessThan(64); // sparse: nothing allocated
    expect(record.regionBytes).toBe(MiB);
    await expect(catalog.create(join(dir, 'v.img'), MiB)).rejects.toSatisfy(expectCode('ALREADY_EXISTS', /already there/));
  });

  it('reads and writes by bytes and by region; the short last region is whole', async () => {
    const dir = await tempDir();
    const catalog = new VolumeCatalog(join(dir, 'home'));
    await catalog.create(join(dir, 'v.img'), 3 * 4096 + 10, 4096);
    const { volume, close } = await catalog.open(join(dir, 'v.img'));
    await volume.write(4090, Buffer.from('across regions'));
    expect((await volume.read(4090, 14)).toString()).toBe('across regions');
    await volume.writeRegion(3, Buffer.alloc(10, 7));
    expect(await volume.readRegion(3)).toEqual(Buffer.alloc(10, 7));
    await expect(volume.writeRegion(3, Buffer.alloc(11))).rejects.toSatisfy(expectCode('USAGE'));
    await expect(volume.write(3 * 4096 + 5, Buffer.alloc(6))).rejects.toSatisfy(expectCode('USAGE', /outside volume/));
    await volume.flush();
    await close();
  });

  it('tracks realization durably before the write lands, and zero scan agrees', async () => {
    const dir = await tempDir();
    const catalog = new VolumeCatalog(join(dir, 'home'));
    const path = join(dir, 'v.img');
    await catalog.create(path, 16 * 4096, 4096);
    const opened = await catalog.open(path);
    await opened.volume.write(5 * 4096 + 100, Buffer.alloc(9000, 1)); // regions 5, 6, 7
    await opened.volume.write(12 * 4096, Buffer.alloc(1, 1));
    expect(opened.realized!.bitmap.durableBits().popcount()).toBe(4);
    await opened.close();
    const info = await catalog.info(path);
    expect(info).toMatchObject({ realizedRegions: 4, realizedSource: 'tracked', regions: 16 });
    const raw = new Volume(await FileBackend.open(path, { readOnly: true }), 4096);
    expect([...(await zeroScanRealized(raw)).indexes()]).toEqual([5, 6, 7, 12]);
    await raw.close();
  });

  it('zero-scans a volume Tidemark did not create', async () => {
    const dir = await tempDir();
    const path = join(dir, 'foreign.img');
    await writeFile(path, Buffer.alloc(3 * MiB));
    await writeFile(path, Buffer.from([1]), { flag: 'r+' });
    const info = await new VolumeCatalog(join(dir, 'home')).info(path);
    expect(info).toMatchObject({ volumeId: null, realizedRegions: 1, realizedSource: 'zero-scan', regions: 3 });
  });

  it('writes up to syncWriteBytesMax on the calling thread, larger ones through the pool; both land', async () => {
    const path = join(await tempDir(), 'v.img');
    await writeFile(path, '');
    await truncate(path, 4 * MiB);
    const backend = await FileBackend.open(path);
    try {
      const small = Buffer.alloc(syncWriteBytesMax, 0x11);
      expect(backend.pwrite(small, 0)).toBeUndefined(); // done before it returned
      expect(backend.writeStats.syncWrites).toBe(1);
      const large = Buffer.alloc(syncWriteBytesMax + 1, 0x22);
      const pending = backend.pwrite(large, 2 * MiB);
      expect(pending).toBeInstanceOf(Promise); // the pool
      await pending;
      expect(backend.writeStats).toEqual({ syncWrites: 1, stalls: 0, backoffs: 0 });
      const back = Buffer.alloc(4 * MiB);
      await backend.pread(back, 0);
      expect(back.subarray(0, syncWriteBytesMax).every((b) => b === 0x11)).toBe(true);
      expect(back.subarray(2 * MiB, 2 * MiB + syncWriteBytesMax + 1).every((b) => b === 0x22)).toBe(true);
    } finally {
      await backend.close();
    }
  });

  it('refuses directories, FIFOs and missing paths with the cause and the fix', async () => {
    const dir = await tempDir();
    const catalog = new VolumeCatalog(join(dir, 'home'));
    await expect(catalog.info(dir)).rejects.toSatisfy(expectCode('NOT_A_VOLUME', /directory — give the path of a regular file or a block device/));
    const fifo = join(dir, 'fifo');
    mkfifo(fifo);
    await expect(FileBackend.open(fifo)).rejects.toSatisfy(expectCode('NOT_A_VOLUME', /FIFO/));
    await expect(catalog.info(join(dir, 'missing.img'))).rejects.toSatisfy(expectCode('NOT_FOUND', /no such file/));
  });

  it('refuses a registered volume resized outside Tidemark', async () => {
    const dir = await tempDir();
    const catalog = new VolumeCatalog(join(dir, 'home'));
    const path = join(dir, 'v.img');
    await catalog.create(path, 8 * 4096, 4096);
    await truncate(path, 9 * 4096);
    await expect(catalog.open(path)).rejects.toSatisfy(expectCode('SIZE_MISMATCH', /resized outside Tidemark/));
  });

  it('refuses a realization map made for another region count, naming it', async () => {
    const dir = await tempDir();
    const catalog = new VolumeCatalog(join(dir, 'home'));
    const path = join(dir, 'v.img');
    const record = await catalog.create(path, 8 * 4096, 4096);
    const mapPath = catalog.realizedPath(record.volumeId);
    await rm(mapPath);
    await (await createBitmapFile(mapPath, 9, 'realized')).close();
    await expect(catalog.open(path)).rejects.toSatisfy(expectCode('METADATA_CORRUPT', /realization map .*realized\.tmbm has 9 regions but volume .* has 8/));
    await expect(catalog.info(path)).rejects.toSatisfy(expectCode('METADATA_CORRUPT'));
  });

  it('quiesced() holds new writes until the work is done', async () => {
    const dir = await tempDir();
    const catalog = new VolumeCatalog(join(dir, 'home'));
    await catalog.create(join(dir, 'v.img'), 8 * 4096, 4096);
    const { volume, close } = await catalog.open(join(dir, 'v.img'));
    const order: string[] = [];
    let write: Promise<unknown> | undefined;
    await volume.quiesced(async () => {
      write = volume.write(0, Buffer.from('x')).then(() => order.push('write'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      order.push('work');
    });
    await write;
    expect(order).toEqual(['work', 'write']);
    await close();
  });
});

/** A backend that counts reads, to see how a scan reads. */
function countingBackend(backend: VolumeBackend): VolumeBackend & { reads: number } {
  const counting = {
    path: backend.path,
    kind: backend.kind,
    sizeBytes: backend.sizeBytes,
    reads: 0,
    pread: async (buffer: Uint8Array, offsetBytes: number) => {
      counting.reads += 1;
      await backend.pread(buffer, offsetBytes);
    },
    pwrite: (buffer: Uint8Array, offsetBytes: number) => backend.pwrite(buffer, offsetBytes),
    flush: () => backend.flush(),
    close: () => backend.close(),
  };
  return counting;
}

describe('write hooks', () => {
  it('a hook removed while a write runs it does not make the write skip the next hook', async () => {
    const dir = await tempDir();
    const catalog = new VolumeCatalog(join(dir, 'home'));
    await catalog.create(join(dir, 'v.img'), 8 * 4096, 4096);
    const { volume, close } = await catalog.open(join(dir, 'v.img'));
    const calls: string[] = [];
    let removeFirst: () => void = () => undefined;
    const first: WriteHook = {
      name: 'removes-itself',
      beforeWrite: async () => {
        calls.push('first');
        removeFirst();
      },
    };
    const second: WriteHook = { name: 'second', beforeWrite: async () => void calls.push('second') };
    removeFirst = volume.addWriteHook(first);
    volume.addWriteHook(second);
    await volume.write(0, Buffer.from('x'));
    await volume.write(0, Buffer.from('y'));
    expect(calls).toEqual(['first', 'second', 'second']);
    await close();
  });
});

/** A volume with no hooks of its own (no realization tracking): the test's hooks are all it runs. */
async function bareVolume(sizeBytes: number, regionBytes: number): Promise<Volume> {
  const path = join(await tempDir(), 'v.img');
  await writeFile(path, '');
  await truncate(path, sizeBytes);
  return new Volume(await FileBackend.open(path), regionBytes);
}

describe('writeNow, the hot write path', () => {
  it('writes before returning when nothing waits, and a hook that throws leaves the write gate as it found it', async () => {
    const volume = await bareVolume(8 * 4096, 4096);
    expect(volume.writeNow(4096, Buffer.from('sync'))).toBeUndefined();
    expect((await volume.read(4096, 4)).toString()).toBe('sync');
    const remove = volume.addWriteHook({
      name: 'refuses',
      beforeWrite: () => {
        throw new TidemarkError('IO', 'hook failed', 'nothing');
      },
    });
    expect(() => volume.writeNow(0, Buffer.from('no'))).toThrow(/hook failed/);
    remove();
    // A leaked entry in the gate would hold quiesced() for ever.
    const quiesced = volume.quiesced(async () => 'still');
    await expect(Promise.race([quiesced, new Promise((resolve) => setTimeout(() => resolve('held'), 1000))])).resolves.toBe('still');
    expect(() => volume.writeNow(8 * 4096 - 1, Buffer.from('xy'))).toThrow(/outside volume/);
    await volume.close();
  });

  it('carries a write on from the first hook that waits: later hooks, then the data, then the gate', async () => {
    const volume = await bareVolume(8 * 4096, 4096);
    const calls: string[] = [];
    let release: () => void = () => undefined;
    volume.addWriteHook({ name: 'sync', beforeWrite: () => void calls.push('sync') });
    volume.addWriteHook({
      name: 'waits',
      beforeWrite: () => {
        calls.push('waits');
        return new Promise<void>((resolve) => (release = resolve));
      },
    });
    volume.addWriteHook({ name: 'after', beforeWrite: (first, last) => void calls.push(`after ${first}-${last}`) });
    const pending = volume.writeNow(4093, Buffer.from('across'));
    expect(pending).toBeInstanceOf(Promise);
    expect(calls).toEqual(['sync', 'waits']);
    let quiescedAt = -1;
    const quiesced = volume.quiesced(async () => void (quiescedAt = calls.length));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await volume.read(4093, 6)).equals(Buffer.alloc(6))).toBe(true); // not written while the hook waits
    release();
    await pending;
    await quiesced;
    expect(calls).toEqual(['sync', 'waits', 'after 0-1']);
    expect(quiescedAt).toBe(3); // the gate was held until the write had run every hook
    expect((await volume.read(4093, 6)).toString()).toBe('across');
    await volume.close();
  });

  it('refuses a write that waited at the gate while the volume was locked, and writes nothing', async () => {
    const volume = await bareVolume(8 * 4096, 4096);
    let pending: Promise<void> | undefined;
    await volume.quiesced(async () => {
      pending = volume.writeNow(0, Buffer.from('late'));
      volume.setWriteLock({ pairId: 'p', generation: 1, message: 'locked meanwhile', hint: 'unlock' });
    });
    await expect(pending).rejects.toSatisfy(expectCode('PERMISSION', /locked meanwhile/));
    expect((await volume.read(0, 4)).equals(Buffer.alloc(4))).toBe(true);
    await volume.close();
  });

  it('leaves the gate when a waiting hook or the backend rejects', async () => {
    const volume = await bareVolume(8 * 4096, 4096);
    const remove = volume.addWriteHook({ name: 'rejects', beforeWrite: () => Promise.reject(new TidemarkError('IO', 'hook rejected', 'nothing')) });
    await expect(volume.writeNow(0, Buffer.from('a'))).rejects.toThrow(/hook rejected/);
    remove();
    const failing = new Volume({ ...countingBackend(volume.backend), pwrite: () => Promise.reject(new TidemarkError('IO', 'disk said no', 'nothing')) }, 4096);
    await expect(failing.writeNow(0, Buffer.from('b'))).rejects.toThrow(/disk said no/);
    for (const v of [volume, failing]) {
      const quiesced = v.quiesced(async () => 'free');
      await expect(Promise.race([quiesced, new Promise((resolve) => setTimeout(() => resolve('held'), 1000))])).resolves.toBe('free');
    }
    await volume.close();
  });

  it('waits at a closed gate and then runs every hook', async () => {
    const volume = await bareVolume(8 * 4096, 4096);
    const calls: string[] = [];
    volume.addWriteHook({ name: 'sync', beforeWrite: () => void calls.push('hook') });
    let pending: Promise<void> | undefined;
    await volume.quiesced(async () => {
      pending = volume.writeNow(0, Buffer.from('late'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      calls.push('instant');
    });
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    expect(calls).toEqual(['instant', 'hook']);
    expect((await volume.read(0, 4)).toString()).toBe('late');
    await volume.close();
  });
});

describe('realization by zero scan', () => {
  it('reads many small regions per call, and finds data at every region edge', async () => {
    const dir = await tempDir();
    const path = join(dir, 'scan.img');
    const regionBytes = 4096;
    const sizeBytes = 4096 * regionBytes + 100; // 16 MiB and a short last region
    await writeFile(path, Buffer.alloc(0));
    await truncate(path, sizeBytes);
    const marks = [0, regionBytes - 1, 5 * regionBytes, 1023 * regionBytes + regionBytes - 1, 1024 * regionBytes, sizeBytes - 1];
    for (const at of marks) await writeAt(path, at);
    const backend = countingBackend(await FileBackend.open(path, { readOnly: true }));
    const volume = new Volume(backend, regionBytes);
    const realized = await zeroScanRealized(volume);
    expect([...realized.indexes()]).toEqual([0, 5, 1023, 1024, 4096]);
    // 4 MiB per read: 5 reads, not one per region (4097).
    expect(backend.reads).toBeLessThanOrEqual(5);
    await volume.close();
  });

  it('scans regions larger than a read chunk by chunk', async () => {
    const dir = await tempDir();
    const path = join(dir, 'big-regions.img');
    await writeFile(path, Buffer.alloc(0));
    await truncate(path, 3 * 16 * MiB);
    await writeAt(path, 16 * MiB + 9 * MiB); // region 1, third chunk
    const volume = new Volume(await FileBackend.open(path, { readOnly: true }), 16 * MiB);
    expect([...(await zeroScanRealized(volume)).indexes()]).toEqual([1]);
    await volume.close();
  });
});

async function writeAt(path: string, offsetBytes: number): Promise<void> {
  const { open } = await import('node:fs/promises');
  const handle = await open(path, 'r+');
  await handle.write(Buffer.from([0x5a]), 0, 1, offsetBytes);
  await handle.close();
}

describe('block devices', () => {
  it('decodes Linux device numbers', () => {
    expect(deviceNumbers(0x0700)).toEqual({ major: 7, minor: 0 });
    expect(deviceNumbers(0x100300)).toEqual({ major: 3, minor: 256 });
    expect(deviceNumbers(0x10300)).toEqual({ major: 259, minor: 0 });
  });

  it('opens a real loop device, sizes it from sysfs, and reads what was written', async () => {
    requireTool('losetup');
    if (process.getuid?.() !== 0) throw new Error('this test attaches a loop device and needs root (CI runs as root)');
    const dir = await tempDir();
    const image = join(dir, 'loop.img');
    await writeFile(image, Buffer.alloc(0));
    await truncate(image, 8 * MiB);
    const device = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
    try {
      const catalog = new VolumeCatalog(join(dir, 'home'));
      const opened = await catalog.open(device, { regionBytes: MiB });
      expect(opened.volume.backend.kind).toBe('block');
      expect(opened.volume.sizeBytes).toBe(8 * MiB);
      await opened.volume.write(3 * MiB, Buffer.from('block'));
      await opened.volume.flush();
      await opened.close();
      const info = await catalog.info(device);
      expect(info).toMatchObject({ kind: 'block', regions: 8, realizedRegions: 1, realizedSource: 'zero-scan' });
    } finally {
      execFileSync('losetup', ['-d', device]);
    }
  });
});
