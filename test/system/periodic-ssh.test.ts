// Periodic replication over SSH against real OpenSSH sshd instances on loopback: a local
// primary to a remote secondary, and a remote primary to a remote secondary on another sshd
// (each remote side its own home and agent). A seeded numbered-record writer
// (test/helpers/records.ts) writes through the primary's agent while `replicate --once` runs
// cycles; after each cycle the secondary is exactly the primary after records 1..m (a cycle
// boundary) with m at least what was acknowledged before the cycle; once the writer stops a
// last cycle makes the volumes identical and verify finds nothing differing.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi } from '../../src-engine/agent';
import { PairStore, createPair, replicatePair, verifyPair, type EndpointResolver, type PairEndpoints, type VolumeEndpoint } from '../../src-engine/replication';
import { RemoteHost } from '../../src-engine/ssh';
import { stopAgentOf, testRemoteHostOptions } from '../helpers/agents';
import { sameBytes } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { NumberedRecords, RecordWriter } from '../helpers/records';
import { startSshd, type TestSshd } from '../helpers/sshd';

const regionBytes = 64 * 1024;
const regionCount = 64; // 4 MiB volumes
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261201);
/** Consecutive records 29 regions apart: a copy that is not one instant shows as a mix. */
const records = new NumberedRecords(regionBytes, regionCount, 29);
const cycles = 5;

let dir: string;
const sshds: TestSshd[] = [];
const disposables: { dispose(): Promise<void> }[] = [];
const remoteHomes: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-periodic-ssh-'));
  for (const name of ['sshd-a', 'sshd-b']) sshds.push(await startSshd(join(dir, name)));
});

afterEach(async () => {
  for (const d of disposables.splice(0).reverse()) await d.dispose();
});

afterAll(async () => {
  for (const home of remoteHomes) await stopAgentOf(home);
  for (const sshd of sshds) await sshd.stop();
  await rm(dir, { recursive: true, force: true });
});

type Side = 'local' | 'remote-a' | 'remote-b';

/** A volume on `side`: this process's agent, or the agent behind sshd a or b (its own home). */
async function endpoint(side: Side, name: string): Promise<VolumeEndpoint> {
  const path = join(dir, `${name}.img`);
  let agent: AgentApi;
  let volref = path;
  let where = 'this machine';
  if (side === 'local') agent = new LocalAgent(join(dir, `${name}-home`));
  else {
    const sshd = sshds[side === 'remote-a' ? 0 : 1]!;
    const home = join(dir, `${name}-home`);
    remoteHomes.push(home);
    agent = new RemoteHost(sshd.alias, testRemoteHostOptions(sshd, join(dir, `${name}-ssh`), home));
    volref = `ssh://${sshd.alias}:${sshd.port}${path}`;
    where = `${sshd.alias}:${sshd.port} (${side})`;
  }
  disposables.push(agent);
  await agent.volumeCreate(path, sizeBytes, regionBytes);
  return { volref, agent, path, where };
}

const cases: [Side, Side][] = [
  ['local', 'remote-a'],
  ['remote-a', 'remote-b'],
];

describe('periodic replication over SSH', () => {
  for (const [index, [from, to]] of cases.entries()) {
    it(`${from} → ${to}: after every cycle under a writer the secondary is at a cycle boundary; identical at the end`, async () => {
      const seed = baseSeed + 70 + index;
      console.log(`[periodic-ssh] ${from} → ${to} seed ${seed}`);
      const name = `${from}-to-${to}`;
      const endpoints: PairEndpoints = { primary: await endpoint(from, `${name}-p`), secondary: await endpoint(to, `${name}-s`) };
      const resolver: EndpointResolver = { resolve: async (volref) => [endpoints.primary, endpoints.secondary].find((e) => e.volref === volref)! };
      const store = new PairStore(join(dir, `${name}-orchestrator`));
      await createPair(store, resolver, { name, primary: endpoints.primary.volref, secondary: endpoints.secondary.volref, mode: 'periodic' });
      const replicateOnce = async () => replicatePair({ store, pair: await store.require(name), endpoints, once: true });
      // Never synced: the first replicate syncs, then runs cycle 1.
      const first = await replicateOnce();
      expect(first.sync).not.toBeNull();
      expect(first.cycles.map((c) => c.cycle)).toEqual([1]);

      const random = seededRandom(seed);
      const writer = new RecordWriter(endpoints.primary.agent, endpoints.primary.path, records, seededRandom(seed + 1));
      writer.start();
      const held: number[] = [];
      try {
        for (let c = 2; c <= cycles + 1; c++) {
          const target = writer.acked + 20 + Math.floor(random() * 60);
          while (writer.acked < target && writer.failure === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
          const ackedBefore = writer.acked;
          const summary = await replicateOnce();
          const ackedAfter = writer.acked;
          expect(summary.cycles.map((x) => x.cycle)).toEqual([c]);
          expect(summary.cycles[0]!.regionsTransferred).toBeGreaterThan(0);
          // The secondary's file, read on this machine: exactly the primary after records 1..m.
          const m = records.prefixHeld(await readFile(endpoints.secondary.path), `${name} secondary after cycle ${c}`);
          expect(m).toBeGreaterThanOrEqual(ackedBefore);
          expect(m).toBeLessThanOrEqual(ackedAfter);
          held.push(m);
        }
      } finally {
        await writer.stop();
      }
      console.log(`[periodic-ssh] ${from} → ${to}: secondary at records ${held.join(', ')} of ${writer.acked}`);
      expect(held.every((m, i) => i === 0 || m >= held[i - 1]!)).toBe(true);

      const last = await replicateOnce();
      expect(last.cycles.map((x) => x.cycle)).toEqual([cycles + 2]);
      expect(records.prefixHeld(await readFile(endpoints.secondary.path), `${name} secondary at the end`)).toBe(writer.acked);
      expect(await sameBytes(endpoints.primary.path, endpoints.secondary.path, sizeBytes)).toBe(true);
      expect((await verifyPair(await store.require(name), endpoints)).regionsDiffering).toBe(0);
      expect((await endpoints.primary.agent.snapshotList(endpoints.primary.path)).snapshots.filter((s) => s.label.startsWith('tidemark-cycle'))).toEqual([]);
      const member = (await endpoints.secondary.agent.volumeState(endpoints.secondary.path)).members[0]!;
      expect(member.appliedCycle).toBe(cycles + 2);
    });
  }
});
