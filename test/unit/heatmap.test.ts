// Heatmap geometry and density (renderer code, DOM-free) against naive models.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cellAt, cellDensities, cellRegions, countRange, decodeWords, heatmapLayout } from '../../src-renderer/heatmap/density';

function naiveCount(bits: boolean[], from: number, to: number): number {
  return bits.slice(from, to).filter(Boolean).length;
}

function toWords(bits: boolean[]): Uint32Array {
  const words = new Uint32Array(Math.ceil(bits.length / 32));
  bits.forEach((b, i) => b && (words[i >>> 5]! |= 1 << (i & 31)));
  return words;
}

describe('heatmap density', () => {
  it('countRange equals a per-bit count for any range', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 400 }), fc.nat(), fc.nat(), (bits, a, b) => {
        const from = a % (bits.length + 1);
        const to = from + (b % (bits.length - from + 1));
        expect(countRange(toWords(bits), from, to)).toBe(naiveCount(bits, from, to));
      }),
    );
  });

  it('gives every region its own cell when regions fit, bigger cells for fewer regions', () => {
    const few = heatmapLayout(1024, 1600, 400);
    expect(few.regionsPerCell).toBe(1);
    expect(few.cellPx).toBeGreaterThan(1);
    expect(few.cols * few.rows).toBeGreaterThanOrEqual(1024);
    const many = heatmapLayout(4 * 2 ** 20, 1600, 400);
    expect(many).toMatchObject({ cellPx: 1, cols: 1600, rows: 400 });
    expect(many.regionsPerCell).toBeCloseTo((4 * 2 ** 20) / 640_000);
  });

  it('downsampled cells cover every region exactly once, and densities are exact', () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 50, maxLength: 3000 }),
        fc.integer({ min: 5, max: 40 }),
        fc.integer({ min: 1, max: 10 }),
        (bits, width, height) => {
          const layout = heatmapLayout(bits.length, width, height);
          const { density, cells } = cellDensities({ regionCount: bits.length, words: toWords(bits) }, layout, 0, bits.length);
          const prefix = [0];
          bits.forEach((b, i) => prefix.push(prefix[i]! + (b ? 1 : 0)));
          let covered = 0;
          for (let c = 0; c < cells; c++) {
            const { first, end } = cellRegions(layout, 0, bits.length, c);
            const to = Math.min(end, bits.length);
            if (first >= bits.length) continue;
            expect(first).toBe(covered);
            covered = to;
            expect(to).toBeGreaterThan(first);
            expect(density[c]).toBe(Math.round(((prefix[to]! - prefix[first]!) / (to - first)) * 255));
          }
          expect(covered).toBe(bits.length);
        },
      ),
    );
  });

  it('hover maps a point to the cell drawn there', () => {
    const layout = heatmapLayout(100, 100, 100); // 10 px cells, 10 per row
    expect(layout.cellPx).toBe(10);
    expect(cellAt(layout, 5, 5)).toBe(0);
    expect(cellAt(layout, 25, 15)).toBe(12);
    expect(cellAt(layout, -1, 5)).toBe(-1);
    expect(cellAt(layout, 5, 1000)).toBe(-1);
  });

  it('decodes the base64 words the API sends', () => {
    const words = new Uint32Array([1, 0x80000000, 0xffffffff]);
    const base64 = Buffer.from(words.buffer).toString('base64');
    expect([...decodeWords(base64)]).toEqual([1, 0x80000000, 0xffffffff]);
  });
});
