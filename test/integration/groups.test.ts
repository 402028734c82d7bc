// Consistency groups (seed 004): two periodic pairs whose primaries take their cycle's
// snapshots at one instant. A writer issues numbered records alternately to the two primaries,
// each waiting for its acknowledgement; after every group cycle the two secondaries together
// hold exactly the records 1..m for some m (never record n on one without every earlier record
// on either). Taking the two snapshots one after the other fails this.
//
// Across hosts: the same with each primary on its own agent (two LocalAgents with their own
// homes: two hosts in one process), frozen by the two-phase hold (prepare on both, then commit
// on both). Freezing each host on its own (one host's snapshot, then the other's) fails the
// check; a commit refused after its lease ran out, and a prepare that fails on one host, leave
// no snapshot and writes flowing, and the next cycle holds a prefix again.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalAgent, agentSession, type AgentApi, type SnapshotInfo } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import {
  GroupStore,
  PairStore,
  createPair,
  replicatePair,
  runGroupCycle,
  runSync,
  type EndpointResolver,
  type GroupRecord,
} from '../../src-engine/replication';
import { until } from '../helpers/engine';
import { resolverFor } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { GroupRecords } from '../helpers/records';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 32;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

const records = new GroupRecords(regionBytes, regionCount);
const volumeOf = (n: number) => records.volumeOf(n);
const regionOf = (n: number) => records.regionOf(n);
const record = (n: number) => records.record(n);
const prefixHeld = (volumes: readonly Buffer[]) => records.prefixHeld(volumes);

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

/** Two hosts in one process: each a LocalAgent on its own home; a volume's host is the directory it is in. */
interface TwoHosts {
  readonly agents: readonly [LocalAgent, LocalAgent];
  readonly primaries: readonly string[];
  readonly secondaries: readonly string[];
  readonly store: PairStore;
  readonly groups: GroupStore;
  readonly group: GroupRecord;
  /** Maps a volume to its host's agent, through `wrap` (a wrapper per host, the same object for every volume there). */
  resolver(wrap?: (agent: LocalAgent, host: number) => AgentApi): EndpointResolver;
  agentOf(path: string): LocalAgent;
  dispose(): Promise<void>;
}

/** Pair a (primary on host 0, secondary on host 1) and pair b (the other way), synced, in group "db"; the orchestrator's home is host 0's. */
async function twoHosts(): Promise<TwoHosts> {
  const dir = await tempDir();
  const hostDirs = [join(dir, 'host0'), join(dir, 'host1')];
  const agents = [new LocalAgent(join(hostDirs[0]!, 'home')), new LocalAgent(join(hostDirs[1]!, 'home'))] as const;
  const hostOf = (path: string) => (path.startsWith(hostDirs[0]! + '/') ? 0 : 1);
  const resolver = (wrap: (agent: LocalAgent, host: number) => AgentApi = (a) => a): EndpointResolver => {
    const wrapped = agents.map((a, host) => wrap(a, host));
    return { resolve: async (volref) => ({ volref, agent: wrapped[hostOf(volref)]!, path: volref, where: `host${hostOf(volref)}` }) };
  };
  const primaries = [join(hostDirs[0]!, 'pa.img'), join(hostDirs[1]!, 'pb.img')];
  const secondaries = [join(hostDirs[1]!, 'sa.img'), join(hostDirs[0]!, 'sb.img')];
  const store = new PairStore(join(hostDirs[0]!, 'home'));
  const groups = new GroupStore(join(hostDirs[0]!, 'home'));
  const plain = resolver();
  for (const path of [...primaries, ...secondaries]) await agents[hostOf(path)].volumeCreate(path, sizeBytes, regionBytes);
  for (const [i, name] of ['a', 'b'].entries()) {
    const pair = await createPair(store, plain, { name, primary: primaries[i]!, secondary: secondaries[i]!, mode: 'periodic' });
    const endpoints = { primary: await plain.resolve(primaries[i]!), secondary: await plain.resolve(secondaries[i]!) };
    await runSync({ store, pair, endpoints, method: 'auto' });
  }
  const group = await groups.create('db', ['a', 'b'], store);
  const dispose = async () => {
    for (const agent of agents) await agent.dispose();
  };
  return { agents, primaries, secondaries, store, groups, group, resolver, agentOf: (path) => agents[hostOf(path)], dispose };
}

