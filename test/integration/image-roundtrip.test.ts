// Seed images end to end (docs/image-format.md; docs/sync.md "Tests" 2): export a half-sparse
// primary, import into the paired secondary (which held other data), rewrite 1% of the primary's
// regions whole, and a signature resync sends only those; `sync` auto after an import works too.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';
import { exportImage, importImage, verifyImage } from '../../src-engine/image';
import { runSync, verifyPair } from '../../src-engine/replication';
import { makeLocalPair, resolverFor, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 64 * 1024;
const regionCount = 512;
const sizeBytes = (regionCount - 1) * regionBytes + 4096; // 32 MiB with a short last region
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261201);

function pick(random: () => number, count: number, from = 0, to = regionCount): number[] {
  const set = new Set<number>();
  while (set.size < count) set.add(from + Math.floor(random() * (to - from)));
  return [...set].sort((a, b) => a - b);
}

/** A primary with half its regions random (the short last one among them) and a few written as zeros; a secondary with other data. */
async function seededPair(seed: number) {
  const random = seededRandom(seed);
  const dataRegions = [...new Set([...pick(random, regionCount / 2 - 1, 0, regionCount - 1), regionCount - 1])].sort((a, b) => a - b);
  const zeroRegions = pick(random, 8).filter((r) => !dataRegions.includes(r) && r !== regionCount - 1);
  const secondaryOnly = pick(random, 24, 0, regionCount - 1);
  const dir = await tempDir();
  const pair = await makeLocalPair(dir, {
    sizeBytes,
    regionBytes,
    prepare: async (agent, p, s) => {
      await writeRandomRegions(agent, p, regionBytes, dataRegions.slice(0, -1), seed);
      await agent.writeRegion(p, regionCount - 1, Buffer.alloc(4096, 0x5a));
      for (const r of zeroRegions) await agent.writeRegion(p, r, Buffer.alloc(regionBytes));
      await writeRandomRegions(agent, s, regionBytes, secondaryOnly, seed + 1);
    },
  });
  return { pair, dir, dataRegions, zeroRegions, secondaryOnly, random };
}

const realizedOf = async (agent: Parameters<typeof resolverFor>[0], path: string) => {
  const map = await agent.realizedMap(path);
  return new Bitset(map.regionCount, map.words);
};

