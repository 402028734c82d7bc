// Failover and easy failback of a continuous pair (seed 004, docs/failover.md), with the
// primary and secondary on two agents of their own homes and the primary's agent stopped to
// make it unreachable. The resync map is computed here independently, from what the test
// wrote where: regions unshipped on the old primary ∪ regions written on the new one.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi } from '../../src-engine/agent';
import { testApplyDelayEnv } from '../../src-engine/agent/staging';
import { TidemarkError } from '../../src-engine/errors';
import {
  PairStore,
  createPair,
  failbackPair,
  failoverPair,
  migratePair,
  pairStatus,
  replicatePair,
  runSync,
  type EndpointResolver,
} from '../../src-engine/replication';
import { randomRegion, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 64 * 1024;
const regionCount = 256;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

const agents: LocalAgent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.dispose().catch(() => undefined);
});

function pick(random: () => number, count: number): number[] {
  const set = new Set<number>();
  while (set.size < count) set.add(Math.floor(random() * regionCount));
  return [...set].sort((a, b) => a - b);
}

/** An agent that is gone: every call fails as a dropped link does. */
const unreachable = new Proxy({} as AgentApi, {
  get: () => () => Promise.reject(new TidemarkError('DISCONNECTED', 'connection to the primary host dropped', 'wait for it')),
});

async function twoSitePair(seed: number, mode: 'continuous' | 'periodic' = 'continuous') {
  const dir = await tempDir();
  const siteA = { home: join(dir, 'site-a'), path: join(dir, 'a.img'), agent: new LocalAgent(join(dir, 'site-a')) as AgentApi };
  const siteB = { home: join(dir, 'site-b'), path: join(dir, 'b.img'), agent: new LocalAgent(join(dir, 'site-b')) as AgentApi };
  agents.push(siteA.agent as LocalAgent, siteB.agent as LocalAgent);
  await siteA.agent.volumeCreate(siteA.path, sizeBytes, regionBytes);
  await siteB.agent.volumeCreate(siteB.path, sizeBytes, regionBytes);
  await writeRandomRegions(siteA.agent, siteA.path, regionBytes, pick(seededRandom(seed), 64), seed);
  const resolver: EndpointResolver = {
    resolve: async (volref) => {
      const site = volref === siteA.path ? siteA : siteB;
      return { volref, agent: site.agent, path: site.path, where: site === siteA ? 'site A' : 'site B' };
    },
  };
  const store = new PairStore(join(dir, 'orchestrator'));
  const record = await createPair(store, resolver, { name: 'p', primary: siteA.path, secondary: siteB.path, regionBytes, mode });
  const endpoints = { primary: await resolver.resolve(siteA.path), secondary: await resolver.resolve(siteB.path) };
  await runSync({ store, pair: record, endpoints, method: 'auto' });
  await replicatePair({ store, pair: await store.require('p'), endpoints, once: true });
  return { siteA, siteB, resolver, store, pairId: record.pairId };
}

