// Every sync method under a concurrent random writer (through the primary's agent) ends with
// identical volumes, no sync snapshot left on the primary, the secondary's last consistent
// snapshot recorded, nothing pending; the secondary starts diverged (changed regions and
// regions only it has). docs/sync.md "Tests" 1.
import { describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';
import { runSync, sinceMapName, syncMethods, verifyPair } from '../../src-engine/replication';
import { makeLocalPair, RandomWriter, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 64 * 1024;
const regionCount = 512; // 32 MiB
const sizeBytes = regionCount * regionBytes;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

/** Seeded distinct regions. */
function pick(random: () => number, count: number, from = 0, to = regionCount): number[] {
  const set = new Set<number>();
  while (set.size < count) set.add(from + Math.floor(random() * (to - from)));
  return [...set].sort((a, b) => a - b);
}

describe('sync methods under a concurrent writer', () => {
  for (const [index, method] of syncMethods.entries()) {
    it(`${method}: identical volumes, primary snapshot gone, LCS on the secondary`, async () => {
      const seed = baseSeed + index;
      console.log(`[sync-methods] ${method} seed ${seed}`);
      const random = seededRandom(seed);
      const primaryRegions = pick(random, regionCount / 2);
      const secondaryOnly = pick(random, 24).filter((r) => !primaryRegions.includes(r));
      const changed = primaryRegions.filter(() => random() < 0.1);
      const pair = await makeLocalPair(await tempDir(), {
        sizeBytes,
        regionBytes,
        prepare: async (agent, p, s) => {
          await writeRandomRegions(agent, p, regionBytes, primaryRegions, seed);
          // The secondary: an old copy of the primary with some regions changed, plus regions only it has.
          await writeRandomRegions(
            agent,
            s,
            regionBytes,
            primaryRegions.filter((r) => !changed.includes(r)),
            seed,
          );
          await writeRandomRegions(agent, s, regionBytes, [...changed, ...secondaryOnly], seed + 1000);
        },
      });
      const writer = new RandomWriter(pair.agent, pair.primaryPath, regionBytes, regionCount, seed + 2000);
      const stopAt = { phase: random() < 0.5 ? 'pass' : 'tail', fraction: 0.1 + random() * 0.8 };
      writer.start();
      let stopping: Promise<void> | undefined;
      const summary = await runSync({
        store: pair.store,
        pair: pair.record,
        endpoints: pair.endpoints,
        method,
        onProgress: (p) => {
          if (!stopping && (p.phase !== 'pass' || stopAt.phase === 'pass') && p.regionsDone >= stopAt.fraction * p.regionsTotal) stopping = writer.stop();
        },
      });
      await (stopping ?? writer.stop());
      const rest = summary.pendingRegions > 0 ? await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' }) : summary;
      expect(writer.written.size).toBeGreaterThan(0);
      expect(rest.pendingRegions).toBe(0);
      expect(summary.method).toBe(method);

      expect((await verifyPair(pair.record, pair.endpoints)).regionsDiffering).toBe(0);
      expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
      const primarySnapshots = await pair.agent.snapshotList(pair.primaryPath);
      expect(primarySnapshots.snapshots.filter((s) => s.label.startsWith('tidemark-sync'))).toEqual([]);
      const secondary = await pair.agent.volumeState(pair.secondaryPath);
      expect(secondary.members[0]!.lcsSnapshotId).toBe(rest.secondarySnapshotId);
      const lcs = (await pair.agent.snapshotList(pair.secondaryPath)).snapshots.filter((s) => s.label.startsWith('tidemark-lcs'));
      expect(lcs.map((s) => s.snapshotId)).toEqual([rest.secondarySnapshotId]); // the previous LCS was deleted
      expect(summary.regions).toBe(regionCount);
      expect(summary.bytesTransferred).toBe(summary.regionsTransferred * regionBytes);

      const secondaryRealized = await pair.agent.realizedMap(pair.secondaryPath);
      const realized = new Bitset(secondaryRealized.regionCount, secondaryRealized.words);
      const neverOnPrimary = secondaryOnly.filter((r) => !writer.written.has(r));
      if (method === 'realized') {
        // Seed 001 embodiment 2: a region only the secondary had is reclaimed, not copied over with zeros.
        // (A secondary-only region the writer wrote on the primary before the pass read its map is sent instead.)
        expect(summary.regionsReclaimed).toBeGreaterThanOrEqual(neverOnPrimary.length);
        expect(summary.regionsReclaimed).toBeLessThanOrEqual(secondaryOnly.length);
        for (const r of neverOnPrimary) expect(realized.get(r), `region ${r} reclaimed`).toBe(false);
      }
      if (method === 'signature' || method === 'realized') {
        // Only what differs crosses: far fewer regions than the volume holds.
        expect(summary.regionsTransferred).toBeLessThan(changed.length + secondaryOnly.length + writer.written.size + 64);
        expect(summary.regionsCompared).toBeGreaterThan(0);
      }
    });
  }

  it('signature resync of a copy with 1% of regions changed sends exactly the changed regions', async () => {
    const seed = baseSeed + 100;
    console.log(`[sync-methods] 1% seed ${seed}`);
    const random = seededRandom(seed);
    const all = Array.from({ length: regionCount }, (_, r) => r);
    const pair = await makeLocalPair(await tempDir(), {
      sizeBytes,
      regionBytes,
      prepare: async (agent, p, s) => {
        await writeRandomRegions(agent, p, regionBytes, all, seed);
        await writeRandomRegions(agent, s, regionBytes, all, seed);
      },
    });
    const changed = pick(random, regionCount / 100);
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, changed, seed + 1);
    const summary = await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'signature' });
    expect(summary.regionsTransferred).toBe(changed.length);
    expect(summary.bytesTransferred).toBeLessThanOrEqual(1.02 * changed.length * regionBytes);
    expect(summary.regionsCompared).toBe(regionCount);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });

  it('auto: tardy for a fresh pair, then only what was written since; realized once the marks are gone', async () => {
    const pair = await makeLocalPair(await tempDir(), {
      sizeBytes,
      regionBytes,
      prepare: (agent, p) => writeRandomRegions(agent, p, regionBytes, [1, 2, 3, 200], 7),
    });
    const first = await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' });
    expect(first.method).toBe('tardy');
    expect(first.regionsTransferred).toBe(4); // the secondary was empty: zeros onto zeros are skipped
    const record = await pair.store.require('p'); // with its lastSync
    const idle = await runSync({ store: pair.store, pair: record, endpoints: pair.endpoints, method: 'auto' });
    expect(idle).toMatchObject({ method: 'tardy', scope: 'pending', regionsTransferred: 0, regionsCompared: 0 });
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, [5, 300], 8);
    const pending = await runSync({ store: pair.store, pair: await pair.store.require('p'), endpoints: pair.endpoints, method: 'auto' });
    expect(pending).toMatchObject({ method: 'tardy', scope: 'pending', regionsTransferred: 2, regionsCompared: 0 });
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
    // Without the change map (deleted behind Tidemark's back) the marks cannot be trusted: compare.
    await pair.agent.bitmapDelete(pair.primaryPath, sinceMapName(pair.record.pairId));
    const compared = await runSync({ store: pair.store, pair: await pair.store.require('p'), endpoints: pair.endpoints, method: 'auto' });
    // Signed: the six written regions, and region 4 in the short gap between 3 and 5 (one run is cheaper than two).
    expect(compared).toMatchObject({ method: 'realized', scope: 'extent', regionsTransferred: 0, regionsCompared: 7 });
  });
});