/** The writer of the records, each through its volume's host, one at a time, each awaited. */
function startWriter(hosts: TwoHosts, random: () => number): { acked: () => number; stop: () => Promise<void> } {
  let acked = 0;
  let stopped = false;
  const running = (async () => {
    while (!stopped) {
      const n = acked + 1;
      const path = hosts.primaries[volumeOf(n)]!;
      await hosts.agentOf(path).writeRegion(path, regionOf(n), record(n));
      acked = n;
      if (random() < 0.3) await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  return {
    acked: () => acked,
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

/** `agent` with some methods replaced (the rest pass through, bound to it). */
function overriding(agent: AgentApi, overrides: Partial<AgentApi>): AgentApi {
  return new Proxy(agent, {
    get(target, property, receiver) {
      if (Object.prototype.hasOwnProperty.call(overrides, property)) return overrides[property as keyof AgentApi];
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const readSecondaries = (hosts: TwoHosts) => Promise.all(hosts.secondaries.map((s) => readFile(s)));
const snapshotCount = async (hosts: TwoHosts) =>
  (await Promise.all(hosts.primaries.map(async (p) => (await hosts.agentOf(p).snapshotList(p)).snapshots.length))).reduce((a, b) => a + b, 0);

describe('consistency groups across hosts', () => {
  it('primaries on two hosts: after every group cycle both secondaries together hold exactly a prefix of the acknowledged records', async () => {
    const seed = baseSeed + 1;
    console.log(`[groups across hosts] seed ${seed}`);
    const hosts = await twoHosts();
    try {
      const random = seededRandom(seed);
      const writer = startWriter(hosts, random);
      // Host 1 is far: its prepare arrives once host 0's hold is in place and the writer got 4
      // records further, or 100 ms passed. Held, the writer cannot get further than the write
      // under way; a freeze without a hold spanning both hosts would let it, and fail the check.
      const calls: string[] = [];
      let host0Held: Promise<unknown> = Promise.resolve();
      const countingSlowHost1 = (agent: LocalAgent, host: number) =>
        overriding(agent, {
          snapshotCreateGroup: (items) => (calls.push(`createGroup ${host}`), agent.snapshotCreateGroup(items)),
          snapshotGroupPrepare: async (items, options) => {
            calls.push(`prepare ${host}`);
            if (host === 0) {
              const held = agent.snapshotGroupPrepare(items, options);
              host0Held = held.catch(() => undefined);
              return held;
            }
            await host0Held;
            const ackedAtHold = writer.acked();
            const deadlineMs = performance.now() + 100;
            while (writer.acked() < ackedAtHold + 4 && performance.now() < deadlineMs) await new Promise((resolve) => setTimeout(resolve, 5));
            return agent.snapshotGroupPrepare(items, options);
          },
          snapshotGroupCommit: (holdId) => (calls.push(`commit ${host}`), agent.snapshotGroupCommit(holdId)),
        });
      const resolver = hosts.resolver(countingSlowHost1);
      const { store, groups, group } = hosts;
      const held: number[] = [];
      for (let c = 0; c < 10; c++) {
        await new Promise((resolve) => setTimeout(resolve, 5 + Math.floor(random() * 30)));
        const before = writer.acked();
        const summary = await runGroupCycle({ store, groups, group, resolver });
        expect(summary.members.map((m) => m.cycle)).toEqual([c + 1, c + 1]);
        const m = prefixHeld(await readSecondaries(hosts));
        expect(m).toBeGreaterThanOrEqual(before);
        expect(m).toBeLessThanOrEqual(writer.acked());
        held.push(m);
      }
      await writer.stop();
      expect(held.at(-1)).toBeGreaterThan(held[0]!);
      expect(calls.filter((c) => c.startsWith('createGroup'))).toEqual([]); // two hosts: always the two-phase hold
      expect(calls.filter((c) => c.startsWith('prepare')).length).toBe(20);
      expect(calls.filter((c) => c.startsWith('commit')).length).toBe(20);
      await runGroupCycle({ store, groups, group, resolver });
      for (const [i, p] of hosts.primaries.entries()) expect((await readFile(hosts.secondaries[i]!)).equals(await readFile(p))).toBe(true);
      expect(await snapshotCount(hosts)).toBe(0);
    } finally {
      await hosts.dispose();
    }
  });

  it('freezing each host on its own (no hold spanning both) breaks the prefix: the check can fail', async () => {
    const seed = baseSeed + 2;
    console.log(`[groups across hosts, separate freezes] seed ${seed}`);
    const hosts = await twoHosts();
    try {
      const random = seededRandom(seed);
      const writer = startWriter(hosts, random);
      // Host 0 snapshots at its prepare and lets go; host 1 snapshots once 4 more records are
      // acknowledged. Records x+2.. are issued after host 0's snapshot (x: acked when it was
      // taken), and of x+2..x+4 one on host 1 follows one on host 0: never a prefix.
      let x: number | undefined;
      const separate = (agent: LocalAgent, host: number) => {
        const taken = new Map<string, SnapshotInfo[]>();
        return overriding(agent, {
          snapshotGroupPrepare: async (items) => {
            if (host === 1) await until(() => x !== undefined && writer.acked() >= x + 4, 10_000, 'four records after host 0 froze');
            const holdId = randomUUID();
            taken.set(holdId, await agent.snapshotCreateGroup(items));
            if (host === 0) x = writer.acked();
            return { holdId, heldAtMs: Date.now() };
          },
          snapshotGroupCommit: async (holdId) => taken.get(holdId)!,
        });
      };
      const { store, groups, group } = hosts;
      await new Promise((resolve) => setTimeout(resolve, 10));
      await runGroupCycle({ store, groups, group, resolver: hosts.resolver(separate) });
      await writer.stop();
      const secondaries = await readSecondaries(hosts);
      expect(() => prefixHeld(secondaries)).toThrow(/volume \d region \d+ after record \d+/);
    } finally {
      await hosts.dispose();
    }
  });

  it('a commit refused after its lease ran out, or a prepare that failed, leaves no snapshot and writes flowing; the next cycle holds a prefix', async () => {
    const seed = baseSeed + 3;
    console.log(`[groups across hosts, lease] seed ${seed}`);
    const hosts = await twoHosts();
    try {
      const { store, groups, group } = hosts;
      const random = seededRandom(seed);
      const writer = startWriter(hosts, random);
      const holdLeaseMs = 200;
      // Host 1's commit waits for the writer to get two records further — one of them goes to
      // host 1's held primary, so it completes only once that hold's lease ran out.
      let preparedAtMs = 0;
      const late = (agent: LocalAgent, host: number) =>
        overriding(agent, {
          snapshotGroupPrepare: (items, options) => {
            if (host === 1) preparedAtMs = performance.now();
            return agent.snapshotGroupPrepare(items, options);
          },
          snapshotGroupCommit: async (holdId) => {
            if (host === 1) {
              const acked = writer.acked();
              await until(() => writer.acked() >= acked + 2, 10_000, 'a write to the held primary');
              expect(performance.now() - preparedAtMs).toBeGreaterThanOrEqual(holdLeaseMs);
            }
            return agent.snapshotGroupCommit(holdId);
          },
        });
      const expired = await runGroupCycle({ store, groups, group, resolver: hosts.resolver(late), holdLeaseMs }).catch((e: unknown) => e);
      expect(expired).toBeInstanceOf(TidemarkError);
      expect((expired as TidemarkError).code).toBe('EXPIRED');
      expect((expired as TidemarkError).message).toMatch(new RegExp(`group hold [0-9a-f-]{36} .*lease of ${holdLeaseMs} ms ran out`));
      expect(await snapshotCount(hosts)).toBe(0); // host 0's commit took its snapshot; it was deleted

      // Host 1's prepare fails: host 0's hold is aborted, its writes go on.
      const failing = (agent: LocalAgent, host: number) =>
        overriding(agent, {
          snapshotGroupPrepare: async (items, options) => {
            if (host === 1) throw new TidemarkError('DISCONNECTED', 'link to host 1 dropped (test)', 'the next operation reconnects');
            return agent.snapshotGroupPrepare(items, options);
          },
        });
      await expect(runGroupCycle({ store, groups, group, resolver: hosts.resolver(failing) })).rejects.toThrow(/link to host 1 dropped/);
      const ackedAfterFailure = writer.acked();
      await until(() => writer.acked() >= ackedAfterFailure + 4, 10_000, 'writes to flow after the failed freeze');
      expect(await snapshotCount(hosts)).toBe(0);

      const before = writer.acked();
      const summary = await runGroupCycle({ store, groups, group, resolver: hosts.resolver() });
      expect(summary.resumed).toBe(true); // the freezing cursor of the failed attempts
      expect(summary.members.map((m) => m.cycle)).toEqual([1, 1]);
      await writer.stop();
      const m = prefixHeld(await readSecondaries(hosts));
      expect(m).toBeGreaterThanOrEqual(before);
      expect(await snapshotCount(hosts)).toBe(0);
    } finally {
      await hosts.dispose();
    }
  });

  it("a hold's RPC session ending releases it at once (not at lease expiry); a prepare still queued behind another hold fails when its lease runs out", async () => {
    const dir = await tempDir();
    const agent = new LocalAgent(join(dir, 'home'));
    try {
      const [a, b] = [join(dir, 'a.img'), join(dir, 'b.img')];
      for (const path of [a, b]) await agent.volumeCreate(path, sizeBytes, regionBytes);
      const session = agentSession(agent);
      const context = { signal: new AbortController().signal, streaming: false };
      const call = (method: string, json: Record<string, unknown>) =>
        session.handler(method, { json, payload: new Uint8Array(0) }, context) as Promise<{ json: Record<string, unknown> }>;
      const { json } = await call('snapshot.groupPrepare', { items: [{ path: a }, { path: b }], leaseMs: 60_000 });
      // Queued behind the session's hold: its lease runs out before it is held, and it fails then, not when a's writes resume.
      await expect(agent.snapshotGroupPrepare([{ path: a }], { leaseMs: 100 })).rejects.toSatisfy((e) => e instanceof TidemarkError && e.code === 'EXPIRED');
      let written = false;
      const writing = agent.writeRegion(b, 0, record(2)).then(() => (written = true));
      expect(written).toBe(false);
      await session.release(); // the client went away
      await writing;
      await expect(agent.snapshotGroupCommit(json.holdId as string)).rejects.toThrow(/was aborted already/);
      expect((await agent.snapshotList(a)).snapshots).toEqual([]);
    } finally {
      await agent.dispose();
    }
  });
});
