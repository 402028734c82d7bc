// Heatmap geometry and density, pure and DOM-free: which regions a canvas cell shows, and
// what fraction of them is set. Regions run row-major across the grid; when regions
// outnumber pixels each pixel shows the density of the regions it covers.

export interface BitsView {
  readonly regionCount: number;
  /** Bit i of word w is region 32·w + i. */
  readonly words: Uint32Array;
}

export interface HeatmapLayout {
  /** Side of one cell in CSS pixels (1 when several regions share a pixel). */
  readonly cellPx: number;
  readonly cols: number;
  readonly rows: number;
  /** Regions per cell (≥ 1 when downsampling; 1 when every region has its own cell). */
  readonly regionsPerCell: number;
  /** Cells the view is spread over when downsampling (cols × rows), for exact integer bounds. */
  readonly cellsTotal: number;
}

export function heatmapLayout(viewRegions: number, widthPx: number, heightPx: number): HeatmapLayout {
  const pixels = Math.max(1, widthPx * heightPx);
  if (viewRegions >= pixels) return { cellPx: 1, cols: widthPx, rows: heightPx, regionsPerCell: viewRegions / pixels, cellsTotal: pixels };
  const cellPx = Math.max(1, Math.min(32, Math.floor(Math.sqrt(pixels / Math.max(1, viewRegions)))));
  const cols = Math.max(1, Math.floor(widthPx / cellPx));
  const rows = Math.ceil(viewRegions / cols);
  return { cellPx, cols, rows, regionsPerCell: 1, cellsTotal: cols * rows };
}

function popcount32(word: number): number {
  let v = word >>> 0;
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Set bits in [from, to), by whole words where it can. */
export function countRange(words: Uint32Array, from: number, to: number): number {
  let count = 0;
  let i = from;
  while (i < to && (i & 31) !== 0) {
    if (words[i >>> 5]! & (1 << (i & 31))) count += 1;
    i += 1;
  }
  while (i + 32 <= to) {
    const word = words[i >>> 5]!;
    if (word !== 0) count += popcount32(word);
    i += 32;
  }
  while (i < to) {
    if (words[i >>> 5]! & (1 << (i & 31))) count += 1;
    i += 1;
  }
  return count;
}

/** Regions [first, end) shown by cell `cell` of a layout over the view starting at `viewStart`. */
export function cellRegions(layout: HeatmapLayout, viewStart: number, viewRegions: number, cell: number): { first: number; end: number } {
  if (layout.regionsPerCell === 1) return { first: viewStart + cell, end: viewStart + cell + 1 };
  // Integer numerators: the bounds of neighbouring cells meet exactly, with no gap or overlap.
  const first = viewStart + Math.floor((cell * viewRegions) / layout.cellsTotal);
  const end = viewStart + Math.floor(((cell + 1) * viewRegions) / layout.cellsTotal);
  return { first, end };
}

/**
 * Density per cell in 0..255 (0 = no region set, 255 = all set); cells past the view get
 * 0 and are marked in `outside`. One pass over the words; no allocation but the result.
 */
export function cellDensities(bits: BitsView, layout: HeatmapLayout, viewStart: number, viewRegions: number): { density: Uint8Array; cells: number } {
  const cells = layout.regionsPerCell === 1 ? Math.min(layout.cellsTotal, viewRegions) : layout.cellsTotal;
  const density = new Uint8Array(layout.cols * layout.rows);
  for (let c = 0; c < cells; c++) {
    const { first, end } = cellRegions(layout, viewStart, viewRegions, c);
    const span = Math.min(end, bits.regionCount) - first;
    if (span <= 0) continue;
    density[c] = Math.round((countRange(bits.words, first, first + span) / span) * 255);
  }
  return { density, cells };
}

/** Which cell a point (in CSS pixels within the canvas) falls in, or -1. */
export function cellAt(layout: HeatmapLayout, xPx: number, yPx: number): number {
  const col = Math.floor(xPx / layout.cellPx);
  const row = Math.floor(yPx / layout.cellPx);
  if (col < 0 || row < 0 || col >= layout.cols || row >= layout.rows) return -1;
  return row * layout.cols + col;
}

export function decodeWords(base64: string): Uint32Array {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Uint32Array(bytes.buffer, 0, bytes.length >>> 2);
}
