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

/** Set bits per byte value, for counting short spans without a multiply. */
const bitsInByte = new Uint8Array(256);
for (let i = 1; i < 256; i++) bitsInByte[i] = (i & 1) + bitsInByte[i >>> 1]!;

/**
 * Density per cell in 0..255 (0 = no region set, 255 = all set). Cell bounds advance by
 * integer stepping (no division per cell) and match cellRegions exactly; a cell spanning
 * ≤ 32 regions (4M regions into 640k pixels is ~6.5 each) costs at most two word reads and
 * a byte-table popcount; wider cells count by whole words. One allocation: the result.
 */
export function cellDensities(bits: BitsView, layout: HeatmapLayout, viewStart: number, viewRegions: number): { density: Uint8Array; cells: number } {
  const cells = layout.regionsPerCell === 1 ? Math.min(layout.cellsTotal, viewRegions) : layout.cellsTotal;
  const density = new Uint8Array(layout.cols * layout.rows);
  const limit = Math.min(viewStart + viewRegions, bits.regionCount);
  const words = bits.words;
  const total = layout.regionsPerCell === 1 ? viewRegions : layout.cellsTotal;
  // floor((c+1)·n/C) = (c+1)·q + floor((c+1)·r/C): step q, carry r (Bresenham).
  const quotient = Math.floor(viewRegions / total);
  const remainder = viewRegions - quotient * total;
  let first = viewStart;
  let carry = 0;
  for (let c = 0; c < cells; c++) {
    carry += remainder;
    let end = first + quotient;
    if (carry >= total) {
      carry -= total;
      end += 1;
    }
    const length = (end < limit ? end : limit) - first;
    if (length > 0 && length <= 32) {
      const w = first >>> 5;
      const shift = first & 31;
      let v = words[w]! >>> shift;
      if (shift + length > 32) v |= words[w + 1]! << (32 - shift);
      if (length < 32) v &= (1 << length) - 1;
      if (v !== 0)
        density[c] =
          ((255 / (end - first)) * (bitsInByte[v & 255]! + bitsInByte[(v >>> 8) & 255]! + bitsInByte[(v >>> 16) & 255]! + bitsInByte[v >>> 24]!) + 0.5) | 0;
    } else if (length > 32) {
      const set = countRange(words, first, first + length);
      if (set !== 0) density[c] = ((set * 255) / (end - first) + 0.5) | 0;
    }
    first = end;
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
