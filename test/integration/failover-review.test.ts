// Regressions from the independent review of failover and migrate (docs/failover.md "Ordering
// rules"): a process killed between two steps of a demotion, a promotion, a failback's hand-over
// or a migrate's restore; a periodic migrate cut short mid-cycle; a stale write already past the
// lock when a promotion fences; a fan-out primary. A "kill" is an agent disposed and a new one
// opened on the same home (what a restart does), or an orchestrator call that throws midway.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalAgent, failbackMapName, type AgentApi } from '../../src-engine/agent';
import { membersOf } from '../../src-engine/agent/agent-volume';
import { TidemarkError } from '../../src-engine/errors';
import { PairStore, createPair, failbackPair, failoverPair, migratePair, replicatePair, runSync, type EndpointResolver } from '../../src-engine/replication';
import { randomRegion, resolverFor, sameBytes, writeRandomRegions } from '../helpers/pairs';
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

const unreachable = new Proxy({} as AgentApi, {
  get: () => () => Promise.reject(new TidemarkError('DISCONNECTED', 'connection to the primary host dropped', 'wait for it')),
});

/** `agent` with some methods replaced. */
function patched(agent: AgentApi, overrides: Partial<Record<keyof AgentApi, (...args: never[]) => unknown>>): AgentApi {
  return new Proxy(agent, {
    get: (target, key) => {
      if (key in overrides) return overrides[key as keyof AgentApi];
      const value = target[key as keyof AgentApi];
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

interface Site {
  home: string;
  path: string;
  agent: AgentApi;
}

async function twoSitePair(seed: number, mode: 'continuous' | 'periodic' = 'continuous') {
  const dir = await tempDir();
  const open = (name: string): Site => {
    const agent = new LocalAgent(join(dir, `site-${name}`));
    agents.push(agent);
    return { home: join(dir, `site-${name}`), path: join(dir, `${name}.img`), agent };
  };
  const siteA = open('a');
  const siteB = open('b');
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
  /** The site's agent killed and started again on its home. */
  const restart = async (site: Site, live: AgentApi) => {
    await (live as LocalAgent).dispose();
    const agent = new LocalAgent(site.home);
    agents.push(agent);
    site.agent = agent;
  };
  return { siteA, siteB, resolver, store, pairId: record.pairId, restart };
}

const volumeOf = async (agent: AgentApi, path: string) => (agent as unknown as { open(path: string): Promise<Parameters<typeof membersOf>[0]> }).open(path);

describe('review regressions: killed midway', () => {
  it('an agent killed inside a demotion: its MOOS is folded into the unshipped map at restart, and the resumed migrate copies every region', async () => {
    const seed = baseSeed + 60;
    console.log(`[failover-review] demote-kill seed ${seed}`);
    const { siteA, siteB, resolver, store, pairId, restart } = await twoSitePair(seed);
    const written = pick(seededRandom(seed + 1), 12);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, written, seed + 1); // acknowledged, unshipped
    const liveA = siteA.agent;
    siteA.agent = patched(liveA, {
      pairRoleChange: (async (path: string, id: string, event: Parameters<AgentApi['pairRoleChange']>[2]) => {
        // The demotion's first durable step (the member record), then the agent dies.
        await membersOf(await volumeOf(liveA, path), siteA.home).changeRole(id, event);
        throw new TidemarkError('DISCONNECTED', 'agent killed', '');
      }) as never,
    });
    await expect(migratePair(store, resolver, 'p', { drainMs: 0 })).rejects.toThrow(/agent killed/);
    await restart(siteA, liveA);
    const resumed = await migratePair(store, resolver, 'p', { drainMs: 0 });
    expect(resumed).toMatchObject({ resumed: true, finalRegions: written.length, newPrimary: siteB.path });
    expect((await store.require('p')).primary.volref).toBe(siteB.path);
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
    void pairId;
  }, 60_000);

  it('a new primary killed after its promotion fenced: the fence does not outlive the agent, the resumed migrate finishes', async () => {
    const seed = baseSeed + 61;
    console.log(`[failover-review] fence-kill seed ${seed}`);
    const { siteA, siteB, resolver, store, restart } = await twoSitePair(seed);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, pick(seededRandom(seed + 1), 12), seed + 1);
    const liveB = siteB.agent;
    siteB.agent = patched(liveB, {
      pairRoleChange: (async (path: string, id: string, event: Parameters<AgentApi['pairRoleChange']>[2]) => {
        if (event.role !== 'primary') return liveB.pairRoleChange(path, id, event);
        membersOf(await volumeOf(liveB, path), siteB.home).fenceAt(id, event.generation); // the promotion's first step
        throw new TidemarkError('DISCONNECTED', 'agent killed', '');
      }) as never,
    });
    await expect(migratePair(store, resolver, 'p', { drainMs: 0 })).rejects.toThrow(/agent killed/);
    await restart(siteB, liveB);
    const resumed = await migratePair(store, resolver, 'p', { drainMs: 0 });
    expect(resumed).toMatchObject({ resumed: true, newPrimary: siteB.path });
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
  }, 60_000);

  it('a failback whose orchestrator died right after demoting the loser hands over its unshipped regions on the retry', async () => {
    const seed = baseSeed + 62;
    console.log(`[failover-review] failback-handover seed ${seed}`);
    const { siteA, siteB, resolver, store } = await twoSitePair(seed);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, pick(seededRandom(seed + 1), 5), seed + 1); // unshipped on A
    const liveA = siteA.agent;
    siteA.agent = unreachable;
    await failoverPair(store, resolver, 'p', { force: true });
    await writeRandomRegions(siteB.agent, siteB.path, regionBytes, pick(seededRandom(seed + 2), 4), seed + 2);
    // A is back, never demoted; an application write lands on it just before its lock.
    let demoted = false;
    siteA.agent = patched(liveA, {
      pairRoleChange: (async (...args: Parameters<AgentApi['pairRoleChange']>) => {
        if (args[2].role === 'secondary') await liveA.writeRegion(siteA.path, 200, randomRegion(seed + 3, regionBytes));
        const result = await liveA.pairRoleChange(...args);
        demoted = true;
        return result;
      }) as never,
    });
    const liveB = siteB.agent;
    siteB.agent = patched(liveB, {
      bitmapMark: (async (...args: Parameters<AgentApi['bitmapMark']>) => {
        if (demoted) throw new TidemarkError('DISCONNECTED', 'orchestrator killed', '');
        return liveB.bitmapMark(...args);
      }) as never,
    });
    await expect(failbackPair(store, resolver, 'p', { discardChangesOn: siteA.path })).rejects.toThrow(/orchestrator killed/);
    siteA.agent = liveA;
    siteB.agent = liveB;
    await failbackPair(store, resolver, 'p', { discardChangesOn: siteA.path });
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
  }, 60_000);

  it('a migrate whose verify failed, killed while restoring the old primary: the retry finishes the restore and replication converges', async () => {
    const seed = baseSeed + 63;
    console.log(`[failover-review] restore-kill seed ${seed}`);
    const { siteA, siteB, resolver, store } = await twoSitePair(seed);
    const written = pick(seededRandom(seed + 1), 12);
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, written, seed + 1);
    const liveA = siteA.agent;
    const liveB = siteB.agent;
    let first = true;
    siteB.agent = patched(liveB, {
      writeRegion: (async (path: string, r: number, data: Uint8Array, options: Parameters<AgentApi['writeRegion']>[3]) => {
        if (first) {
          first = false;
          data = Buffer.alloc(data.length, 0x5a); // one region lands wrong: the verify fails
        }
        return liveB.writeRegion(path, r, data, options);
      }) as never,
    });
    siteA.agent = patched(liveA, {
      trackingMark: (async () => {
        throw new TidemarkError('DISCONNECTED', 'orchestrator killed', '');
      }) as never,
    });
    await expect(migratePair(store, resolver, 'p', { drainMs: 0 })).rejects.toThrow(/orchestrator killed/);
    siteA.agent = liveA;
    siteB.agent = liveB;
    await expect(migratePair(store, resolver, 'p', { drainMs: 0 })).rejects.toThrow(/had stopped before the swap.* is the primary again/);
    expect(await store.require('p')).toMatchObject({ generation: 3, primary: { volref: siteA.path } });
    await replicatePair({
      store,
      pair: await store.require('p'),
      endpoints: { primary: await resolver.resolve(siteA.path), secondary: await resolver.resolve(siteB.path) },
      once: true,
    });
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
  }, 60_000);
});

