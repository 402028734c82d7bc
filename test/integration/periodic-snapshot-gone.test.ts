// A periodic cycle whose snapshot S_k was deleted under it (`snapshot delete`, the agent API)
// freezes again instead of staying stuck on its cursor: shipping gets NOT_FOUND, the cycle
// takes a new snapshot (the rotation is a union into `current`, so nothing is lost) and
// finishes. Checked with numbered acknowledged records (test/helpers/records.ts): after the
// cycle the secondary holds exactly the primary after records 1..m, m at least what was
// acknowledged before the cycle; then it converges byte for byte. The same for a consistency
// group, with one member already shipped and sealed when another member's snapshot goes.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi } from '../../src-engine/agent';
import {
  GroupStore,
  PairStore,
  createPair,
  cycleSnapshotLabel,
  runCycle,
  runGroupCycle,
  runSync,
  verifyPair,
  type EndpointResolver,
} from '../../src-engine/replication';
import { makeLocalPair, resolverFor, type LocalPair } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { NumberedRecords, RecordWriter } from '../helpers/records';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 64;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);
const records = new NumberedRecords(regionBytes, regionCount);

/**
 * The secondary's agent as the cycle sees it: `onStage` runs before each stageRegion is passed
 * on (it may throw), with the cycle and how many stages of that cycle were issued before.
 */
function stagingHook(onStage: (cycle: number, stagedInCycle: number) => Promise<void>): (agent: AgentApi) => AgentApi {
  const staged = new Map<number, number>();
  return (agent) =>
    new Proxy(agent, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property !== 'stageRegion' || typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          const cycle = args[2] as number;
          const before = staged.get(cycle) ?? 0;
          staged.set(cycle, before + 1);
          await onStage(cycle, before);
          return (value as (...a: unknown[]) => Promise<void>).apply(target, args);
        };
      },
    });
}

async function cycleSnapshotId(agent: AgentApi, path: string, pairId: string, cycle: number): Promise<string> {
  const found = (await agent.snapshotList(path)).snapshots.find((s) => s.label === cycleSnapshotLabel(pairId, cycle));
  expect(found, `the snapshot of cycle ${cycle}`).toBeDefined();
  return found!.snapshotId;
}

/** Until the writer has `count` more records acknowledged. */
async function writeSome(writer: RecordWriter, count: number): Promise<void> {
  const target = writer.acked + count;
  while (writer.acked < target) await new Promise((resolve) => setTimeout(resolve, 2));
}

async function expectConverged(pair: LocalPair): Promise<void> {
  expect((await readFile(pair.secondaryPath)).equals(await readFile(pair.primaryPath))).toBe(true);
  expect((await verifyPair(pair.record, pair.endpoints)).regionsDiffering).toBe(0);
  expect((await pair.agent.snapshotList(pair.primaryPath)).snapshots).toEqual([]);
}

