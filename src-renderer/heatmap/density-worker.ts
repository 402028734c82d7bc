// Computes heatmap densities off the UI thread: the renderer posts the words and the view,
// gets back one density byte per cell (transferred, not copied).
import { cellDensities, type HeatmapLayout } from './density';

export interface DensityRequest {
  readonly id: number;
  readonly words: Uint32Array;
  readonly regionCount: number;
  readonly layout: HeatmapLayout;
  readonly viewStart: number;
  readonly viewRegions: number;
}

export interface DensityResult {
  readonly id: number;
  readonly density: Uint8Array;
  readonly cells: number;
  readonly computeMs: number;
}

self.onmessage = (message: MessageEvent<DensityRequest>) => {
  const { id, words, regionCount, layout, viewStart, viewRegions } = message.data;
  const started = performance.now();
  const { density, cells } = cellDensities({ regionCount, words }, layout, viewStart, viewRegions);
  const result: DensityResult = { id, density, cells, computeMs: performance.now() - started };
  (self as unknown as Worker).postMessage(result, [density.buffer]);
};
