// signature: region signatures of a page-cached file through SignaturePool (xxh3-128, sha256)
// against md5sum / sha256sum over the same file, and 2 pool workers against 1.

import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { signRegions, SignaturePool, type SignatureMap } from '../src-engine/signature';
import { GiB, MiB, scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { makeFigure } from './report';
import { withTempDir } from './temp';
import { writeTestFile, type TestFile } from './test-file';
import { measureRounds, minMs, runCommand } from './timing';

const fileBytesBase = 1 * GiB;
const regionBytes = 1 * MiB;
const rounds = 3;

interface Pools {
  readonly xxh3OneWorker: SignaturePool;
  readonly xxh3TwoWorkers: SignaturePool;
  readonly sha256OneWorker: SignaturePool;
}

type Contender = 'md5sum' | 'xxh3OneWorker' | 'xxh3TwoWorkers' | 'sha256sum' | 'sha256OneWorker';
type Samples = Record<Contender, number[]>;

async function startPools(): Promise<Pools> {
  const started = await Promise.allSettled([SignaturePool.start('xxh3-128', 1), SignaturePool.start('xxh3-128', 2), SignaturePool.start('sha256', 1)]);
  const pools = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failure = started.find((result) => result.status === 'rejected');
  if (failure || pools.length !== 3) {
    await Promise.all(pools.map((pool) => pool.dispose()));
    throw failure?.reason ?? new Error('signature pools did not start');
  }
  return { xxh3OneWorker: pools[0]!, xxh3TwoWorkers: pools[1]!, sha256OneWorker: pools[2]! };
}

async function disposePools(pools: Pools): Promise<void> {
  await Promise.all([pools.xxh3OneWorker.dispose(), pools.xxh3TwoWorkers.dispose(), pools.sha256OneWorker.dispose()]);
}

function signFile(pool: SignaturePool, file: TestFile): Promise<SignatureMap> {
  return signRegions(pool, file.regionCount, (regionIndex) => ({ path: file.path, offsetBytes: regionIndex * regionBytes, bytes: regionBytes }));
}

type SignedMaps = Partial<Record<Contender, SignatureMap>>;

/** Every region signed, and the 1- and 2-worker xxh3 pools agree byte for byte. */
function checkMaps(maps: SignedMaps, file: TestFile): void {
  for (const [contender, map] of Object.entries(maps)) {
    const signedCount = map.present.popcount();
    if (signedCount !== file.regionCount) throw new Error(`signature: ${contender} signed ${signedCount} of ${file.regionCount} regions`);
  }
  const one = maps.xxh3OneWorker;
  const two = maps.xxh3TwoWorkers;
  if (!one || !two || Buffer.compare(one.bytes, two.bytes) !== 0) throw new Error('signature: 1-worker and 2-worker xxh3-128 signatures differ');
}

/** Times md5sum, sha256sum and the three pools on the same file, interleaved, `rounds` times. */
async function measureAll(pools: Pools, file: TestFile): Promise<Samples> {
  const maps: SignedMaps = {};
  const samplesMs = await measureRounds<Contender>(rounds, {
    md5sum: () => runCommand('md5sum', [file.path]),
    xxh3OneWorker: async () => (maps.xxh3OneWorker = await signFile(pools.xxh3OneWorker, file)),
    xxh3TwoWorkers: async () => (maps.xxh3TwoWorkers = await signFile(pools.xxh3TwoWorkers, file)),
    sha256sum: () => runCommand('sha256sum', [file.path]),
    sha256OneWorker: async () => (maps.sha256OneWorker = await signFile(pools.sha256OneWorker, file)),
  });
  checkMaps(maps, file);
  return samplesMs;
}

function gibPerSecond(bytes: number, elapsedMs: number): number {
  return bytes / GiB / (elapsedMs / 1000);
}

function recordFigures(context: BenchContext, file: TestFile, samplesMs: Samples): void {
  const rate = (contender: Contender) => gibPerSecond(file.fileBytes, minMs(samplesMs[contender]));
  const common = { seed: context.seed, fileBytes: file.fileBytes, regionBytes, regionCount: file.regionCount, rounds, cpus: availableParallelism() };
  const samples = (tidemark: Contender, peer: Contender) => ({
    tidemarkBestMs: minMs(samplesMs[tidemark]),
    peerBestMs: minMs(samplesMs[peer]),
    tidemarkMs: samplesMs[tidemark],
    peerMs: samplesMs[peer],
  });
  const xxh3OneWorker = { value: rate('xxh3OneWorker'), unit: 'GiB/s' };
  context.record(
    makeFigure({
      name: 'signature-xxh3-1worker',
      tidemark: xxh3OneWorker,
      peer: { name: 'md5sum', value: rate('md5sum'), unit: 'GiB/s' },
      ratio: rate('xxh3OneWorker') / rate('md5sum'),
      goal: 4,
      details: { ...common, ...samples('xxh3OneWorker', 'md5sum'), target: 6, note: 'goal 4x md5sum, target 6x' },
    }),
  );
  context.record(
    makeFigure({
      name: 'signature-xxh3-pool',
      tidemark: { value: rate('xxh3TwoWorkers'), unit: 'GiB/s' },
      peer: { name: 'tidemark-1-worker', ...xxh3OneWorker },
      ratio: rate('xxh3TwoWorkers') / rate('xxh3OneWorker'),
      goal: 1.7,
      details: { ...common, ...samples('xxh3TwoWorkers', 'xxh3OneWorker'), workers: 2 },
    }),
  );
  context.record(
    makeFigure({
      name: 'signature-sha256-1worker',
      tidemark: { value: rate('sha256OneWorker'), unit: 'GiB/s' },
      peer: { name: 'sha256sum', value: rate('sha256sum'), unit: 'GiB/s' },
      ratio: rate('sha256OneWorker') / rate('sha256sum'),
      goal: 1,
      details: { ...common, ...samples('sha256OneWorker', 'sha256sum'), note: 'informational' },
    }),
  );
}

/** Writes the test file and reads it once, so every contender hashes from the page cache. */
async function prepareTestFile(context: BenchContext, dir: string, fileBytes: number): Promise<TestFile> {
  context.log(`signature: writing a ${(fileBytes / GiB).toFixed(2)} GiB test file (seed ${context.seed}) in ${dir}`);
  const startMs = performance.now();
  const file = await writeTestFile(join(dir, 'volume.bin'), fileBytes, regionBytes, context.seed);
  context.log(`signature: written in ${Math.round(performance.now() - startMs)} ms; warming the page cache (cat > /dev/null)`);
  await runCommand('cat', [file.path]);
  return file;
}

async function run(context: BenchContext): Promise<void> {
  const fileBytes = scaledCount(fileBytesBase, context.sizeFactor, regionBytes);
  await withTempDir('signature', async (dir) => {
    const file = await prepareTestFile(context, dir, fileBytes);
    const pools = await startPools();
    try {
      context.log(`signature: timing md5sum, sha256sum and the pools on ${file.regionCount} regions of 1 MiB, best of ${rounds}`);
      recordFigures(context, file, await measureAll(pools, file));
    } finally {
      await disposePools(pools);
    }
  });
}

export const signatureBenchmark: Benchmark = {
  name: 'signature',
  description: 'region signatures of a 1 GiB page-cached file: xxh3-128 pool vs md5sum, 2 workers vs 1, sha256 vs sha256sum',
  run,
};