describe('a cycle whose snapshot was deleted freezes again', () => {
  it('deleted while the cycle was interrupted: the next run freezes again instead of failing NOT_FOUND forever', async () => {
    const seed = baseSeed + 50;
    console.log(`[periodic-snapshot-gone] interrupted seed ${seed}`);
    let failStages = false;
    const pair = await makeLocalPair(await tempDir(), {
      sizeBytes,
      regionBytes,
      mode: 'periodic',
      wrapSecondary: stagingHook(async (_cycle, staged) => {
        if (failStages && staged % 2 === 1) throw new Error('link dropped (test)');
      }),
    });
    await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' });
    const writer = new RecordWriter(pair.agent, pair.primaryPath, records, seededRandom(seed));
    writer.start();
    await writeSome(writer, 100);
    await runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints });
    await writeSome(writer, 100);
    failStages = true;
    await expect(runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints })).rejects.toThrow(/link dropped/);
    failStages = false;
    const staleImage = await readFile(pair.secondaryPath);
    // Someone deletes the cycle's snapshot (as `snapshot delete` does, through the agent).
    await pair.agent.snapshotDelete(pair.primaryPath, await cycleSnapshotId(pair.agent, pair.primaryPath, pair.record.pairId, 2));
    await writeSome(writer, 50);
    const ackedBefore = writer.acked;
    const summary = await runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints });
    const ackedAfter = writer.acked;
    expect(summary).toMatchObject({ cycle: 2, resumed: true });
    const m = records.prefixHeld(await readFile(pair.secondaryPath), 'secondary after the frozen-again cycle');
    expect(m).toBeGreaterThanOrEqual(ackedBefore); // the new snapshot's instant, not the lost one's
    expect(m).toBeLessThanOrEqual(ackedAfter);
    expect(records.prefixHeld(staleImage, 'secondary before')).toBeLessThan(m);
    expect((await pair.agent.volumeState(pair.secondaryPath)).members[0]!.appliedCycle).toBe(2);
    await writer.stop();
    await runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints });
    await expectConverged(pair);
  });

  it('deleted in the middle of shipping: the same run freezes again and finishes the cycle', async () => {
    const seed = baseSeed + 51;
    console.log(`[periodic-snapshot-gone] mid-shipping seed ${seed}`);
    let deleted = 0;
    let pair: LocalPair | undefined = undefined;
    // Cycles 2 and 4 lose their snapshot when their 4th region is about to be staged from it.
    const hook = stagingHook(async (cycle, stagedInCycle) => {
      if (cycle % 2 !== 0 || stagedInCycle !== 3) return;
      const p = pair!;
      await p.agent.snapshotDelete(p.primaryPath, await cycleSnapshotId(p.agent, p.primaryPath, p.record.pairId, cycle));
      deleted += 1;
    });
    pair = await makeLocalPair(await tempDir(), { sizeBytes, regionBytes, mode: 'periodic', wrapSecondary: hook });
    await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' });
    const writer = new RecordWriter(pair.agent, pair.primaryPath, records, seededRandom(seed));
    writer.start();
    for (let cycle = 1; cycle <= 4; cycle++) {
      await writeSome(writer, 80);
      const ackedBefore = writer.acked;
      const summary = await runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints });
      expect(summary.cycle).toBe(cycle);
      const m = records.prefixHeld(await readFile(pair.secondaryPath), `secondary after cycle ${cycle}`);
      expect(m).toBeGreaterThanOrEqual(ackedBefore);
      expect(m).toBeLessThanOrEqual(writer.acked);
      expect((await pair.agent.volumeState(pair.secondaryPath)).members[0]!.appliedCycle).toBe(cycle);
    }
    expect(deleted).toBe(2);
    await writer.stop();
    await runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints });
    await expectConverged(pair);
  });

  it('a group member whose snapshot goes after another member sealed: the group freezes again at one instant', async () => {
    const seed = baseSeed + 52;
    console.log(`[periodic-snapshot-gone] group seed ${seed}`);
    const dir = await tempDir();
    const home = join(dir, 'home');
    const agent = new LocalAgent(home);
    let stopped = false;
    let writer: Promise<void> | undefined;
    try {
      const store = new PairStore(home);
      const groups = new GroupStore(home);
      const paths = ['pa', 'sa', 'pb', 'sb'].map((n) => join(dir, `${n}.img`));
      for (const path of paths) await agent.volumeCreate(path, sizeBytes, regionBytes);
      const [pa, sa, pb, sb] = paths as [string, string, string, string];
      let deleteOnStage: { cycle: number } | undefined;
      let deleted = 0;
      let pairB = '';
      // b's secondary: the first stage of the chosen cycle deletes b's snapshot of it (a, first in the group, sealed already).
      const bSecondary = stagingHook(async (cycle) => {
        if (deleteOnStage?.cycle !== cycle) return;
        deleteOnStage = undefined;
        await agent.snapshotDelete(pb, await cycleSnapshotId(agent, pb, pairB, cycle));
        deleted += 1;
      })(agent);
      const plain = resolverFor(agent);
      const resolver: EndpointResolver = {
        resolve: async (volref) => (volref === sb ? { volref, agent: bSecondary, path: sb, where: 'this machine' } : plain.resolve(volref)),
      };
      for (const [name, primary, secondary] of [
        ['a', pa, sa],
        ['b', pb, sb],
      ] as const) {
        const pair = await createPair(store, resolver, { name, primary, secondary, mode: 'periodic' });
        if (name === 'b') pairB = pair.pairId;
        await runSync({ store, pair, endpoints: { primary: await resolver.resolve(primary), secondary: await resolver.resolve(secondary) }, method: 'auto' });
      }
      const group = await groups.create('db', ['a', 'b'], store);
      // Records alternate between the two primaries (odd → a, even → b): the pair of secondaries
      // holds a prefix when each holds the records of its own parity up to one m.
      const groupRecords = new NumberedRecords(regionBytes, regionCount);
      let acked = 0;
      const random = seededRandom(seed);
      writer = (async () => {
        while (!stopped) {
          const n = acked + 1;
          await agent.writeRegion(n % 2 === 1 ? pa : pb, n % regionCount, groupRecords.record(n));
          acked = n;
          if (random() < 0.3) await new Promise((resolve) => setTimeout(resolve, 1));
        }
      })();
      const until = async (count: number) => {
        const target = acked + count;
        while (acked < target) await new Promise((resolve) => setTimeout(resolve, 2));
      };
      /** The m such that both secondaries together are the primaries after records 1..m. */
      const groupPrefix = async (what: string): Promise<number> => {
        const [a, b] = await Promise.all([readFile(sa), readFile(sb)]);
        // Merge: region i comes from the volume its records go to (i odd → a, i even → b, as regionCount is even).
        const merged = Buffer.alloc(sizeBytes);
        for (let i = 0; i < regionCount; i++) (i % 2 === 1 ? a : b).copy(merged, i * regionBytes, i * regionBytes, (i + 1) * regionBytes);
        return groupRecords.prefixHeld(merged, what);
      };
      await until(60);
      await runGroupCycle({ store, groups, group, resolver });
      await until(60);
      deleteOnStage = { cycle: 2 };
      const before = acked;
      const summary = await runGroupCycle({ store, groups, group, resolver });
      expect(deleted).toBe(1);
      // a had shipped and sealed cycle 2, not applied it (no member applies before every member
      // sealed): the group froze again, both as cycle 2, a's seal replaced by the new instant's.
      expect(summary.members.map((m) => [m.pair, m.cycle])).toEqual([
        ['a', 2],
        ['b', 2],
      ]);
      const m = await groupPrefix('secondaries after the frozen-again group cycle');
      expect(m).toBeGreaterThanOrEqual(before);
      expect(m).toBeLessThanOrEqual(acked);
      await until(40);
      await runGroupCycle({ store, groups, group, resolver });
      await groupPrefix('secondaries after the next group cycle');
      stopped = true;
      await writer;
      await runGroupCycle({ store, groups, group, resolver });
      expect((await readFile(sa)).equals(await readFile(pa))).toBe(true);
      expect((await readFile(sb)).equals(await readFile(pb))).toBe(true);
      for (const p of [pa, pb]) expect((await agent.snapshotList(p)).snapshots).toEqual([]);
    } finally {
      stopped = true;
      await writer?.catch(() => undefined);
      await agent.dispose();
    }
  });
});
