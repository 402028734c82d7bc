// failback: easy failback (seed 004) after an outage in which 1 % of a 4 GiB pair's regions
// were written on the new primary, with a few regions left unshipped on the old primary when it
// was lost. Compared in the same run with what the alternatives move and take:
//  - a full resync moves every region (bytes ratio: failback / full; expect ≈ 1 % + unshipped);
//  - a signature resync of the same state (the old primary's image copied aside before the
//    failback, then `sync --method signature` from the new primary into it): the time ratio.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { LocalAgent, type AgentApi } from '../src-engine/agent';
import { TidemarkError } from '../src-engine/errors';
import { createPair, failbackPair, failoverPair, PairStore, replicatePair, runSync, type EndpointResolver } from '../src-engine/replication';
import { GiB, MiB, scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { mulberry32, randomBuffer, randomIndexBelow } from './random';
import { makeFigure } from './report';
import { withTempDir } from './temp';

const volumeBytesBase = 4 * GiB;
const regionBytes = 1 * MiB;
const changedFraction = 0.01;
const unshippedFraction = 0.002;
const seededFraction = 0.1;

async function writeRegions(agent: AgentApi, path: string, regions: Iterable<number>, seed: number): Promise<number> {
  const random = mulberry32(seed);
  const chunk = randomBuffer(random, 8 * MiB);
  let count = 0;
  for (const r of regions) {
    const data = Buffer.from(chunk.subarray((count % 8) * MiB, (count % 8) * MiB + regionBytes));
    data.writeUInt32LE(r, 0);
    await agent.writeRegion(path, r, data);
    count += 1;
  }
  return count;
}

function pick(seed: number, regionCount: number, count: number): Set<number> {
  const random = mulberry32(seed);
  const set = new Set<number>();
  while (set.size < count) set.add(randomIndexBelow(random, regionCount));
  return set;
}

async function run(context: BenchContext): Promise<void> {
  const volumeBytes = scaledCount(volumeBytesBase, context.sizeFactor, regionBytes);
  const regionCount = volumeBytes / regionBytes;
  context.log(
    `failback: ${(volumeBytes / GiB).toFixed(2)} GiB pair, ${Math.round(regionCount * changedFraction)} regions written in the outage (seed ${context.seed})`,
  );
  await withTempDir('failback', async (dir) => {
    const siteA = { path: join(dir, 'a.img'), agent: new LocalAgent(join(dir, 'site-a')) as AgentApi };
    const siteB = { path: join(dir, 'b.img'), agent: new LocalAgent(join(dir, 'site-b')) as AgentApi };
    const copy = join(dir, 'a-copy.img');
    const agents = [siteA.agent, siteB.agent];
    const resolver: EndpointResolver = {
      resolve: async (volref) => {
        const site = volref === siteA.path ? siteA : siteB; // a-copy.img lives on site B's agent too
        return { volref, agent: site.agent, path: volref, where: site === siteA ? 'site A' : 'site B' };
      },
    };
    try {
      await siteA.agent.volumeCreate(siteA.path, volumeBytes, regionBytes);
      await siteB.agent.volumeCreate(siteB.path, volumeBytes, regionBytes);
      await writeRegions(siteA.agent, siteA.path, pick(context.seed, regionCount, Math.round(regionCount * seededFraction)), context.seed);
      const store = new PairStore(join(dir, 'orchestrator'));
      const pair = await createPair(store, resolver, { name: 'bench', primary: siteA.path, secondary: siteB.path, regionBytes });
      const endpoints = { primary: await resolver.resolve(siteA.path), secondary: await resolver.resolve(siteB.path) };
      await runSync({ store, pair, endpoints, method: 'auto' });
      await replicatePair({ store, pair: await store.require('bench'), endpoints, once: true });
      const unshipped = await writeRegions(
        siteA.agent,
        siteA.path,
        pick(context.seed + 1, regionCount, Math.max(1, Math.round(regionCount * unshippedFraction))),
        context.seed + 1,
      );

      // The outage: site A is lost; B is promoted and written.
      await (siteA.agent as LocalAgent).dispose();
      const lost = new Proxy({} as AgentApi, { get: () => () => Promise.reject(new TidemarkError('DISCONNECTED', 'site A is down', '')) });
      siteA.agent = lost;
      await failoverPair(store, resolver, 'bench', { force: true });
      const changed = await writeRegions(
        siteB.agent,
        siteB.path,
        pick(context.seed + 2, regionCount, Math.round(regionCount * changedFraction)),
        context.seed + 2,
      );
      siteA.agent = new LocalAgent(join(dir, 'site-a'));
      agents.push(siteA.agent);
      // The old primary's image, copied aside for the signature resync peer (cp keeps it sparse).
      await promisify(execFile)('cp', ['--sparse=always', siteA.path, copy]);

      const failbackStartMs = performance.now();
      const failback = await failbackPair(store, resolver, 'bench');
      const failbackMs = performance.now() - failbackStartMs;
      context.log(`failback: ${failback.resyncRegions} regions (${changed} written on B, ${unshipped} unshipped on A) copied in ${Math.round(failbackMs)} ms`);

      await siteB.agent.volumeAdopt(copy, regionBytes);
      const peerPair = await createPair(store, resolver, { name: 'bench-signature', primary: siteB.path, secondary: copy, regionBytes });
      const peerEndpoints = { primary: await resolver.resolve(siteB.path), secondary: { volref: copy, agent: siteB.agent, path: copy, where: 'site B' } };
      const signatureStartMs = performance.now();
      const signature = await runSync({ store, pair: peerPair, endpoints: peerEndpoints, method: 'signature' });
      const signatureMs = performance.now() - signatureStartMs;
      context.log(`failback: signature resync of the same state: ${signature.regionsTransferred} regions in ${Math.round(signatureMs)} ms`);

      const details = {
        seed: context.seed,
        volumeBytes,
        regionBytes,
        writtenOnNewPrimary: changed,
        unshippedOnOldPrimary: unshipped,
        resyncRegions: failback.resyncRegions,
        failbackMs,
        signatureMs,
      };
      context.record(
        makeFigure({
          name: 'failback-bytes-vs-full-resync',
          tidemark: { value: failback.bytesTransferred / MiB, unit: 'MiB' },
          peer: { name: 'full resync', value: volumeBytes / MiB, unit: 'MiB' },
          ratio: failback.bytesTransferred / volumeBytes,
          goal: changedFraction + unshippedFraction + 0.002,
          goalRule: 'at-most',
          details: { ...details, note: 'bytes moved: exactly failback ∪ unshipped regions' },
        }),
      );
      context.record(
        makeFigure({
          name: 'failback-time-vs-signature-resync',
          tidemark: { value: failbackMs, unit: 'ms' },
          peer: { name: 'sync --method signature', value: signatureMs, unit: 'ms' },
          ratio: failbackMs / signatureMs,
          goal: 1,
          goalRule: 'at-most',
          details: { ...details, signatureRegionsTransferred: signature.regionsTransferred },
        }),
      );
    } finally {
      for (const agent of agents) await agent.dispose().catch(() => undefined);
    }
  });
}

export const failbackBenchmark: Benchmark = {
  name: 'failback',
  description: 'easy failback after 1 % of a 4 GiB pair was written in an outage: bytes vs a full resync, time vs a signature resync',
  run,
};
