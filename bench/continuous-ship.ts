// continuous-ship: shipping a backlog of tracked changes local→local (`replicate --once`)
// against `cp` + `sync` of the same changed bytes (a file holding exactly those regions) into
// the same file system, page cache warm for both. Shipping ends with the secondary flushed,
// hence sync on the peer's copy. The default ships a catch-up under a protective snapshot of
// the secondary (copy-on-write of every first write to a region); without it is recorded too.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalAgent } from '../src-engine/agent';
import { createPair, PairStore, replicatePair, runSync, type EndpointResolver, type PairEndpoints, type PairRecord } from '../src-engine/replication';
import { GiB, MiB, scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { mulberry32, randomBuffer, randomIndexBelow } from './random';
import { makeFigure } from './report';
import { removeTempDir, withTempDir } from './temp';
import { runCommand } from './timing';

const volumeBytesBase = 1 * GiB;
const regionBytes = 1 * MiB;
const changedFraction = 0.25;

function resolverFor(agent: LocalAgent): EndpointResolver {
  return { resolve: async (volref) => ({ volref, agent, path: volref, where: 'this machine' }) };
}

/** Writes `count` distinct seeded regions through the agent (tracked); returns their bytes, concatenated. */
async function writeChanges(agent: LocalAgent, path: string, regionCount: number, count: number, seed: number): Promise<Buffer> {
  const random = mulberry32(seed);
  const regions = new Set<number>();
  while (regions.size < count) regions.add(randomIndexBelow(random, regionCount));
  const chunk = randomBuffer(random, 16 * MiB);
  const written: Buffer[] = [];
  let i = 0;
  for (const r of regions) {
    const data = Buffer.from(chunk.subarray((i % 16) * MiB, (i % 16) * MiB + regionBytes));
    data.writeUInt32LE(r, 0);
    await agent.writeRegion(path, r, data);
    written.push(data);
    i += 1;
  }
  return Buffer.concat(written);
}

async function shipMs(store: PairStore, pair: PairRecord, endpoints: PairEndpoints, protect: boolean, expected: number): Promise<number> {
  const startMs = performance.now();
  const summary = await replicatePair({ store, pair, endpoints, once: true, protect });
  const elapsedMs = performance.now() - startMs;
  if (summary.regionsTransferred !== expected) throw new Error(`continuous-ship: shipped ${summary.regionsTransferred} regions, expected ${expected}`);
  return elapsedMs;
}

async function cpMs(dir: string, changed: Buffer): Promise<number> {
  const source = join(dir, 'changed.bin');
  const copy = join(dir, 'changed-copy.bin');
  await writeFile(source, changed);
  await runCommand('cat', [source]);
  const startMs = performance.now();
  await runCommand('cp', ['--reflink=never', source, copy]);
  await runCommand('sync', [copy]);
  const elapsedMs = performance.now() - startMs;
  await removeTempDir(copy);
  return elapsedMs;
}

async function run(context: BenchContext): Promise<void> {
  const volumeBytes = scaledCount(volumeBytesBase, context.sizeFactor, regionBytes);
  const regionCount = volumeBytes / regionBytes;
  const changedCount = Math.max(1, Math.round(regionCount * changedFraction));
  context.log(`continuous-ship: ${(volumeBytes / GiB).toFixed(2)} GiB pair, ${changedCount} changed regions of 1 MiB (seed ${context.seed})`);
  await withTempDir('continuous-ship', async (dir) => {
    const agent = new LocalAgent(join(dir, 'home'), { purpose: 'continuous-ship benchmark' });
    try {
      const [primary, secondary] = [join(dir, 'primary.img'), join(dir, 'secondary.img')];
      await agent.volumeCreate(primary, volumeBytes, regionBytes);
      await agent.volumeCreate(secondary, volumeBytes, regionBytes);
      const store = new PairStore(join(dir, 'home'));
      const pair = await createPair(store, resolverFor(agent), { name: 'bench', primary, secondary });
      const endpoints: PairEndpoints = {
        primary: { volref: primary, agent, path: primary, where: 'this machine' },
        secondary: { volref: secondary, agent, path: secondary, where: 'this machine' },
      };
      await runSync({ store, pair, endpoints, method: 'auto' });
      const synced = await store.require('bench');
      const timings: Record<'protected' | 'unprotected', number> = { protected: 0, unprotected: 0 };
      let changed: Buffer = Buffer.alloc(0);
      for (const [round, mode] of (['protected', 'unprotected'] as const).entries()) {
        changed = await writeChanges(agent, primary, regionCount, changedCount, context.seed + round);
        await agent.flush(primary);
        await runCommand('sync', []);
        timings[mode] = await shipMs(store, synced, endpoints, mode === 'protected', changedCount);
        context.log(`continuous-ship: ${mode}: ${Math.round(timings[mode])} ms`);
      }
      const peerMs = await cpMs(dir, changed);
      context.log(`continuous-ship: cp+sync of the same ${changedCount} MiB: ${Math.round(peerMs)} ms`);
      const rate = (ms: number) => changedCount / (ms / 1000);
      const details = {
        seed: context.seed,
        volumeBytes,
        regionBytes,
        changedRegions: changedCount,
        shipProtectedMs: timings.protected,
        shipMs: timings.unprotected,
        cpSyncMs: peerMs,
      };
      context.record(
        makeFigure({
          name: 'continuous-ship-vs-cp',
          tidemark: { value: rate(timings.protected), unit: 'MiB/s' },
          peer: { name: 'cp+sync', value: rate(peerMs), unit: 'MiB/s' },
          ratio: peerMs / timings.protected,
          goal: 0.7,
          details: { ...details, note: 'a catch-up under the protective snapshot (the default)' },
        }),
      );
      context.record(
        makeFigure({
          name: 'continuous-ship-unprotected-vs-cp',
          tidemark: { value: rate(timings.unprotected), unit: 'MiB/s' },
          peer: { name: 'cp+sync', value: rate(peerMs), unit: 'MiB/s' },
          ratio: peerMs / timings.unprotected,
          goal: 0.7,
          details: { ...details, note: 'replicate --no-protect: no copy-on-write on the secondary' },
        }),
      );
    } finally {
      await agent.dispose();
    }
  });
}

export const continuousShipBenchmark: Benchmark = {
  name: 'continuous-ship',
  description: 'shipping a 25 % backlog local→local (replicate --once) vs cp+sync of the same changed bytes',
  run,
};
