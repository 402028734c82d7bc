// Reflink snapshots for real: an XFS filesystem (reflink=1) on a loop device, mounted in a
// temporary directory. Needs root (CI runs as root) and xfsprogs.
import { execFileSync } from 'node:child_process';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSnapshot, openSnapshot } from '../../src-engine/snapshot';
import { VolumeCatalog } from '../../src-engine/volume';
import { tempDir } from '../helpers/tmp';
import { requireTool } from '../helpers/tools';

async function withXfs<T>(work: (mountPoint: string) => Promise<T>): Promise<T> {
  requireTool('mkfs.xfs');
  if (process.getuid?.() !== 0) throw new Error('this test mounts an XFS loop filesystem and needs root (CI runs as root)');
  const dir = await tempDir();
  const image = join(dir, 'xfs.img');
  const mountPoint = join(dir, 'mnt');
  await writeFile(image, '');
  await truncate(image, 320 * 2 ** 20);
  await mkdir(mountPoint);
  execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', image]);
  execFileSync('mount', ['-o', 'loop', image, mountPoint]);
  try {
    return await work(mountPoint);
  } finally {
    execFileSync('umount', [mountPoint]);
  }
}

describe('reflink snapshot', () => {
  it('clones the volume on XFS, keeps the point in time, and survives a reopen', async () => {
    await withXfs(async (mnt) => {
      const catalog = new VolumeCatalog(join(mnt, 'home'));
      const path = join(mnt, 'v.img');
      await catalog.create(path, 16 * 2 ** 20, 2 ** 20);
      const opened = await catalog.open(path);
      await opened.volume.write(0, Buffer.alloc(2 ** 20, 1));
      const snapshot = await createSnapshot(opened.volume, join(mnt, 'snap'), { reflink: 'auto' });
      expect(snapshot.record.kind).toBe('reflink');
      await opened.volume.write(0, Buffer.alloc(2 ** 20, 2));
      expect((await snapshot.readRegion(0)).equals(Buffer.alloc(2 ** 20, 1))).toBe(true);
      expect(snapshot.locate(0).path).toBe(join(mnt, 'snap', 'clone.img'));
      await snapshot.close();
      const again = await openSnapshot(opened.volume, join(mnt, 'snap'));
      expect((await again.readRegion(0))[0]).toBe(1);
      await again.delete();
      await opened.close();
    });
  });
});