describe('failover and easy failback (continuous)', () => {
  it('primary lost: --force promotes the secondary; failback copies exactly unshipped ∪ written-since and the sites are identical', async () => {
    const seed = baseSeed;
    console.log(`[failover] seed ${seed}`);
    const { siteA, siteB, resolver, store, pairId } = await twoSitePair(seed);
    const shipped = pick(seededRandom(seed + 1), 20);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, shipped, seed + 1);
    await replicatePair({
      store,
      pair: await store.require('p'),
      endpoints: { primary: await resolver.resolve(siteA.path), secondary: await resolver.resolve(siteB.path) },
      once: true,
    });
    const unshipped = pick(seededRandom(seed + 2), 12);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, unshipped, seed + 2);

    // Site A goes away (its agent stops; the orchestrator can no longer reach it).
    await (siteA.agent as LocalAgent).dispose();
    const liveA = siteA.agent;
    siteA.agent = unreachable;
    await expect(failoverPair(store, resolver, 'p')).rejects.toThrow(/unreachable.*at risk.*OOS\/MOOS/);
    const failover = await failoverPair(store, resolver, 'p', { force: true });
    expect(failover).toMatchObject({ generation: 2, forced: true, oldPrimaryReachable: false, atRiskRegions: null, newPrimary: siteB.path });
    expect((await store.require('p')).primary.volref).toBe(siteB.path);

    // The new primary takes writes (its lock is gone), recorded by the failback map.
    const writtenOnB = pick(seededRandom(seed + 3), 16);
    await writeRandomRegions(siteB.agent, siteB.path, regionBytes, writtenOnB, seed + 3);
    const memberB = (await siteB.agent.volumeState(siteB.path)).members[0]!;
    expect(memberB).toMatchObject({ role: 'primary', generation: 2 });
    expect(memberB.history?.map((h) => h.event)).toEqual(['failover-forced']);

    // Site A comes back (a new agent on its home).
    siteA.agent = new LocalAgent(siteA.home);
    agents.push(siteA.agent as LocalAgent);
    expect(liveA).not.toBe(siteA.agent);
    const expected = new Set([...unshipped, ...writtenOnB]);
    // Reconnected, the histories decide: A missed the promotion and was not written after it.
    expect((await pairStatus(store, resolver, 'p')).roles).toEqual({
      verdict: 'behind',
      primary: siteB.path,
      behind: siteA.path,
      generation: 2,
      behindGeneration: 1,
    });
    const plan = await failbackPair(store, resolver, 'p', { dryRun: true });
    expect(plan).toMatchObject({ dryRun: true, resyncRegions: expected.size, resyncBytes: expected.size * regionBytes, bytesTransferred: 0 });
    expect((await siteA.agent.volumeState(siteA.path)).members[0]!.role).toBe('primary'); // --dry-run changed nothing

    const done = await failbackPair(store, resolver, 'p');
    expect(done.resyncRegions).toBe(expected.size);
    expect(done.bytesTransferred).toBe(expected.size * regionBytes);
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
    expect((await pairStatus(store, resolver, 'p')).roles).toEqual({ verdict: 'in-step', primary: siteB.path, secondary: siteA.path, generation: 2 });
    const memberA = (await siteA.agent.volumeState(siteA.path)).members[0]!;
    expect(memberA).toMatchObject({ role: 'secondary', generation: 2, pairId });
    expect(memberA.history?.map((h) => h.event)).toEqual(['failback']);
    expect((await store.require('p')).failover).toBeNull();
    // The old primary is the secondary now: locked.
    await expect(siteA.agent.writeRegion(siteA.path, 0, Buffer.alloc(regionBytes))).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && e.code === 'PERMISSION',
    );
    // Replication carries on in the new direction.
    await writeRandomRegions(siteB.agent, siteB.path, regionBytes, [5, 6], seed + 4);
    const next = await replicatePair({
      store,
      pair: await store.require('p'),
      endpoints: { primary: await resolver.resolve(siteB.path), secondary: await resolver.resolve(siteA.path) },
      once: true,
    });
    expect(next.regionsTransferred).toBe(2);
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
  }, 60_000);

  it('a reachable primary is refused without --force (migrate is lossless); with --force it is demoted and its unshipped regions come back at failback', async () => {
    const seed = baseSeed + 10;
    console.log(`[failover] reachable seed ${seed}`);
    const { siteA, siteB, resolver, store } = await twoSitePair(seed);
    const unshipped = pick(seededRandom(seed + 1), 9);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, unshipped, seed + 1);
    await expect(failoverPair(store, resolver, 'p')).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && /is reachable/.test(e.message) && /tidemark migrate p/.test(e.hint),
    );
    const failover = await failoverPair(store, resolver, 'p', { force: true });
    expect(failover).toMatchObject({ oldPrimaryReachable: true, atRiskRegions: unshipped.length });
    // Demoted at once: no second primary.
    expect((await siteA.agent.volumeState(siteA.path)).members[0]).toMatchObject({ role: 'secondary', generation: 2 });
    await expect(siteA.agent.writeRegion(siteA.path, 0, Buffer.alloc(regionBytes))).rejects.toThrow();
    const done = await failbackPair(store, resolver, 'p');
    expect(done.resyncRegions).toBe(unshipped.length);
    expect(done.bytesTransferred).toBe(unshipped.length * regionBytes);
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
  }, 60_000);
});

