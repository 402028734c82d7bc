// Heatmap benchmark page (bench/heatmap.ts drives it in Chromium): renders a 4M-region
// bitmap with 10 % set into a 1600×400 canvas and reports per-frame times.
import { cellDensities, heatmapLayout } from './heatmap/density';
import { DensityClient } from './heatmap/density-client';
import { lightPalette, paintDensities } from './heatmap/paint';

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface HeatmapBenchResult {
  /** UI-thread time per frame: handing the words to the worker, then painting its densities. */
  readonly uiMs: number[];
  /** Worker time per full density computation. */
  readonly densityMs: number[];
  /** Request to painted frame, end to end (worker round trip + paint). */
  readonly updateMs: number[];
  /** Density computed on the UI thread instead (the design the worker replaced). */
  readonly inlineMs: number[];
  readonly setCount: number;
}

declare global {
  interface Window {
    runHeatmapBench: (regionCount: number, setFraction: number, frames: number, seed: number) => Promise<HeatmapBenchResult>;
  }
}

window.runHeatmapBench = async (regionCount, setFraction, frames, seed) => {
  const random = mulberry32(seed);
  const words = new Uint32Array(Math.ceil(regionCount / 32));
  let setCount = 0;
  for (let i = 0; i < regionCount; i++) {
    if (random() < setFraction) {
      words[i >>> 5]! |= 1 << (i & 31);
      setCount += 1;
    }
  }
  const canvas = document.getElementById('bench') as HTMLCanvasElement;
  const context = canvas.getContext('2d')!;
  const layout = heatmapLayout(regionCount, canvas.width, canvas.height);
  const client = new DensityClient();
  const result = { uiMs: [] as number[], densityMs: [] as number[], updateMs: [] as number[], inlineMs: [] as number[], setCount };
  for (let f = 0; f < frames; f++) {
    const started = performance.now();
    const pending = client.compute({ bits: { regionCount, words }, layout, viewStart: 0, viewRegions: regionCount });
    const postMs = performance.now() - started;
    const densities = await pending;
    if (!densities) throw new Error('a benchmark request was superseded');
    const paintStarted = performance.now();
    paintDensities(context, layout, densities.density, densities.cells, lightPalette);
    context.getImageData(0, 0, 1, 1); // force the paint to complete before timing stops
    const done = performance.now();
    result.uiMs.push(postMs + (done - paintStarted));
    result.densityMs.push(densities.computeMs);
    result.updateMs.push(done - started);
    const inlineStarted = performance.now();
    cellDensities({ regionCount, words }, layout, 0, regionCount);
    result.inlineMs.push(performance.now() - inlineStarted);
  }
  client.dispose();
  return result;
};
