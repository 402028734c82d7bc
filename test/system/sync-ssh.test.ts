// Pairs and sync over SSH against a real OpenSSH sshd on loopback (docs/sync.md "Tests" 1):
// local → remote, remote → local and remote → remote (two agents with their own homes), each
// under a concurrent writer through the primary's agent, then a 1 % signature resync; early,
// full, realized and signature local → remote under a writer (tardy is the first cases'); and
// the field workflow through the CLI with a `host:/path` secondary.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import { PairStore, createPair, runSync, verifyPair, type EndpointResolver, type PairEndpoints, type VolumeEndpoint } from '../../src-engine/replication';
import { RemoteHost } from '../../src-engine/ssh';
import { stopAgentOf, testRemoteHostOptions } from '../helpers/agents';
import { tidemark } from '../helpers/cli';
import { RandomWriter, randomRegion, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { startSshd, type TestSshd } from '../helpers/sshd';

let sshd: TestSshd;
let dir: string;
const disposables: { dispose(): Promise<void> }[] = [];
const regionBytes = 64 * 1024;
const regionCount = 256;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261126);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-sync-ssh-'));
  sshd = await startSshd(join(dir, 'sshd'));
});

afterEach(async () => {
  for (const d of disposables.splice(0)) await d.dispose();
});