describe('failover during a continuous catch-up', () => {
  it('rolls the promoted volume back to its protective snapshot (consistent), and failback still converges', async () => {
    const seed = baseSeed + 30;
    console.log(`[failover] catch-up seed ${seed}`);
    const { siteA, siteB, resolver, store } = await twoSitePair(seed);
    const before = await readWhole(siteB.agent, siteB.path);
    const backlog = pick(seededRandom(seed + 1), 40);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, backlog, seed + 1);
    // The catch-up dies after 9 region writes reach the secondary (a link that never comes back).
    let writes = 0;
    const dying = new Proxy(siteB.agent, {
      get: (target, key) =>
        key === 'writeRegion'
          ? (...args: Parameters<AgentApi['writeRegion']>) =>
              ++writes > 9 ? Promise.reject(new TidemarkError('PERMISSION', 'link gone for good', '')) : target.writeRegion(...args)
          : typeof target[key as keyof AgentApi] === 'function'
            ? (target[key as keyof AgentApi] as (...a: unknown[]) => unknown).bind(target)
            : target[key as keyof AgentApi],
    });
    await expect(
      replicatePair({
        store,
        pair: await store.require('p'),
        endpoints: { primary: await resolver.resolve(siteA.path), secondary: { ...(await resolver.resolve(siteB.path)), agent: dying } },
        once: true,
        batchRegionsMax: 8,
      }),
    ).rejects.toThrow(/link gone/);
    const member = (await siteB.agent.volumeState(siteB.path)).members[0]!;
    expect(member.protectSnapshotId).toBeTruthy();
    expect((await readWhole(siteB.agent, siteB.path)).equals(before)).toBe(false); // mid catch-up: a mix

    await (siteA.agent as LocalAgent).dispose();
    siteA.agent = unreachable;
    const failover = await failoverPair(store, resolver, 'p', { force: true });
    expect(failover.rolledBackRegions).toBeGreaterThan(0);
    expect((await readWhole(siteB.agent, siteB.path)).equals(before)).toBe(true); // the consistent image
    expect((await siteB.agent.snapshotList(siteB.path)).snapshots).toEqual([]);

    siteA.agent = new LocalAgent(siteA.home);
    agents.push(siteA.agent as LocalAgent);
    const done = await failbackPair(store, resolver, 'p');
    expect(done.resyncRegions).toBe(new Set(backlog).size); // the rolled-back regions are the backlog's
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
  }, 60_000);

  it('a shipper still at the old generation cannot land a write during the rollback: the promoted image is exactly the consistent one', async () => {
    const seed = baseSeed + 31;
    console.log(`[failover] fenced-rollback seed ${seed}`);
    const { siteA, siteB, pairId } = await twoSitePair(seed);
    const before = await readWhole(siteB.agent, siteB.path);
    // A catch-up under way: the protective snapshot taken, most regions overwritten out of order.
    const { snapshotId } = await siteB.agent.snapshotCreate(siteB.path, { label: `tidemark-protect ${pairId}` });
    await siteB.agent.pairUpdate(siteB.path, pairId, { protectSnapshotId: snapshotId });
    const stale = { auth: { pairId, generation: 1 } };
    for (const r of pick(seededRandom(seed + 1), 200)) await siteB.agent.writeRegion(siteB.path, r, randomRegion(seed + r, regionBytes), stale);
    void siteA;
    // The promotion, while the old shipper keeps writing region 0 at generation 1.
    let promoted = false;
    const promotion = siteB.agent
      .pairRoleChange(siteB.path, pairId, { generation: 2, role: 'primary', event: 'failover-forced', atMs: Date.now(), by: 'test' })
      .finally(() => (promoted = true));
    const outcomes: string[] = [];
    for (let i = 0; !promoted; i++) {
      await siteB.agent.writeRegion(siteB.path, 0, Buffer.alloc(regionBytes, (i % 250) + 1), stale).then(
        () => outcomes.push('landed'),
        (e: unknown) => outcomes.push(e instanceof TidemarkError ? e.code : 'error'),
      );
    }
    const result = await promotion;
    expect(result.rolledBackRegions).toBeGreaterThan(0);
    expect(outcomes).toContain('STALE'); // writes were tried while the promotion ran, and refused
    expect((await readWhole(siteB.agent, siteB.path)).equals(before)).toBe(true);
  }, 60_000);
});

