// A consistency group across hosts over real SSH: pair a's primary on this machine (a
// LocalAgent), pair b's primary behind a real OpenSSH sshd on loopback (a RemoteHost, the agent
// deployed over SFTP, its own home); both secondaries local. The group freezes with the
// two-phase hold (prepare on both agents, then commit on both), over the agent RPC for the
// remote one. A seeded writer issues numbered records alternately to the two primaries, each
// awaiting its acknowledgement (test/helpers/records.ts GroupRecords); after every group cycle
// the two secondaries together are exactly the primaries after records 1..m; once the writer
// stops, a last cycle makes them identical to the primaries and leaves no snapshot.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi } from '../../src-engine/agent';
import { GroupStore, PairStore, createPair, runGroupCycle, runSync, type EndpointResolver, type VolumeEndpoint } from '../../src-engine/replication';
import { RemoteHost } from '../../src-engine/ssh';
import { stopAgentOf, testRemoteHostOptions } from '../helpers/agents';
import { seededRandom } from '../helpers/random';
import { GroupRecords } from '../helpers/records';
import { startSshd, type TestSshd } from '../helpers/sshd';

const regionBytes = 64 * 1024;
const regionCount = 32; // 2 MiB volumes
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);
const records = new GroupRecords(regionBytes, regionCount);
const cycles = 4;

let dir: string;
let sshd: TestSshd;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-groups-ssh-'));
  sshd = await startSshd(join(dir, 'sshd'));
});

afterAll(async () => {
  await stopAgentOf(join(dir, 'remote-home'));
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('consistency group across hosts over SSH', () => {
  it('one primary local, one behind sshd: after every group cycle the secondaries are the group at one instant; identical at the end', async () => {
    const seed = baseSeed + 40;
    console.log(`[groups-ssh] seed ${seed}`);
    const local = new LocalAgent(join(dir, 'local-home'));
    const remote = new RemoteHost(sshd.alias, testRemoteHostOptions(sshd, join(dir, 'ssh'), join(dir, 'remote-home')));
    try {
      const endpoint = (agent: AgentApi, name: string): VolumeEndpoint => {
        const path = join(dir, `${name}.img`);
        return agent === local
          ? { volref: path, agent, path, where: 'this machine' }
          : { volref: `ssh://${sshd.alias}:${sshd.port}${path}`, agent, path, where: `${sshd.alias}:${sshd.port}` };
      };
      const primaries = [endpoint(local, 'pa'), endpoint(remote, 'pb')];
      const secondaries = [endpoint(local, 'sa'), endpoint(local, 'sb')];
      const all = [...primaries, ...secondaries];
      for (const e of all) await e.agent.volumeCreate(e.path, sizeBytes, regionBytes);
      const resolver: EndpointResolver = { resolve: async (volref) => all.find((e) => e.volref === volref)! };
      const store = new PairStore(join(dir, 'local-home'));
      const groups = new GroupStore(join(dir, 'local-home'));
      for (const [i, name] of ['a', 'b'].entries()) {
        const pair = await createPair(store, resolver, { name, primary: primaries[i]!.volref, secondary: secondaries[i]!.volref, mode: 'periodic' });
        await runSync({ store, pair, endpoints: { primary: primaries[i]!, secondary: secondaries[i]! }, method: 'auto' });
      }
      const group = await groups.create('db', ['a', 'b'], store);

      const random = seededRandom(seed);
      let acked = 0;
      let stopped = false;
      const writer = (async () => {
        while (!stopped) {
          const n = acked + 1;
          const p = primaries[records.volumeOf(n)]!;
          await p.agent.writeRegion(p.path, records.regionOf(n), records.record(n));
          acked = n;
        }
      })();
      const held: number[] = [];
      try {
        for (let c = 1; c <= cycles; c++) {
          const target = acked + 10 + Math.floor(random() * 30);
          while (acked < target) await new Promise((resolve) => setTimeout(resolve, 5));
          const before = acked;
          const summary = await runGroupCycle({ store, groups, group, resolver });
          expect(summary.members.map((m) => m.cycle)).toEqual([c, c]);
          const m = records.prefixHeld(await Promise.all(secondaries.map((s) => readFile(s.path))));
          expect(m).toBeGreaterThanOrEqual(before);
          expect(m).toBeLessThanOrEqual(acked);
          held.push(m);
        }
      } finally {
        stopped = true;
        await writer;
      }
      console.log(`[groups-ssh] secondaries at records ${held.join(', ')} of ${acked}`);
      await runGroupCycle({ store, groups, group, resolver });
      expect(records.prefixHeld(await Promise.all(secondaries.map((s) => readFile(s.path))))).toBe(acked);
      for (const [i, p] of primaries.entries()) expect((await readFile(secondaries[i]!.path)).equals(await readFile(p.path))).toBe(true);
      for (const p of primaries) expect((await p.agent.snapshotList(p.path)).snapshots).toEqual([]);
    } finally {
      await remote.dispose();
      await local.dispose();
    }
  });
});
