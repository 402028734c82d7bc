// image-export: `image export` of a half-sparse volume (1 MiB regions alternately random and
// holes) against `cp --sparse=always --reflink=never` of the same file into the same file
// system, page cache warm for both. An export ends synced ("safe to remove the media"), so the
// peer is cp followed by `sync` of its copy; plain cp is recorded as well, informational.

import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalAgent } from '../src-engine/agent';
import { exportImage } from '../src-engine/image';
import type { EndpointResolver } from '../src-engine/replication';
import { GiB, MiB, scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { mulberry32, randomBuffer } from './random';
import { makeFigure } from './report';
import { removeTempDir, withTempDir } from './temp';
import { minMs, runCommand } from './timing';

const volumeBytesBase = 2 * GiB;
const regionBytes = 1 * MiB;
const rounds = 3;

type Contender = 'export' | 'cpSync' | 'cp';

function resolverFor(agent: LocalAgent): EndpointResolver {
  return { resolve: async (volref) => ({ volref, agent, path: volref, where: 'this machine' }) };
}

/** A registered volume with every even region random (each different) and every odd one a hole. */
async function makeVolume(agent: LocalAgent, path: string, volumeBytes: number, seed: number): Promise<number> {
  await agent.volumeCreate(path, volumeBytes, regionBytes);
  const chunk = randomBuffer(mulberry32(seed), 16 * MiB);
  const regionCount = volumeBytes / regionBytes;
  let stored = 0;
  for (let r = 0; r < regionCount; r += 2) {
    const data = Buffer.from(chunk.subarray(((r / 2) % 16) * MiB, ((r / 2) % 16) * MiB + regionBytes));
    data.writeUInt32LE(r, 0); // no two regions alike
    await agent.writeRegion(path, r, data);
    stored += 1;
  }
  await agent.flush(path);
  return stored;
}

/** Times one contender's work alone: the page cache is written back before, its output removed after. */
async function timed(work: () => Promise<unknown>, cleanUp: () => Promise<void>): Promise<number> {
  await runCommand('sync', []);
  const startMs = performance.now();
  await work();
  const elapsedMs = performance.now() - startMs;
  await cleanUp();
  return elapsedMs;
}

/** Every contender once per round, interleaved, `rounds` times. */
async function measure(context: BenchContext, dir: string, agent: LocalAgent, volumePath: string): Promise<Record<Contender, number[]>> {
  const resolver = resolverFor(agent);
  const samplesMs: Record<Contender, number[]> = { export: [], cpSync: [], cp: [] };
  const copy = join(dir, 'copy.img');
  const imageDir = join(dir, 'image');
  const removeCopy = () => removeTempDir(copy);
  for (let round = 1; round <= rounds; round++) {
    samplesMs.export.push(
      await timed(
        async () => {
          const summary = await exportImage({ source: volumePath, dir: imageDir, resolver });
          if (summary.storedRegions * 2 !== summary.regions)
            throw new Error(`image-export: ${summary.storedRegions} of ${summary.regions} regions stored, expected half`);
        },
        () => removeTempDir(imageDir),
      ),
    );
    samplesMs.cpSync.push(
      await timed(async () => {
        await runCommand('cp', ['--sparse=always', '--reflink=never', volumePath, copy]);
        await runCommand('sync', [copy]);
      }, removeCopy),
    );
    samplesMs.cp.push(await timed(() => runCommand('cp', ['--sparse=always', '--reflink=never', volumePath, copy]), removeCopy));
    context.log(
      `image-export: round ${round}: export ${Math.round(samplesMs.export.at(-1)!)} ms, cp+sync ${Math.round(samplesMs.cpSync.at(-1)!)} ms, cp ${Math.round(samplesMs.cp.at(-1)!)} ms`,
    );
  }
  return samplesMs;
}

function record(context: BenchContext, volumeBytes: number, samplesMs: Record<Contender, number[]>): void {
  const best = (c: Contender) => minMs(samplesMs[c]);
  const rate = (c: Contender) => volumeBytes / 2 / MiB / (best(c) / 1000);
  const details = {
    seed: context.seed,
    volumeBytes,
    regionBytes,
    storedBytes: volumeBytes / 2,
    rounds,
    cpus: availableParallelism(),
    exportMs: samplesMs.export,
    cpSyncMs: samplesMs.cpSync,
    cpMs: samplesMs.cp,
  };
  context.record(
    makeFigure({
      name: 'image-export-vs-cp',
      tidemark: { value: rate('export'), unit: 'MiB/s' },
      peer: { name: 'cp+sync', value: rate('cpSync'), unit: 'MiB/s' },
      ratio: best('cpSync') / best('export'),
      goal: 0.8,
      details: { ...details, note: 'ratio = cp --sparse=always --reflink=never + sync of the copy time / export time; rates over the stored half' },
    }),
  );
  context.record(
    makeFigure({
      name: 'image-export-vs-plain-cp',
      tidemark: { value: rate('export'), unit: 'MiB/s' },
      peer: { name: 'cp', value: rate('cp'), unit: 'MiB/s' },
      ratio: best('cp') / best('export'),
      goal: 0.8,
      details: { ...details, note: 'informational: cp leaves its copy in the page cache, unsynced; export syncs every 64 MiB' },
    }),
  );
}

async function run(context: BenchContext): Promise<void> {
  const volumeBytes = scaledCount(volumeBytesBase, context.sizeFactor, 2 * regionBytes);
  await withTempDir('image-export', async (dir) => {
    const agent = new LocalAgent(join(dir, 'home'), { purpose: 'image-export benchmark' });
    try {
      const volumePath = join(dir, 'volume.img');
      context.log(`image-export: writing a ${(volumeBytes / GiB).toFixed(2)} GiB half-sparse volume (seed ${context.seed}) in ${dir}`);
      const startMs = performance.now();
      await makeVolume(agent, volumePath, volumeBytes, context.seed);
      context.log(`image-export: written in ${Math.round(performance.now() - startMs)} ms; warming the page cache (cat > /dev/null)`);
      await runCommand('cat', [volumePath]);
      await runCommand('sync', []);
      context.log(`image-export: timing export and cp, best of ${rounds}`);
      record(context, volumeBytes, await measure(context, dir, agent, volumePath));
    } finally {
      await agent.dispose();
    }
  });
}

export const imageExportBenchmark: Benchmark = {
  name: 'image-export',
  description: 'image export of a 2 GiB half-sparse volume vs cp --sparse=always --reflink=never (+ sync), page cache warm',
  run,
};