describe('split brain', () => {
  it('both sides written as primary: failback refuses without a choice; with one it converges, the discarded side exported first', async () => {
    const seed = baseSeed + 40;
    console.log(`[failover] split-brain seed ${seed}`);
    for (const survivor of ['new-primary', 'old-primary'] as const) {
      const { siteA, siteB, resolver, store } = await twoSitePair(seed);
      const live = siteA.agent;
      siteA.agent = unreachable; // a partition: site A keeps running, unseen
      await failoverPair(store, resolver, 'p', { force: true });
      const onB = pick(seededRandom(seed + 1), 10);
      await writeRandomRegions(siteB.agent, siteB.path, regionBytes, onB, seed + 1);
      await new Promise((wake) => setTimeout(wake, 5)); // the partitioned writes come after the failover's instant
      const onA = pick(seededRandom(seed + 2), 7);
      await writeRandomRegions(live, siteA.path, regionBytes, onA, seed + 2); // the old primary, still primary, takes writes
      siteA.agent = live; // the partition heals

      const plan = await failbackPair(store, resolver, 'p', { dryRun: true });
      expect(plan.splitBrain).not.toBeNull();
      expect((await pairStatus(store, resolver, 'p')).roles).toMatchObject({ verdict: 'split-brain', primary: siteB.path, other: siteA.path, generation: 2 });
      await expect(failbackPair(store, resolver, 'p')).rejects.toSatisfy(
        (e: unknown) => e instanceof TidemarkError && e.code === 'SPLIT_BRAIN' && /--discard-changes-on/.test(e.hint),
      );
      expect((await siteA.agent.volumeState(siteA.path)).members[0]!.role).toBe('primary'); // the refusal changed nothing

      const keep = survivor === 'new-primary' ? siteB : siteA;
      const lose = survivor === 'new-primary' ? siteA : siteB;
      const expectedImage = await readWhole(keep.agent, keep.path);
      const lostImage = await readWhole(lose.agent, lose.path);
      const exportDir = join(await tempDir(), 'discarded');
      const done = await failbackPair(store, resolver, 'p', { discardChangesOn: lose.path, exportDiscarded: exportDir });
      const map = new Set([...onA, ...onB]);
      expect(done.resyncRegions).toBe(map.size);
      expect(done.bytesTransferred).toBe(map.size * regionBytes);
      expect((await readWhole(lose.agent, lose.path)).equals(expectedImage)).toBe(true);
      expect((await store.require('p')).primary.volref).toBe(keep.path);
      expect((await lose.agent.volumeState(lose.path)).members[0]).toMatchObject({ role: 'secondary', generation: 3 - (survivor === 'new-primary' ? 1 : 0) });
      // The export holds exactly the discarded side's bytes of the resync map, in region order.
      const saved = await readFile(join(exportDir, 'regions.bin'));
      const sorted = [...map].sort((a, b) => a - b);
      expect(saved.length).toBe(sorted.length * regionBytes);
      sorted.forEach((r, i) =>
        expect(saved.subarray(i * regionBytes, (i + 1) * regionBytes).equals(lostImage.subarray(r * regionBytes, (r + 1) * regionBytes))).toBe(true),
      );
      expect(JSON.parse(await readFile(join(exportDir, 'manifest.json'), 'utf8'))).toMatchObject({ side: lose.path, regions: map.size });
    }
  }, 90_000);
});
describe('split brain across skewed clocks', () => {
  /** Site A's agent as seen on a host whose clock runs `skewMs` off this one: every time it reports is shifted. */
  const skewed = (agent: AgentApi, skewMs: number): AgentApi =>
    new Proxy(agent, {
      get: (target, key) => {
        if (key === 'info') return async () => ({ ...(await target.info()), clockMs: Date.now() + skewMs });
        if (key === 'trackingState')
          return async (...args: Parameters<AgentApi['trackingState']>) => {
            const state = await target.trackingState(...args);
            return { ...state, lastWriteAtMs: state.lastWriteAtMs === null ? null : state.lastWriteAtMs + skewMs };
          };
        const value = target[key as keyof AgentApi];
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });

  for (const skewMs of [-3_600_000, 3_600_000]) {
    it(`the old primary's clock ${skewMs < 0 ? 'an hour behind' : 'an hour ahead'}: writes after the failover are a split brain, writes before it are not`, async () => {
      const seed = baseSeed + 50;
      console.log(`[failover] clock-skew ${skewMs} seed ${seed}`);
      for (const writesAfter of [true, false]) {
        const { siteA, resolver, store } = await twoSitePair(seed);
        const live = siteA.agent;
        if (!writesAfter) await writeRandomRegions(live, siteA.path, regionBytes, pick(seededRandom(seed + 2), 5), seed + 2);
        await new Promise((wake) => setTimeout(wake, 5));
        siteA.agent = unreachable; // a partition
        await failoverPair(store, resolver, 'p', { force: true });
        await new Promise((wake) => setTimeout(wake, 5));
        if (writesAfter) await writeRandomRegions(live, siteA.path, regionBytes, pick(seededRandom(seed + 2), 5), seed + 2);
        siteA.agent = skewed(live, skewMs); // back, on a skewed clock
        const plan = await failbackPair(store, resolver, 'p', { dryRun: true });
        const roles = (await pairStatus(store, resolver, 'p')).roles;
        if (writesAfter) {
          expect(plan.splitBrain).toMatchObject({ oldPrimaryClockOffsetMs: expect.closeTo(skewMs, -2) });
          expect(plan.splitBrain!.oldPrimaryLastWriteAtMs).toBeGreaterThan(plan.splitBrain!.failoverAtMs);
          expect(roles.verdict).toBe('split-brain');
        } else {
          expect(plan.splitBrain).toBeNull();
          expect(roles.verdict).toBe('behind');
          expect((await failbackPair(store, resolver, 'p')).resyncRegions).toBe(5);
        }
      }
    }, 60_000);
  }
});

describe('migrate', () => {
  for (const mode of ['continuous', 'periodic'] as const) {
    it(`${mode}: under a running writer no acknowledged write is lost, both sides identical, roles swapped, the pause reported`, async () => {
      const seed = baseSeed + 50;
      console.log(`[migrate] ${mode} seed ${seed}`);
      const { siteA, siteB, resolver, store } = await twoSitePair(seed, mode);
      // Each write stamped with its sequence number, awaited; the last acknowledged per region is kept.
      const acked = new Map<number, Buffer>();
      let stopped = false;
      let refused: unknown;
      const writer = (async () => {
        const random = seededRandom(seed + 1);
        for (let n = 1; !stopped; n++) {
          const region = Math.floor(random() * regionCount);
          const data = Buffer.alloc(regionBytes, n & 0xff);
          data.writeUInt32LE(n, 0);
          try {
            await siteA.agent.writeRegion(siteA.path, region, data);
            acked.set(region, data);
          } catch (error) {
            refused = error; // the primary's writes stop at the swap
            return;
          }
        }
      })();
      await new Promise((wake) => setTimeout(wake, 30));
      const summary = await migratePair(store, resolver, 'p', { drainMs: 300 });
      stopped = true;
      await writer;
      expect(refused).toBeInstanceOf(TidemarkError);
      expect(acked.size).toBeGreaterThan(0);
      expect(summary).toMatchObject({ generation: 2, newPrimary: siteB.path, oldPrimary: siteA.path });
      expect(summary.pauseMs).toBeGreaterThanOrEqual(0);
      const onB = await readWhole(siteB.agent, siteB.path);
      for (const [region, data] of acked) expect(onB.subarray(region * regionBytes, (region + 1) * regionBytes).equals(data)).toBe(true);
      expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
      expect((await store.require('p')).primary.volref).toBe(siteB.path);
      // The new direction replicates.
      await writeRandomRegions(siteB.agent, siteB.path, regionBytes, [3, 4], seed + 2);
      const next = await replicatePair({
        store,
        pair: await store.require('p'),
        endpoints: { primary: await resolver.resolve(siteB.path), secondary: await resolver.resolve(siteA.path) },
        once: true,
      });
      expect(next.bytesTransferred).toBe(2 * regionBytes);
      expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
    }, 60_000);
  }
});

describe('failover races and interruptions (review findings)', () => {
  it('a forced failover of a primary being written hands over everything up to its lock: failback leaves identical sites', async () => {
    const seed = baseSeed + 60;
    console.log(`[failover] racing writer seed ${seed}`);
    const { siteA, siteB, resolver, store } = await twoSitePair(seed);
    let stopped = false;
    const writer = (async () => {
      const random = seededRandom(seed + 1);
      for (let n = 1; !stopped; n++) {
        const data = Buffer.alloc(regionBytes, n & 0xff);
        data.writeUInt32LE(n, 0);
        try {
          await siteA.agent.writeRegion(siteA.path, Math.floor(random() * regionCount), data);
        } catch {
          return; // demoted: refused from the lock on
        }
      }
    })();
    await new Promise((wake) => setTimeout(wake, 20));
    await failoverPair(store, resolver, 'p', { force: true });
    stopped = true;
    await writer;
    await writeRandomRegions(siteB.agent, siteB.path, regionBytes, [7, 8], seed + 2);
    await failbackPair(store, resolver, 'p');
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
  }, 60_000);

  it('a failback interrupted after the old primary was demoted resumes and still copies every region', async () => {
    const seed = baseSeed + 70;
    console.log(`[failover] interrupted failback seed ${seed}`);
    const { siteA, siteB, resolver, store } = await twoSitePair(seed);
    const unshipped = pick(seededRandom(seed + 1), 6);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, unshipped, seed + 1);
    await (siteA.agent as LocalAgent).dispose();
    siteA.agent = unreachable;
    await failoverPair(store, resolver, 'p', { force: true });
    const onB = pick(seededRandom(seed + 2), 4);
    await writeRandomRegions(siteB.agent, siteB.path, regionBytes, onB, seed + 2);
    siteA.agent = new LocalAgent(siteA.home);
    agents.push(siteA.agent as LocalAgent);
    const expected = new Set([...unshipped, ...onB]).size;
    // The orchestrator dies when seeding the resync (after the old primary was demoted).
    const realB = siteB.agent;
    siteB.agent = new Proxy(realB, {
      get: (target, key) =>
        key === 'trackingMark'
          ? () => Promise.reject(new TidemarkError('DISCONNECTED', 'orchestrator lost', ''))
          : typeof target[key as keyof AgentApi] === 'function'
            ? (target[key as keyof AgentApi] as (...a: unknown[]) => unknown).bind(target)
            : target[key as keyof AgentApi],
    });
    await expect(failbackPair(store, resolver, 'p')).rejects.toThrow(/orchestrator lost/);
    expect((await siteA.agent.volumeState(siteA.path)).members[0]!.role).toBe('secondary'); // demoted already
    siteB.agent = realB;
    const done = await failbackPair(store, resolver, 'p');
    expect(done.bytesTransferred).toBe(expected * regionBytes);
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
  }, 60_000);

  it('a write carrying the old generation is refused by the promoted primary', async () => {
    const { siteA, siteB, resolver, store, pairId } = await twoSitePair(baseSeed + 80);
    await (siteA.agent as LocalAgent).dispose();
    siteA.agent = unreachable;
    await failoverPair(store, resolver, 'p', { force: true });
    await expect(siteB.agent.writeRegion(siteB.path, 0, Buffer.alloc(regionBytes), { auth: { pairId, generation: 1 } })).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && e.code === 'STALE',
    );
  }, 60_000);
});

