// Consistency groups (seed 004): two periodic pairs whose primaries take their cycle's
// snapshots at one instant. A writer issues numbered records alternately to the two primaries,
// each waiting for its acknowledgement; after every group cycle the two secondaries together
// hold exactly the records 1..m for some m (never record n on one without every earlier record
// on either). Taking the two snapshots one after the other fails this.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalAgent } from '../../src-engine/agent';
import { GroupStore, PairStore, createPair, replicatePair, runGroupCycle, runSync } from '../../src-engine/replication';
import { resolverFor } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 32;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

/** Record n: volume n mod 2, region ⌊n/2⌋ mod 32, stamped with n. */
const volumeOf = (n: number) => n % 2;
const regionOf = (n: number) => Math.floor(n / 2) % regionCount;
function record(n: number): Buffer {
  const data = Buffer.alloc(regionBytes, (n * 13 + 1) & 0xff);
  data.writeUInt32LE(n, 0);
  return data;
}

/** The m such that the two volumes are exactly the state after records 1..m. */
function prefixHeld(volumes: readonly Buffer[]): number {
  const found = volumes.map((bytes) => Array.from({ length: regionCount }, (_, i) => bytes.readUInt32LE(i * regionBytes)));
  const m = Math.max(...found.flat());
  for (const [v, regions] of found.entries()) {
    for (const [i, n] of regions.entries()) {
      if (n !== 0) expect(volumes[v]!.subarray(i * regionBytes, (i + 1) * regionBytes).equals(record(n))).toBe(true);
      let latest = 0;
      for (let k = m; k >= 1; k--) {
        if (volumeOf(k) === v && regionOf(k) === i) {
          latest = k;
          break;
        }
      }
      expect(n, `volume ${v} region ${i} after record ${m}`).toBe(latest);
    }
  }
  return m;
}

describe('consistency groups', () => {
  it('after every group cycle both secondaries together hold exactly a prefix of the acknowledged records', async () => {
    const seed = baseSeed;
    console.log(`[groups] seed ${seed}`);
    const dir = await tempDir();
    const home = join(dir, 'home');
    const agent = new LocalAgent(home);
    try {
      const store = new PairStore(home);
      const groups = new GroupStore(home);
      const resolver = resolverFor(agent);
      const paths = ['pa', 'sa', 'pb', 'sb'].map((n) => join(dir, `${n}.img`));
      for (const path of paths) await agent.volumeCreate(path, sizeBytes, regionBytes);
      const primaries = [paths[0]!, paths[2]!];
      const secondaries = [paths[1]!, paths[3]!];
      for (const [i, name] of ['a', 'b'].entries()) {
        const pair = await createPair(store, resolver, { name, primary: primaries[i]!, secondary: secondaries[i]!, mode: 'periodic' });
        const endpoints = { primary: await resolver.resolve(primaries[i]!), secondary: await resolver.resolve(secondaries[i]!) };
        await runSync({ store, pair, endpoints, method: 'auto' });
      }
      const group = await groups.create('db', ['a', 'b'], store);
      await expect(groups.create('db2', ['a', 'b'], store)).rejects.toThrow(/already in group "db"/);
      const a = await store.require('a');
      const aEndpoints = { primary: await resolver.resolve(primaries[0]!), secondary: await resolver.resolve(secondaries[0]!) };
      await expect(replicatePair({ store, pair: a, endpoints: aEndpoints, once: true })).rejects.toThrow(/in consistency group "db": it cycles with its group/);

      let acked = 0;
      let stopped = false;
      const random = seededRandom(seed);
      const writer = (async () => {
        while (!stopped) {
          const n = acked + 1;
          await agent.writeRegion(primaries[volumeOf(n)]!, regionOf(n), record(n));
          acked = n;
          if (random() < 0.3) await new Promise((resolve) => setTimeout(resolve, 1));
        }
      })();
      const held: number[] = [];
      for (let c = 0; c < 10; c++) {
        await new Promise((resolve) => setTimeout(resolve, 5 + Math.floor(random() * 30)));
        const before = acked;
        const summary = await runGroupCycle({ store, groups, group, resolver });
        expect(summary.members.map((m) => m.cycle)).toEqual([c + 1, c + 1]);
        const m = prefixHeld(await Promise.all(secondaries.map((s) => readFile(s))));
        expect(m).toBeGreaterThanOrEqual(before);
        expect(m).toBeLessThanOrEqual(acked);
        held.push(m);
      }
      stopped = true;
      await writer;
      expect(held.at(-1)).toBeGreaterThan(held[0]!);
      await runGroupCycle({ store, groups, group, resolver });
      for (const [i, p] of primaries.entries()) expect((await readFile(secondaries[i]!)).equals(await readFile(p))).toBe(true);
      for (const p of primaries) expect((await agent.snapshotList(p)).snapshots).toEqual([]);
    } finally {
      await agent.dispose();
    }
  });
});