describe('seed image round trip', () => {
  it('export → import into the secondary → 1% rewritten → signature sync sends only those regions', async () => {
    const seed = baseSeed;
    console.log(`[image-roundtrip] seed ${seed}`);
    const { pair, dir, dataRegions, zeroRegions, secondaryOnly, random } = await seededPair(seed);
    const resolver = resolverFor(pair.agent);
    const imageDir = join(dir, 'media', 'image');

    const exported = await exportImage({ source: 'p', dir: imageDir, resolver, pairs: pair.store, splitBytes: 1024 * 1024 });
    expect(exported).toMatchObject({ regions: regionCount, storedRegions: dataRegions.length, pair: { pairId: pair.record.pairId, name: 'p', generation: 1 } });
    expect(exported.files).toBe(Math.ceil(dataRegions.length / 16));
    expect(exported.bytesStored).toBe((dataRegions.length - 1) * regionBytes + 4096);
    expect(exported.regionsTransferred).toBe(dataRegions.length); // the zero-filled regions are realized but not stored
    expect(zeroRegions.length).toBeGreaterThan(0);
    expect((await readdir(imageDir)).sort()).toEqual(
      ['index.bin', 'manifest.json', ...Array.from({ length: exported.files }, (_, k) => `data-${String(k).padStart(6, '0')}.bin`)].sort(),
    );
    expect((await pair.store.require('p')).reference).toEqual({
      imageId: exported.imageId,
      manifestSha256: exported.manifestSha256,
      generation: 1,
      pointInTime: exported.pointInTime,
    });
    expect((await pair.agent.snapshotList(pair.primaryPath)).snapshots).toEqual([]); // the export snapshot went
    const verified = await verifyImage(imageDir);
    expect(verified).toMatchObject({ ok: true, problems: [], manifestSha256: exported.manifestSha256, storedRegions: dataRegions.length });

    const imported = await importImage({ dir: imageDir, target: pair.secondaryPath, resolver, pairs: pair.store });
    const reclaimed = secondaryOnly.filter((r) => !dataRegions.includes(r));
    expect(imported).toMatchObject({ imageId: exported.imageId, regionsTransferred: dataRegions.length, regionsReclaimed: reclaimed.length, resumed: false });
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
    const state = await pair.agent.volumeState(pair.secondaryPath);
    expect(state.importing).toBeNull();
    expect(state.members[0]!.seed).toEqual({ imageId: exported.imageId, generation: 1, pointInTime: exported.pointInTime });
    const realized = await realizedOf(pair.agent, pair.secondaryPath);
    for (const r of reclaimed) expect(realized.get(r), `region ${r} reclaimed`).toBe(false);

    const changed = pick(random, regionCount / 100, 0, regionCount - 1);
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, changed, seed + 2);
    const summary = await runSync({ store: pair.store, pair: await pair.store.require('p'), endpoints: pair.endpoints, method: 'signature' });
    expect(summary.regionsTransferred).toBe(changed.length);
    expect(summary.bytesTransferred).toBeLessThanOrEqual(1.02 * changed.length * regionBytes);
    expect((await verifyPair(pair.record, pair.endpoints)).regionsDiffering).toBe(0);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });

  it('an image older than the last sync: import undoes later writes, and sync auto brings them back', async () => {
    const seed = baseSeed + 2;
    console.log(`[image-roundtrip] older image seed ${seed}`);
    const { pair, dir, random } = await seededPair(seed);
    const resolver = resolverFor(pair.agent);
    const imageDir = join(dir, 'old-image');
    await exportImage({ source: 'p', dir: imageDir, resolver, pairs: pair.store, splitBytes: 4 * 1024 * 1024 });
    const later = pick(random, 12, 0, regionCount - 1);
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, later, seed + 4);
    const first = await runSync({ store: pair.store, pair: await pair.store.require('p'), endpoints: pair.endpoints, method: 'auto' });
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
    const lcs = first.secondarySnapshotId;

    await importImage({ dir: imageDir, target: pair.secondaryPath, resolver, pairs: pair.store });
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(false); // the later writes are undone
    const member = (await pair.agent.volumeState(pair.secondaryPath)).members[0]!;
    expect(member.lcsSnapshotId).toBeNull();
    expect((await pair.agent.snapshotList(pair.secondaryPath)).snapshots.map((s) => s.snapshotId)).not.toContain(lcs);
    expect((await pair.store.require('p')).lastSync).toBeNull();

    // Nothing was written on the primary since the last sync: only a comparing sync finds the undone regions.
    const summary = await runSync({ store: pair.store, pair: await pair.store.require('p'), endpoints: pair.endpoints, method: 'auto' });
    expect(summary.regionsTransferred).toBeGreaterThanOrEqual(later.length);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });

  it('sync auto after an import picks a comparing method and leaves the volumes identical', async () => {
    const seed = baseSeed + 1;
    console.log(`[image-roundtrip] auto seed ${seed}`);
    const { pair, dir, random, zeroRegions } = await seededPair(seed);
    const resolver = resolverFor(pair.agent);
    const imageDir = join(dir, 'image');
    await exportImage({ source: 'p', dir: imageDir, resolver, pairs: pair.store, splitBytes: 4 * 1024 * 1024, hash: 'sha256' });
    expect(JSON.parse(await readFile(join(imageDir, 'manifest.json'), 'utf8')).body.hash).toBe('sha256');
    await importImage({ dir: imageDir, target: pair.secondaryPath, resolver, pairs: pair.store });
    const changed = pick(random, 20);
    await writeRandomRegions(
      pair.agent,
      pair.primaryPath,
      regionBytes,
      changed.filter((r) => r < regionCount - 1),
      seed + 3,
    );
    const summary = await runSync({ store: pair.store, pair: await pair.store.require('p'), endpoints: pair.endpoints, method: 'auto' });
    expect(['realized', 'signature']).toContain(summary.method);
    // Regions the primary realized with zeros are not in the image: realized sends them (as zeros), signature does not.
    expect(summary.regionsTransferred).toBeLessThanOrEqual(changed.length + zeroRegions.length);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });
});
