// SnapshotRegistry.delete: renaming the snapshot's directory away from its id is the commit
// point, and the copy-on-write hook goes only after it. A delete whose rename fails (injected
// through the registry's rename seam) leaves the snapshot listed, readable and protected — and
// a restart reopens it with the bytes it was taken with. A delete that succeeds fails reads of
// the snapshot still holding it.
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rename as fsRename, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '../../src-engine/errors';
import { SnapshotRegistry, type SnapshotRegistryOptions } from '../../src-engine/snapshot';
import { VolumeCatalog } from '../../src-engine/volume';
import { randomBytes, seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 8;

async function makeVolume() {
  const dir = await tempDir();
  const catalog = new VolumeCatalog(join(dir, 'home'));
  const path = join(dir, 'vol.img');
  const record = await catalog.create(path, regionCount * regionBytes, regionBytes);
  return { catalog, path, snapshotsDir: catalog.snapshotsDir(record.volumeId) };
}

/** fs.rename, failing with EIO the next `failures` times (what a full journal or a dying disk does). */
function flakyRename(): { rename: NonNullable<SnapshotRegistryOptions['rename']>; fail: (times: number) => void; calls: string[] } {
  let failures = 0;
  const calls: string[] = [];
  const rename = async (from: string, to: string) => {
    calls.push(`${basename(from)} -> ${basename(to)}`);
    if (failures > 0) {
      failures -= 1;
      throw Object.assign(new Error(`EIO: i/o error, rename '${from}' -> '${to}'`), { code: 'EIO', errno: -5, syscall: 'rename' });
    }
    await fsRename(from, to);
  };
  return { rename, fail: (times) => (failures = times), calls };
}

const isCode = (code: string, message: RegExp) => (e: unknown) => e instanceof TidemarkError && e.code === code && message.test(e.message) && e.hint.length > 0;

describe('snapshot registry delete', () => {
  it('a delete whose rename fails keeps the snapshot listed and protected, across a restart', async () => {
    const { catalog, path, snapshotsDir } = await makeVolume();
    const seam = flakyRename();
    let opened = await catalog.open(path);
    const random = seededRandom(17);
    const before = Array.from({ length: regionCount }, () => randomBytes(random, regionBytes));
    for (const [r, data] of before.entries()) await opened.volume.writeRegion(r, data);
    let registry = await SnapshotRegistry.open(opened.volume, snapshotsDir, { reflink: 'never', rename: seam.rename });
    const snapshot = await registry.create('kept');
    const id = snapshot.record.snapshotId;

    seam.fail(1);
    const failed = await registry.delete(id).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(TidemarkError);
    expect(seam.calls).toEqual([`${id} -> .deleting-${id}`]);
    expect(registry.list().snapshots.map((s) => s.record.snapshotId)).toEqual([id]);
    expect(await readdir(snapshotsDir)).toEqual([id]);

    // Still protected: writes after the failed delete copy the old bytes aside first.
    for (const r of [1, 4, 7]) await opened.volume.writeRegion(r, randomBytes(random, regionBytes));
    expect(snapshot.copiedRegions()).toBe(3);
    for (const [r, data] of before.entries()) expect((await registry.get(id).readRegion(r)).equals(data), `region ${r}`).toBe(true);
    expect(failed).toSatisfy(isCode('IO', new RegExp(`^cannot delete snapshot ${id} of .*EIO.*; the snapshot is kept and still protected$`)));

    // A restart reopens it, hook attached, with the bytes it was taken with.
    await registry.close();
    await opened.close();
    opened = await catalog.open(path);
    registry = await SnapshotRegistry.open(opened.volume, snapshotsDir, { reflink: 'never', rename: seam.rename });
    expect(registry.list()).toMatchObject({ snapshots: [{ record: { snapshotId: id, label: 'kept' } }], damaged: [] });
    await opened.volume.writeRegion(0, randomBytes(random, regionBytes));
    for (const [r, data] of before.entries()) expect((await registry.get(id).readRegion(r)).equals(data), `region ${r} after the restart`).toBe(true);

    // Deleting again goes through; a reader still holding the snapshot is told it was deleted.
    const held = registry.get(id);
    await registry.delete(id);
    expect(registry.list()).toEqual({ snapshots: [], damaged: [] });
    expect(await readdir(snapshotsDir)).toEqual([]);
    expect(() => registry.get(id)).toThrow(/has no snapshot/);
    await expect(held.readRegion(0)).rejects.toSatisfy(isCode('NOT_FOUND', new RegExp(`^snapshot ${id} of .* was deleted while being read$`)));
    await registry.close();
    await opened.close();
  });

  it('a damaged snapshot whose delete fails stays listed as damaged', async () => {
    const { catalog, path, snapshotsDir } = await makeVolume();
    const seam = flakyRename();
    const opened = await catalog.open(path);
    const id = randomUUID();
    // A snapshot directory whose record does not verify: it reopens as damaged.
    let registry = await SnapshotRegistry.open(opened.volume, snapshotsDir, { reflink: 'never', rename: seam.rename });
    await registry.create(); // makes the directory
    await registry.close();
    await mkdir(join(snapshotsDir, id));
    await writeFile(join(snapshotsDir, id, 'snapshot.json'), '{"not": "a record"}');
    registry = await SnapshotRegistry.open(opened.volume, snapshotsDir, { reflink: 'never', rename: seam.rename });
    expect(registry.list().damaged.map((d) => d.snapshotId)).toEqual([id]);

    seam.fail(1);
    await expect(registry.delete(id)).rejects.toSatisfy((e: unknown) => e instanceof TidemarkError && e.code === 'IO');
    expect(registry.list().damaged.map((d) => d.snapshotId)).toEqual([id]);
    await registry.delete(id);
    expect(registry.list().damaged).toEqual([]);
    expect(await readdir(snapshotsDir)).toHaveLength(1); // the healthy one
    await registry.close();
    await opened.close();
  });
});