describe('review regressions: what a role change leaves', () => {
  it('a periodic migrate whose drain was cut mid-cycle leaves no cycle of the old direction: replication the new way works', async () => {
    const seed = baseSeed + 64;
    console.log(`[failover-review] periodic-cursor seed ${seed}`);
    const { siteA, siteB, resolver, store, pairId } = await twoSitePair(seed, 'periodic');
    await writeRandomRegions(siteA.agent, siteA.path, regionBytes, pick(seededRandom(seed + 1), 60), seed + 1);
    const liveB = siteB.agent;
    siteB.agent = patched(liveB, {
      stageRegion: (async (...args: Parameters<AgentApi['stageRegion']>) => {
        await new Promise((wake) => setTimeout(wake, 30));
        return liveB.stageRegion(...args);
      }) as never,
    });
    await migratePair(store, resolver, 'p', { drainMs: 150 });
    siteB.agent = liveB;
    expect(await readdir(store.pairDir('p'))).not.toContain('cycle.json');
    expect((await siteA.agent.snapshotList(siteA.path)).snapshots.filter((s) => s.label.startsWith(`tidemark-cycle ${pairId}`))).toEqual([]);
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
    await writeRandomRegions(siteB.agent, siteB.path, regionBytes, [3, 4], seed + 2);
    await replicatePair({
      store,
      pair: await store.require('p'),
      endpoints: { primary: await resolver.resolve(siteB.path), secondary: await resolver.resolve(siteA.path) },
      once: true,
    });
    expect(await sameBytes(siteA.path, siteB.path, sizeBytes)).toBe(true);
  }, 60_000);

  it('a stale write already past the lock when a promotion fences is drained before the rollback looks', async () => {
    const seed = baseSeed + 65;
    console.log(`[failover-review] fence-inflight seed ${seed}`);
    const { siteB, pairId } = await twoSitePair(seed);
    const before = await readFile(siteB.path);
    const { snapshotId } = await siteB.agent.snapshotCreate(siteB.path, { label: `tidemark-protect ${pairId}` });
    await siteB.agent.pairUpdate(siteB.path, pairId, { protectSnapshotId: snapshotId });
    const stale = { auth: { pairId, generation: 1 } };
    for (const r of pick(seededRandom(seed + 1), 50)) await siteB.agent.writeRegion(siteB.path, r, randomRegion(seed + r, regionBytes), stale);
    await siteB.agent.bitmapCreate(siteB.path, failbackMapName(pairId)); // as failoverPair does before promoting
    // The old shipper's last write: admitted at generation 1, its hooks still running (a copy-on-write, an fsync: 300 ms here).
    const volume = (await volumeOf(siteB.agent, siteB.path)).opened.volume;
    let slow = true;
    volume.addWriteHook({
      name: 'slow-cow',
      beforeWrite: async () => {
        if (!slow) return;
        slow = false;
        await new Promise((wake) => setTimeout(wake, 300));
      },
    });
    const staleWrite = siteB.agent.writeRegion(siteB.path, 7, Buffer.alloc(regionBytes, 0xee), stale);
    await new Promise((wake) => setImmediate(wake));
    await siteB.agent.pairRoleChange(siteB.path, pairId, { generation: 2, role: 'primary', event: 'failover-forced', atMs: Date.now(), by: 'test' });
    await staleWrite.catch(() => undefined);
    expect((await readFile(siteB.path)).equals(before)).toBe(true);
  }, 60_000);

  it('a volume that is the primary of two pairs is not demoted for one of them (it would lock the other)', async () => {
    const dir = await tempDir();
    const agent = new LocalAgent(join(dir, 'home'));
    agents.push(agent);
    const [a, b, c] = ['a', 'b', 'c'].map((n) => join(dir, `${n}.img`)) as [string, string, string];
    for (const path of [a, b, c]) await agent.volumeCreate(path, sizeBytes, regionBytes);
    const store = new PairStore(join(dir, 'home'));
    const resolver = resolverFor(agent);
    for (const [name, secondary] of [
      ['p1', b],
      ['p2', c],
    ] as const) {
      const record = await createPair(store, resolver, { name, primary: a, secondary, regionBytes });
      const endpoints = { primary: await resolver.resolve(a), secondary: await resolver.resolve(secondary) };
      await runSync({ store, pair: record, endpoints, method: 'auto' });
    }
    await expect(migratePair(store, resolver, 'p1', { drainMs: 0 })).rejects.toThrow(/also a member of pair\(s\) "p2" \(primary\).*read-only for them too/);
    await agent.writeRegion(a, 0, Buffer.alloc(regionBytes, 1)); // still the writable primary of both
    expect((await agent.volumeState(a)).members.map((m) => m.role)).toEqual(['primary', 'primary']);
  }, 60_000);
});
