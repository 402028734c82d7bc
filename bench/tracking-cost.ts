// tracking-cost: what write tracking (seed 003) costs a host write through the agent. 10,000
// sequential 4 KiB writes to a primary with 4 KiB regions and --predict 3: MOOS metadata
// writes (destages; each is an fdatasync the write waits for) against the bound
// writes / (N + 1) = 2,500; and the write latency p50/p99 with tracking against the same
// writes to an unpaired volume (no tracker) in the same run.

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalAgent } from '../src-engine/agent';
import { createPair, PairStore, type EndpointResolver } from '../src-engine/replication';
import { KiB, MiB, scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { makeFigure } from './report';
import { withTempDir } from './temp';
import { percentile } from './timing';

const regionBytes = 4 * KiB;
const writeCountBase = 10_000;
const predictRegions = 3;

function resolverFor(agent: LocalAgent): EndpointResolver {
  return { resolve: async (volref) => ({ volref, agent, path: volref, where: 'this machine' }) };
}

/** Latencies (ms) of `writeCount` sequential one-region writes through the agent's open volume. */
async function sequentialWrites(agent: LocalAgent, path: string, writeCount: number): Promise<number[]> {
  const { volume } = await agent.openedVolume(path);
  const data = Buffer.alloc(regionBytes, 0x5a);
  const latenciesMs: number[] = [];
  for (let r = 0; r < writeCount; r++) {
    const startMs = performance.now();
    await volume.write(r * regionBytes, data);
    latenciesMs.push(performance.now() - startMs);
  }
  return latenciesMs;
}

async function run(context: BenchContext): Promise<void> {
  const writeCount = scaledCount(writeCountBase, context.sizeFactor);
  const volumeBytes = Math.max(64 * MiB, writeCount * regionBytes);
  context.log(`tracking-cost: ${writeCount} sequential 4 KiB writes, regions of 4 KiB, predict ${predictRegions}, with and without tracking`);
  await withTempDir('tracking', async (dir) => {
    const agent = new LocalAgent(join(dir, 'home'));
    try {
      const [primary, secondary, plain] = ['primary.img', 'secondary.img', 'plain.img'].map((name) => join(dir, name)) as [string, string, string];
      for (const path of [primary, secondary, plain]) await agent.volumeCreate(path, volumeBytes, regionBytes);
      const pair = await createPair(new PairStore(join(dir, 'home')), resolverFor(agent), { name: 'bench', primary, secondary, predictRegions });
      const without = await sequentialWrites(agent, plain, writeCount);
      const destagesBefore = (await agent.trackingState(primary, pair.pairId)).moosDestages;
      const withTracking = await sequentialWrites(agent, primary, writeCount);
      const destages = (await agent.trackingState(primary, pair.pairId)).moosDestages - destagesBefore;
      const bound = Math.ceil(writeCount / (predictRegions + 1));
      context.record(
        makeFigure({
          name: 'tracking-moos-writes',
          tidemark: { value: destages, unit: 'MOOS writes' },
          peer: { name: `bound writes/(N+1), N=${predictRegions}`, value: bound, unit: 'MOOS writes' },
          ratio: destages / bound,
          goal: 1,
          goalRule: 'at-most',
          details: { writeCount, predictRegions, regionBytes },
        }),
      );
      const [p50With, p99With, p50Without, p99Without] = [
        percentile(withTracking, 50),
        percentile(withTracking, 99),
        percentile(without, 50),
        percentile(without, 99),
      ];
      context.record(
        makeFigure({
          name: 'tracking-write-p99',
          tidemark: { value: p99With, unit: 'ms p99 tracked' },
          peer: { name: 'untracked volume', value: p99Without, unit: 'ms p99' },
          ratio: p99With / p99Without,
          // Mostly informational: one tracked write in N + 1 waits for a MOOS fdatasync, an untracked
          // one never does, so p99 compares an fdatasync with a page-cache write (goal: within 100×).
          goal: 100,
          goalRule: 'at-most',
          details: { p50With, p50Without, meanWith: mean(withTracking), meanWithout: mean(without), note: 'informational' },
        }),
      );
    } finally {
      await agent.dispose();
    }
  });
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);

export const trackingCostBenchmark: Benchmark = {
  name: 'tracking-cost',
  description: 'MOOS writes per 10,000 sequential 4 KiB writes with predict 3 vs writes/(N+1), and write p99 with vs without tracking',
  run,
};
