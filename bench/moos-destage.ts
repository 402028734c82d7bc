// moos-destage: metadata writes (MOOS destages) for sequential host writes with predict window N,
// against the bound a window of N allows: one destage per N + 1 sequential writes.

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createBitmapFile, MoosPredictor, type PersistentBitmap } from '../src-engine/bitmap';
import { scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { makeFigure } from './report';
import { withTempDir } from './temp';

const predictWindows = [0, 4, 16] as const;
const regionCountBase = 100_000;
const writeCountBase = 10_000;

interface WriteRun {
  readonly destages: number;
  readonly segmentWrites: number;
  readonly elapsedMs: number;
}

/** Writes regions 0..writeCount-1 in order, each awaited as a host write would be. */
async function writeSequentially(bitmap: PersistentBitmap, predictRegions: number, writeCount: number): Promise<WriteRun> {
  const predictor = new MoosPredictor(bitmap, predictRegions);
  const destagesBefore = bitmap.stats.destages;
  const segmentWritesBefore = bitmap.stats.segmentWrites;
  const startMs = performance.now();
  for (let region = 0; region < writeCount; region++) await predictor.recordWrite(region, region);
  const elapsedMs = performance.now() - startMs;
  return { destages: bitmap.stats.destages - destagesBefore, segmentWrites: bitmap.stats.segmentWrites - segmentWritesBefore, elapsedMs };
}

async function measureWindow(predictRegions: number, regionCount: number, writeCount: number): Promise<WriteRun> {
  return withTempDir('moos', async (dir) => {
    const bitmap = await createBitmapFile(join(dir, 'moos.bitmap'), regionCount, 'moos');
    try {
      return await writeSequentially(bitmap, predictRegions, writeCount);
    } finally {
      await bitmap.close();
    }
  });
}

async function run(context: BenchContext): Promise<void> {
  const writeCount = scaledCount(writeCountBase, context.sizeFactor);
  const regionCount = Math.max(writeCount, scaledCount(regionCountBase, context.sizeFactor));
  context.log(`moos-destage: ${writeCount} sequential writes on a ${regionCount}-region MOOS bitmap (real file, fdatasync), N in ${predictWindows.join(', ')}`);
  for (const predictRegions of predictWindows) {
    const result = await measureWindow(predictRegions, regionCount, writeCount);
    // Destages are whole: a window of N + 1 regions needs ceil(writes / (N + 1)) of them.
    const boundExact = writeCount / (predictRegions + 1);
    const boundDestages = Math.ceil(boundExact);
    const seconds = result.elapsedMs / 1000;
    context.record(
      makeFigure({
        name: `moos-destage-N${predictRegions}`,
        tidemark: { value: result.destages, unit: 'destages' },
        peer: { name: 'bound', value: boundDestages, unit: 'destages' },
        ratio: result.destages / boundDestages,
        goal: 1,
        goalRule: 'at-most',
        details: {
          predictRegions,
          writeCount,
          regionCount,
          boundExact,
          segmentWrites: result.segmentWrites,
          elapsedMs: result.elapsedMs,
          destagesPerSecond: result.destages / seconds,
          writesPerSecond: writeCount / seconds,
        },
      }),
    );
  }
}

export const moosDestageBenchmark: Benchmark = {
  name: 'moos-destage',
  description: 'MOOS destages for 10,000 sequential writes with predict window N = 0, 4, 16 vs the bound writes / (N + 1)',
  run,
};