afterAll(async () => {
  for (const home of ['remote-a', 'remote-b']) await stopAgentOf(join(dir, home));
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

type Side = 'local' | 'remote-a' | 'remote-b';

function agentFor(side: Side): AgentApi {
  const agent =
    side === 'local' ? new LocalAgent(join(dir, 'local-home')) : new RemoteHost(sshd.alias, testRemoteHostOptions(sshd, join(dir, side), join(dir, side)));
  disposables.push(agent);
  return agent;
}

async function endpoint(side: Side, name: string): Promise<VolumeEndpoint> {
  const agent = agentFor(side);
  const path = join(dir, `${name}.img`);
  await agent.volumeCreate(path, sizeBytes, regionBytes);
  return { volref: side === 'local' ? path : `${sshd.alias}:${path}`, agent, path, where: side === 'local' ? 'this machine' : `${sshd.alias} (${side})` };
}

const cases: [Side, Side][] = [
  ['local', 'remote-a'],
  ['remote-a', 'local'],
  ['remote-a', 'remote-b'],
];

describe('sync over SSH', () => {
  for (const [index, [from, to]] of cases.entries()) {
    it(`${from} → ${to}: tardy under a writer, then a 1% signature resync; identical, snapshot gone, secondary locked`, async () => {
      const seed = baseSeed + index;
      console.log(`[sync-ssh] ${from} → ${to} seed ${seed}`);
      const random = seededRandom(seed);
      const name = `${from}-to-${to}`;
      const endpoints: PairEndpoints = { primary: await endpoint(from, `${name}-p`), secondary: await endpoint(to, `${name}-s`) };
      await writeRandomRegions(
        endpoints.primary.agent,
        endpoints.primary.path,
        regionBytes,
        Array.from({ length: regionCount / 2 }, (_, i) => 2 * i),
        seed,
      );
      const resolver: EndpointResolver = {
        resolve: async (volref) => [endpoints.primary, endpoints.secondary].find((e) => e.volref === volref)!,
      };
      const store = new PairStore(join(dir, `orchestrator-${index}`));
      const record = await createPair(store, resolver, { name, primary: endpoints.primary.volref, secondary: endpoints.secondary.volref });

      // The remote agent enforces the lock on its own side, whoever asks.
      await expect(endpoints.secondary.agent.writeRegion(endpoints.secondary.path, 0, Buffer.alloc(regionBytes))).rejects.toSatisfy(
        (e: unknown) => e instanceof TidemarkError && e.code === 'PERMISSION',
      );

      const writer = new RandomWriter(endpoints.primary.agent, endpoints.primary.path, regionBytes, regionCount, seed + 1);
      writer.start();
      let stopping: Promise<void> | undefined;
      const first = await runSync({
        store,
        pair: record,
        endpoints,
        method: 'tardy',
        onProgress: (p) => {
          if (!stopping && p.regionsDone >= p.regionsTotal / 3) stopping = writer.stop();
        },
      });
      await (stopping ?? writer.stop());
      const settled = first.pendingRegions > 0 ? await runSync({ store, pair: record, endpoints, method: 'auto' }) : first;
      expect(settled.pendingRegions).toBe(0);
      expect(writer.written.size).toBeGreaterThan(0);
      expect(await sameBytes(endpoints.primary.path, endpoints.secondary.path, sizeBytes)).toBe(true);
      expect((await endpoints.primary.agent.snapshotList(endpoints.primary.path)).snapshots.filter((s) => s.label.startsWith('tidemark-sync'))).toEqual([]);

      const changed = new Set<number>();
      while (changed.size < Math.max(1, regionCount / 100)) changed.add(Math.floor(random() * regionCount));
      await writeRandomRegions(endpoints.primary.agent, endpoints.primary.path, regionBytes, changed, seed + 2);
      const resync = await runSync({ store, pair: record, endpoints, method: 'signature' });
      expect(resync.regionsTransferred).toBe(changed.size);
      expect(resync.bytesTransferred).toBeLessThanOrEqual(1.02 * changed.size * regionBytes);
      expect((await verifyPair(record, endpoints)).regionsDiffering).toBe(0);
    });
  }

  for (const method of ['early', 'full', 'realized', 'signature'] as const) {
    it(`local → remote-a with ${method} under a writer: identical after the writer stops`, async () => {
      const seed = baseSeed + 20 + method.length;
      console.log(`[sync-ssh] ${method} seed ${seed}`);
      const name = `methods-${method}`;
      const endpoints: PairEndpoints = { primary: await endpoint('local', `${name}-p`), secondary: await endpoint('remote-a', `${name}-s`) };
      await writeRandomRegions(
        endpoints.primary.agent,
        endpoints.primary.path,
        regionBytes,
        Array.from({ length: regionCount / 4 }, (_, i) => 4 * i),
        seed,
      );
      await writeRandomRegions(endpoints.secondary.agent, endpoints.secondary.path, regionBytes, [1, 2, 3], seed + 5); // secondary-only data
      const resolver: EndpointResolver = { resolve: async (volref) => [endpoints.primary, endpoints.secondary].find((e) => e.volref === volref)! };
      const store = new PairStore(join(dir, `orchestrator-${name}`));
      const record = await createPair(store, resolver, { name, primary: endpoints.primary.volref, secondary: endpoints.secondary.volref });
      const writer = new RandomWriter(endpoints.primary.agent, endpoints.primary.path, regionBytes, regionCount, seed + 1);
      writer.start();
      let stopping: Promise<void> | undefined;
      const first = await runSync({
        store,
        pair: record,
        endpoints,
        method,
        onProgress: (p) => {
          if (!stopping && p.regionsDone >= p.regionsTotal / 2) stopping = writer.stop();
        },
      });
      await (stopping ?? writer.stop());
      const settled = first.pendingRegions > 0 ? await runSync({ store, pair: await store.require(name), endpoints, method: 'auto' }) : first;
      expect(settled.pendingRegions).toBe(0);
      expect(first.method).toBe(method);
      expect(await sameBytes(endpoints.primary.path, endpoints.secondary.path, sizeBytes)).toBe(true);
      expect((await endpoints.primary.agent.snapshotList(endpoints.primary.path)).snapshots.filter((s) => s.label.startsWith('tidemark-sync'))).toEqual([]);
      if (method === 'realized') {
        // Secondary-only regions are reclaimed, unless the writer wrote one before the pass read the maps.
        expect(first.regionsReclaimed).toBeGreaterThanOrEqual([1, 2, 3].filter((r) => !writer.written.has(r)).length);
        expect(first.regionsReclaimed).toBeLessThanOrEqual(3);
      }
    });
  }

  it('the CLI pairs a local primary with a host:/path secondary, syncs, verifies and deletes', async () => {
    const userHome = join(dir, 'user-home');
    await mkdir(join(userHome, '.ssh'), { recursive: true });
    await writeFile(join(userHome, '.ssh', 'config'), await readFile(sshd.sshConfigPath, 'utf8'));
    const env = { HOME: userHome, SSH_AUTH_SOCK: '', TIDEMARK_HOME: join(dir, 'cli-home') };
    const primary = join(dir, 'cli-primary.img');
    const secondary = join(dir, 'cli-secondary.img');
    await writeFile(primary, randomRegion(baseSeed + 9, 8 * 2 ** 20));
    await writeFile(secondary, Buffer.alloc(8 * 2 ** 20));
    const volref = `${sshd.alias}:${secondary}`;
    const created = tidemark(['--accept-new-host-key', 'pair', 'create', 'field', '--primary', primary, '--secondary', volref, '--region-size', '256KiB'], env);
    expect(created.status, created.stderr).toBe(0);
    const synced = tidemark(['--json', 'sync', 'field'], env);
    expect(synced.status, synced.stderr).toBe(0);
    expect(JSON.parse(synced.stdout)).toMatchObject({ method: 'tardy', regions: 32, regionsTransferred: 32, bytesTransferred: 8 * 2 ** 20 });
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);
    expect(tidemark(['verify', 'field'], env).status).toBe(0);
    const shown = JSON.parse(tidemark(['--json', 'pair', 'show', 'field'], env).stdout) as { secondary: { reachable: boolean; member: { role: string } } };
    expect(shown.secondary).toMatchObject({ reachable: true, member: { role: 'secondary' } });
    expect(tidemark(['pair', 'delete', 'field'], env).status).toBe(0);
  });
});
