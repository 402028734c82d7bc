// Heatmaps of region maps as PNG files (docs/map-format.md "Heatmap"): a grid of cells, each
// covering an equal number of regions, tinted by the fraction of them set. Any set region
// tints its cell at least `heatmapTintMin`, so a single one is never invisible. Several maps
// are drawn together in distinct colours (a cell where several are set shows their mix).

import type { Bitset } from '../bitmap';
import { TidemarkError, fromSystemError, usageError } from '../errors';
import { writeFileDurably } from '../fsync';
import { encodePng, pngSidePxMax, type RgbImage } from './png';

export type Rgb = readonly [red: number, green: number, blue: number];

/** Cells with no set region. */
export const heatmapBackground: Rgb = [238, 238, 238];
/** Cells past the last region (the end of the last row). */
export const heatmapOutside: Rgb = [255, 255, 255];
/** How far toward its colour a cell with one set region goes; a full cell goes all the way. */
export const heatmapTintMin = 0.35;
export const heatmapWidthCellsDefault = 256;
export const heatmapHeightCellsMaxDefault = 256;
export const heatmapCellPxDefault = 2;
export const heatmapLayersMax = 8;

/** The maps issue 8 names keep one colour everywhere; other names take the palette in order. */
export const mapColours: Readonly<Record<string, Rgb>> = {
  failback: [230, 81, 0],
  current: [21, 101, 192],
  next: [46, 125, 50],
  resync: [106, 27, 154],
  oos: [198, 40, 40],
  moos: [0, 131, 143],
  'in-flight': [249, 168, 37],
};
const palette: readonly Rgb[] = [
  [230, 81, 0],
  [21, 101, 192],
  [46, 125, 50],
  [106, 27, 154],
  [198, 40, 40],
  [0, 131, 143],
  [249, 168, 37],
  [84, 110, 122],
];

export interface HeatmapLayer {
  readonly name: string;
  readonly bits: Bitset;
  /** Default: mapColours[name], else the palette colour of the layer's position. */
  readonly colour?: Rgb;
}

export interface HeatmapOptions {
  /** Cells per row (default 256). */
  readonly widthCells?: number;
  /** Rows at most (default 256); cells grow to cover more regions instead. */
  readonly heightCellsMax?: number;
  /** Pixels per cell side (default 2). */
  readonly cellPx?: number;
}

export interface HeatmapLayout {
  readonly regionCount: number;
  readonly widthCells: number;
  readonly heightCells: number;
  /** ⌈regionCount / (widthCells × heightCellsMax)⌉, at least 1. */
  readonly regionsPerCell: number;
  readonly cellPx: number;
  readonly widthPx: number;
  readonly heightPx: number;
}

export interface Heatmap extends RgbImage {
  readonly layout: HeatmapLayout;
  readonly legend: readonly { readonly name: string; readonly colour: Rgb }[];
}

function requireWithin(value: number, min: number, max: number, what: string): number {
  if (!(Number.isInteger(value) && value >= min && value <= max)) throw usageError(`heatmap ${what} ${value} is out of range`, `use ${min} to ${max}`);
  return value;
}

export function heatmapLayout(regionCount: number, options: HeatmapOptions = {}): HeatmapLayout {
  const widthCells = requireWithin(options.widthCells ?? heatmapWidthCellsDefault, 1, 4096, 'width');
  const heightCellsMax = requireWithin(options.heightCellsMax ?? heatmapHeightCellsMaxDefault, 1, 4096, 'height');
  const cellPx = requireWithin(options.cellPx ?? heatmapCellPxDefault, 1, 64, 'cell size');
  const regionsPerCell = Math.max(1, Math.ceil(regionCount / (widthCells * heightCellsMax)));
  const heightCells = Math.max(1, Math.ceil(regionCount / regionsPerCell / widthCells));
  requireWithin(widthCells * cellPx, 1, pngSidePxMax, 'width in pixels');
  requireWithin(heightCells * cellPx, 1, pngSidePxMax, 'height in pixels');
  return { regionCount, widthCells, heightCells, regionsPerCell, cellPx, widthPx: widthCells * cellPx, heightPx: heightCells * cellPx };
}

/** Per cell, row by row: the fraction of its regions set, NaN for cells past the last region. */
export function cellFractions(bits: Bitset, layout: HeatmapLayout): Float64Array {
  const fractions = new Float64Array(layout.widthCells * layout.heightCells).fill(Number.NaN);
  for (let cell = 0; cell < fractions.length; cell++) {
    const from = cell * layout.regionsPerCell;
    if (from >= bits.bitCount) break;
    const to = Math.min(from + layout.regionsPerCell, bits.bitCount);
    fractions[cell] = bits.popcount(from, to) / (to - from);
  }
  return fractions;
}

