// Paints cell densities into a canvas through one ImageData: a colour ramp from "in sync"
// to "out of sync", precomputed per density level.

import type { HeatmapLayout } from './density';

export interface Palette {
  readonly empty: [number, number, number];
  readonly full: [number, number, number];
  readonly outside: [number, number, number];
}

export const lightPalette: Palette = { empty: [232, 236, 241], full: [211, 47, 47], outside: [255, 255, 255] };
export const darkPalette: Palette = { empty: [38, 44, 52], full: [255, 112, 67], outside: [18, 18, 18] };

function ramp(palette: Palette): Uint32Array {
  // ABGR words for little-endian ImageData.
  const table = new Uint32Array(256);
  for (let d = 0; d < 256; d++) {
    // Any set region is clearly visible: start the ramp at 35 % intensity.
    const t = d === 0 ? 0 : 0.35 + (0.65 * d) / 255;
    const [r, g, b] = palette.empty.map((e, i) => Math.round(e + (palette.full[i]! - e) * t)) as [number, number, number];
    table[d] = (255 << 24) | (b << 16) | (g << 8) | r;
  }
  return table;
}

const ramps = new WeakMap<Palette, Uint32Array>();
const images = new WeakMap<CanvasRenderingContext2D, ImageData>();

/** One ImageData per canvas, reallocated only when the canvas is resized. */
function imageFor(context: CanvasRenderingContext2D): ImageData {
  const { width, height } = context.canvas;
  let image = images.get(context);
  if (!image || image.width !== width || image.height !== height) {
    image = context.createImageData(width, height);
    images.set(context, image);
  }
  return image;
}

export function paintDensities(context: CanvasRenderingContext2D, layout: HeatmapLayout, density: Uint8Array, cells: number, palette: Palette): void {
  const width = context.canvas.width;
  const height = context.canvas.height;
  let table = ramps.get(palette);
  if (!table) {
    table = ramp(palette);
    ramps.set(palette, table);
  }
  const image = imageFor(context);
  const pixels = new Uint32Array(image.data.buffer);
  const [or, og, ob] = palette.outside;
  pixels.fill((255 << 24) | (ob << 16) | (og << 8) | or);
  const cell = layout.cellPx;
  if (cell === 1 && layout.cols === width) {
    // One pixel per cell, row-major like the canvas: a straight table lookup per pixel.
    for (let c = 0; c < cells; c++) pixels[c] = table[density[c]!]!;
    context.putImageData(image, 0, 0);
    return;
  }
  const gap = cell >= 4 ? 1 : 0; // a grid line between big cells
  for (let c = 0; c < cells; c++) {
    const x0 = (c % layout.cols) * cell;
    const y0 = Math.floor(c / layout.cols) * cell;
    const colour = table[density[c]!]!;
    for (let y = y0; y < Math.min(height, y0 + cell - gap); y++) {
      const row = y * width;
      for (let x = x0; x < Math.min(width, x0 + cell - gap); x++) pixels[row + x] = colour;
    }
  }
  context.putImageData(image, 0, 0);
}
