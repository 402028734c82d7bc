// A volume's snapshot registry and change maps on real files: what a crash leaves behind is
// cleaned up on reopen, a damaged snapshot never keeps its volume from opening, a damaged
// index refuses to open (writes would go unrecorded), and a re-created file gets no stale
// metadata.
import { mkdir, open, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { changeMapsPerVolumeMax } from '../../src-engine/constants';
import { TidemarkError } from '../../src-engine/errors';
import { SnapshotRegistry } from '../../src-engine/snapshot';
import { ChangeMaps } from '../../src-engine/tracking';
import { VolumeCatalog, type OpenedVolume } from '../../src-engine/volume';
import { randomBytes, seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 16;
const isCode = (code: string) => (e: unknown) => e instanceof TidemarkError && e.code === code && e.hint.length > 0;

async function makeVolume() {
  const dir = await tempDir();
  const catalog = new VolumeCatalog(join(dir, 'home'));
  const path = join(dir, 'vol.img');
  const record = await catalog.create(path, regionCount * regionBytes, regionBytes);
  const volumeDir = catalog.volumeDir(record.volumeId);
  const snapshotsDir = catalog.snapshotsDir(record.volumeId);
  return { dir, catalog, path, volumeDir, snapshotsDir, opened: await catalog.open(path) };
}

/** Writes `regions` of the volume with seeded random bytes; returns what each region now holds. */
async function writeRegions(opened: OpenedVolume, regions: number[], seed: number): Promise<Map<number, Buffer>> {
  const random = seededRandom(seed);
  const written = new Map<number, Buffer>();
  for (const r of regions) {
    const data = randomBytes(random, regionBytes);
    await opened.volume.writeRegion(r, data);
    written.set(r, data);
  }
  return written;
}

describe('snapshot registry', () => {
  it('removes what an interrupted create or delete left, and reopens the complete snapshots', async () => {
    const { catalog, path, snapshotsDir, opened } = await makeVolume();
    const registry = await SnapshotRegistry.open(opened.volume, snapshotsDir, { reflink: 'never' });
    const before = await writeRegions(opened, [0, 1, 2], 1);
    const kept = await registry.create('kept');
    await registry.close();
    await opened.close();
    // A crash inside createSnapshot (directory made, record not yet written) and inside delete (renamed, not removed).
    const halfMade = join(snapshotsDir, '11111111-1111-4111-8111-111111111111');
    await mkdir(halfMade);
    await writeFile(join(halfMade, 'store.img'), 'partial');
    const halfDeleted = join(snapshotsDir, '.deleting-22222222-2222-4222-8222-222222222222');
    await mkdir(halfDeleted);

    const reopened = await catalog.open(path);
    const again = await SnapshotRegistry.open(reopened.volume, snapshotsDir);
    expect((await readdir(snapshotsDir)).sort()).toEqual([kept.record.snapshotId]);
    expect(again.list().snapshots.map((s) => s.record.label)).toEqual(['kept']);
    await writeRegions(reopened, [1], 2); // copied aside first: the reopened snapshot is attached
    expect((await again.get(kept.record.snapshotId).readRegion(1)).equals(before.get(1)!)).toBe(true);
    await again.close();
    await reopened.close();
  });

  it('lists a damaged snapshot without refusing the volume, and deletes it', async () => {
    const { catalog, path, snapshotsDir, opened } = await makeVolume();
    const registry = await SnapshotRegistry.open(opened.volume, snapshotsDir, { reflink: 'never' });
    const damaged = await registry.create();
    const healthy = await registry.create();
    await writeRegions(opened, [3], 3);
    await registry.close();
    await opened.close();
    const handle = await open(join(snapshotsDir, damaged.record.snapshotId, 'valid.tmbm'), 'r+');
    await handle.write(Buffer.from([0xff, 0xff]), 0, 2, 4096 + 40); // inside segment 0's slot
    await handle.close();

    const reopened = await catalog.open(path);
    const again = await SnapshotRegistry.open(reopened.volume, snapshotsDir);
    const listed = again.list();
    expect(listed.snapshots.map((s) => s.record.snapshotId)).toEqual([healthy.record.snapshotId]);
    expect(listed.damaged.map((d) => [d.snapshotId, d.error.code])).toEqual([[damaged.record.snapshotId, 'METADATA_CORRUPT']]);
    expect(() => again.get(damaged.record.snapshotId)).toThrow(/damaged/);
    await again.delete(damaged.record.snapshotId);
    expect(again.list().damaged).toEqual([]);
    expect(await readdir(snapshotsDir)).toEqual([healthy.record.snapshotId]);
    await again.close();
    await reopened.close();
  });
});

describe('change maps', () => {
  it('removes bitmap files no record names (a create or delete interrupted by a crash)', async () => {
    const { volumeDir, opened } = await makeVolume();
    const maps = await ChangeMaps.open(opened.volume, volumeDir);
    const next = await maps.create('next');
    await maps.close();
    await writeFile(join(volumeDir, 'bitmaps', '0123456789abcdef.tmbm'), 'orphan');
    await writeFile(join(volumeDir, 'bitmaps', `.${next.bitmapId}.tmbm.tmp-1`), 'temporary');
    const again = await ChangeMaps.open(opened.volume, volumeDir);
    expect(await readdir(join(volumeDir, 'bitmaps'))).toEqual([`${next.bitmapId}.tmbm`]);
    expect(again.list()).toEqual([next]);
    await again.close();
    await opened.close();
  });

  it('refuses to open with a damaged index: writes would go unrecorded', async () => {
    const { volumeDir, opened } = await makeVolume();
    const maps = await ChangeMaps.open(opened.volume, volumeDir);
    await maps.create('next');
    await maps.close();
    await writeFile(join(volumeDir, 'bitmaps.json'), '{"format":"tidemark/change-maps","version":1,"sha256":"0","body":{"maps":[]}}');
    await expect(ChangeMaps.open(opened.volume, volumeDir)).rejects.toSatisfy(isCode('METADATA_CORRUPT'));
    await opened.close();
  });

  it(`holds at most ${changeMapsPerVolumeMax} maps`, async () => {
    const { volumeDir, opened } = await makeVolume();
    const maps = await ChangeMaps.open(opened.volume, volumeDir);
    for (let i = 0; i < changeMapsPerVolumeMax; i++) await maps.create(`m${i}`);
    await expect(maps.create('one-more')).rejects.toSatisfy(isCode('USAGE'));
    await writeRegions(opened, [4], 4);
    expect(maps.list().every((m) => m.setCount === 1)).toBe(true);
    await maps.close();
    await opened.close();
  });

  it('a volume file created again at a path gets none of the deleted file’s snapshots or maps', async () => {
    const { catalog, path, volumeDir, snapshotsDir, opened } = await makeVolume();
    const maps = await ChangeMaps.open(opened.volume, volumeDir);
    await maps.create('next');
    const registry = await SnapshotRegistry.open(opened.volume, snapshotsDir);
    await registry.create();
    await registry.close();
    await maps.close();
    await opened.close();
    const { rm } = await import('node:fs/promises');
    await rm(path); // deleted outside Tidemark
    await catalog.create(path, regionCount * regionBytes, regionBytes);
    expect((await readdir(volumeDir)).sort()).toEqual(['realized.tmbm', 'volume.json']);
  });
});