/** How far toward the map's colour a cell goes: 0 when nothing is set, at least heatmapTintMin otherwise. */
export function tintOf(fraction: number): number {
  return fraction > 0 ? heatmapTintMin + (1 - heatmapTintMin) * fraction : 0;
}

/** The background moved toward the tint-weighted mean of the layers' colours by the strongest tint. */
function cellColour(tints: Float64Array, colours: readonly Rgb[]): Rgb {
  let total = 0;
  let strongest = 0;
  for (const t of tints) {
    total += t;
    strongest = Math.max(strongest, t);
  }
  if (total === 0) return heatmapBackground;
  const rgb: [number, number, number] = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let weighted = 0;
    for (let i = 0; i < tints.length; i++) weighted += tints[i]! * colours[i]![c]!;
    const background = heatmapBackground[c]!;
    rgb[c] = Math.round(background + (weighted / total - background) * strongest);
  }
  return rgb;
}

function fillCell(image: Uint8Array, layout: HeatmapLayout, cell: number, [red, green, blue]: Rgb): void {
  const x0 = (cell % layout.widthCells) * layout.cellPx;
  const y0 = Math.floor(cell / layout.widthCells) * layout.cellPx;
  for (let y = y0; y < y0 + layout.cellPx; y++) {
    for (let at = (y * layout.widthPx + x0) * 3, end = at + layout.cellPx * 3; at < end; at += 3) {
      image[at] = red;
      image[at + 1] = green;
      image[at + 2] = blue;
    }
  }
}

function checkLayers(layers: readonly HeatmapLayer[]): void {
  if (layers.length < 1 || layers.length > heatmapLayersMax) throw usageError(`a heatmap of ${layers.length} maps`, `draw 1 to ${heatmapLayersMax} maps`);
  const counts = new Set(layers.map((l) => l.bits.bitCount));
  if (counts.size > 1)
    throw new TidemarkError('SIZE_MISMATCH', `cannot draw maps of ${[...counts].join(' and ')} regions in one heatmap`, 'draw maps of one pair together');
}

/** Each layer's own colour, else its name's, else the first palette colour no other layer has. */
function coloursFor(layers: readonly HeatmapLayer[]): Rgb[] {
  const chosen = layers.map((l) => l.colour ?? mapColours[l.name]);
  const used = new Set(chosen.filter((c) => c !== undefined).map(String));
  return chosen.map((colour) => {
    if (colour) return colour;
    const free = palette.find((c) => !used.has(String(c))) ?? palette[0]!;
    used.add(String(free));
    return free;
  });
}

/** The heatmap's pixels, its geometry and the colour of each map. */
export function renderHeatmap(layers: readonly HeatmapLayer[], options: HeatmapOptions = {}): Heatmap {
  checkLayers(layers);
  const layout = heatmapLayout(layers[0]!.bits.bitCount, options);
  const colours = coloursFor(layers);
  const fractions = layers.map((l) => cellFractions(l.bits, layout));
  const rgb = new Uint8Array(layout.widthPx * layout.heightPx * 3);
  const tints = new Float64Array(layers.length);
  for (let cell = 0; cell < layout.widthCells * layout.heightCells; cell++) {
    if (Number.isNaN(fractions[0]![cell]!)) {
      fillCell(rgb, layout, cell, heatmapOutside);
      continue;
    }
    for (let i = 0; i < layers.length; i++) tints[i] = tintOf(fractions[i]![cell]!);
    fillCell(rgb, layout, cell, cellColour(tints, colours));
  }
  return { widthPx: layout.widthPx, heightPx: layout.heightPx, rgb, layout, legend: layers.map((l, i) => ({ name: l.name, colour: colours[i]! })) };
}

/** The heatmap as PNG bytes (deterministic), with its geometry and legend. */
export function heatmapPng(layers: readonly HeatmapLayer[], options: HeatmapOptions = {}): { png: Buffer; heatmap: Heatmap } {
  const heatmap = renderHeatmap(layers, options);
  return { png: encodePng(heatmap), heatmap };
}

/** Writes the heatmap PNG atomically (mode 0644). */
export async function writeHeatmapPng(path: string, layers: readonly HeatmapLayer[], options: HeatmapOptions = {}): Promise<Heatmap> {
  const { png, heatmap } = heatmapPng(layers, options);
  await writeFileDurably(path, png, 0o644).catch((error: unknown) => {
    throw fromSystemError(error, 'write heatmap', path);
  });
  return heatmap;
}