describe('failover and easy failback (periodic)', () => {
  it('the new primary starts from the last applied cycle; failback copies exactly current ∪ next of the old primary ∪ written-since, in one cycle', async () => {
    const seed = baseSeed + 20;
    console.log(`[failover] periodic seed ${seed}`);
    const { siteA, siteB, resolver, store } = await twoSitePair(seed, 'periodic');
    const endpoints = async () => ({ primary: await resolver.resolve(siteA.path), secondary: await resolver.resolve(siteB.path) });
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, pick(seededRandom(seed + 1), 10), seed + 1);
    await replicatePair({ store, pair: await store.require('p'), endpoints: await endpoints(), once: true }); // a cycle applied
    const unshipped = pick(seededRandom(seed + 2), 14);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, unshipped, seed + 2);
    const appliedImage = await readWhole(siteB.agent, siteB.path);

    await (siteA.agent as LocalAgent).dispose();
    siteA.agent = unreachable;
    await expect(failoverPair(store, resolver, 'p')).rejects.toThrow(/current and next change maps/);
    await failoverPair(store, resolver, 'p', { force: true });
    // Promoted exactly at the last applied cycle.
    expect((await readWhole(siteB.agent, siteB.path)).equals(appliedImage)).toBe(true);
    const writtenOnB = pick(seededRandom(seed + 3), 11);
    await writeRandomRegions(siteB.agent, siteB.path, regionBytes, writtenOnB, seed + 3);

    siteA.agent = new LocalAgent(siteA.home);
    agents.push(siteA.agent as LocalAgent);
    const expected = new Set([...unshipped, ...writtenOnB]);
    expect((await failbackPair(store, resolver, 'p', { dryRun: true })).resyncRegions).toBe(expected.size);
    const done = await failbackPair(store, resolver, 'p');
    expect(done.bytesTransferred).toBe(expected.size * regionBytes);
    expect(done.replication?.cycles.length).toBe(1);
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
    // The old primary keeps no periodic leftovers of its primary days.
    expect((await siteA.agent.bitmapList(siteA.path)).map((m) => m.name)).toEqual([]);
    expect((await siteA.agent.snapshotList(siteA.path)).snapshots.filter((s) => s.label.startsWith('tidemark-cycle'))).toEqual([]);
  }, 60_000);

  it('a promotion during a cycle’s apply waits for it: the new primary is exactly that cycle, never half of it', async () => {
    const seed = baseSeed + 21;
    console.log(`[failover] apply-vs-promotion seed ${seed}`);
    const { siteA, siteB, resolver, store, pairId } = await twoSitePair(seed, 'periodic');
    const before = await readWhole(siteB.agent, siteB.path);
    const written = pick(seededRandom(seed + 1), 30);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, written, seed + 1);
    const cycleImage = await readWhole(siteA.agent, siteA.path);
    process.env[testApplyDelayEnv] = '20'; // per region the apply copies: ~0.6 s for the cycle
    try {
      const cycle = replicatePair({
        store,
        pair: await store.require('p'),
        endpoints: { primary: await resolver.resolve(siteA.path), secondary: await resolver.resolve(siteB.path) },
        once: true,
      });
      // The apply has begun once the secondary's bytes start to change.
      for (let i = 0; (await readWhole(siteB.agent, siteB.path)).equals(before); i++) {
        expect(i, 'the apply to begin').toBeLessThan(2_000);
        await new Promise((wake) => setTimeout(wake, 5));
      }
      await siteB.agent.pairRoleChange(siteB.path, pairId, { generation: 2, role: 'primary', event: 'failover-forced', atMs: Date.now(), by: 'test' });
      // Promoted: the cycle is wholly there, and an application's write to the cycle's last region stays.
      expect((await readWhole(siteB.agent, siteB.path)).equals(cycleImage)).toBe(true);
      const last = Math.max(...written);
      await siteB.agent.writeRegion(siteB.path, last, Buffer.alloc(regionBytes, 0xab));
      await cycle.catch(() => undefined);
      expect((await readWhole(siteB.agent, siteB.path)).subarray(last * regionBytes, (last + 1) * regionBytes).equals(Buffer.alloc(regionBytes, 0xab))).toBe(
        true,
      );
    } finally {
      delete process.env[testApplyDelayEnv];
    }
    expect((await siteB.agent.volumeState(siteB.path)).members[0]).toMatchObject({ role: 'primary', generation: 2 });
  }, 60_000);
});

async function readWhole(agent: AgentApi, path: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const { data } of agent.readRegions(path, 0, regionCount)) parts.push(data);
  return Buffer.concat(parts);
}
