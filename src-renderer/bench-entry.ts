// Heatmap benchmark page (bench/heatmap.ts drives it in Chromium): renders a 4M-region
// bitmap with 10 % set into a 1600×400 canvas and reports per-frame times.
import { cellDensities, heatmapLayout } from './heatmap/density';
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

declare global {
  interface Window {
    runHeatmapBench: (regionCount: number, setFraction: number, frames: number, seed: number) => { frameMs: number[]; setCount: number };
  }
}

window.runHeatmapBench = (regionCount, setFraction, frames, seed) => {
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
  const frameMs: number[] = [];
  for (let f = 0; f < frames; f++) {
    const started = performance.now();
    const { density, cells } = cellDensities({ regionCount, words }, layout, 0, regionCount);
    paintDensities(context, layout, density, cells, lightPalette);
    context.getImageData(0, 0, 1, 1); // force the paint to complete before timing stops
    frameMs.push(performance.now() - started);
  }
  return { frameMs, setCount };
};
