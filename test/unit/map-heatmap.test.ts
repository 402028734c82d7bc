// PNG heatmaps of region maps, read back by an independent decoder (test/unit/png-decode.ts:
// its own CRC-32, inflate, all five filters): geometry, background, the tint of a single set
// region, fractions, several maps in distinct colours, determinism.
import { describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';
import {
  encodePng,
  heatmapBackground,
  heatmapLayout,
  heatmapOutside,
  heatmapPng,
  mapColours,
  renderHeatmap,
  writeHeatmapPng,
  type HeatmapLayer,
  type Rgb,
} from '../../src-engine/maps';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';
import { decodePng, pngChunks } from './png-decode';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261123);

/** The colour the format specifies for layers with these fractions set in one cell (docs/map-format.md). */
function expectedColour(fractions: readonly number[], colours: readonly Rgb[]): number[] {
  const tints = fractions.map((f) => (f > 0 ? 0.35 + 0.65 * f : 0));
  const total = tints.reduce((a, b) => a + b, 0);
  if (total === 0) return [...heatmapBackground];
  const strongest = Math.max(...tints);
  return [0, 1, 2].map((c) => {
    const mean = tints.reduce((sum, t, i) => sum + t * colours[i]![c]!, 0) / total;
    return Math.round(heatmapBackground[c]! + (mean - heatmapBackground[c]!) * strongest);
  });
}

function render(layers: HeatmapLayer[], options = {}) {
  const { png, heatmap } = heatmapPng(layers, options);
  return { decoded: decodePng(png), layout: heatmap.layout, png };
}

/** Every pixel of a cell has one colour; returns it. */
function cellColour(decoded: ReturnType<typeof decodePng>, cellPx: number, cx: number, cy: number): number[] {
  const colour = decoded.pixel(cx * cellPx, cy * cellPx);
  for (let dy = 0; dy < cellPx; dy++) for (let dx = 0; dx < cellPx; dx++) expect(decoded.pixel(cx * cellPx + dx, cy * cellPx + dy)).toEqual(colour);
  return colour;
}

describe('PNG heatmaps', () => {
  it('writes a valid PNG: signature, IHDR (8-bit RGB), IDAT, empty IEND, every CRC right', () => {
    const { png, layout } = render([{ name: 'oos', bits: new Bitset(1000) }]);
    const chunks = pngChunks(png);
    expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect(chunks[0]!.data).toEqual(Buffer.from([0, 0, 2, 0, 0, 0, 0, 8, 8, 2, 0, 0, 0])); // 512 × 8 px, depth 8, RGB
    expect(layout).toMatchObject({ widthCells: 256, heightCells: 4, regionsPerCell: 1, widthPx: 512, heightPx: 8 });
    expect(chunks[2]!.data.length).toBe(0);
    const damaged = Buffer.from(png);
    damaged[40]! ^= 0x20;
    expect(() => pngChunks(damaged)).toThrow(/CRC mismatch/);
  });

  it('one set region among a million tints exactly its cell; the rest is background, past the end is outside', () => {
    const regionCount = 1_000_000;
    const bits = new Bitset(regionCount);
    bits.set(777_777);
    const { decoded, layout } = render([{ name: 'failback', bits }]);
    expect(layout).toMatchObject({ widthCells: 256, regionsPerCell: 16, heightCells: 245, widthPx: 512, heightPx: 490 });
    const setCell = Math.floor(777_777 / 16);
    const tinted = expectedColour([1 / 16], [mapColours.failback!]);
    expect(tinted).not.toEqual([...heatmapBackground]);
    for (let cell = 0; cell < 256 * 245; cell++) {
      const colour = decoded.pixel((cell % 256) * 2, Math.floor(cell / 256) * 2);
      const expected = cell === setCell ? tinted : cell * 16 >= regionCount ? [...heatmapOutside] : [...heatmapBackground];
      if (colour.join() !== expected.join()) expect(colour, `cell ${cell}`).toEqual(expected);
    }
    expect(cellColour(decoded, 2, setCell % 256, Math.floor(setCell / 256))).toEqual(tinted);
  });

  it('tints by the fraction set, a short last cell by its own region count', () => {
    const bits = new Bitset(99); // 8 × 4 cells of 4 regions; the last cell holds 96..98
    bits.setRange(0, 4); // cell 0 full
    bits.setRange(4, 6); // cell 1 half
    bits.set(98); // cell 24: one of three
    const { decoded, layout } = render([{ name: 'oos', bits }], { widthCells: 8, heightCellsMax: 4, cellPx: 3 });
    expect(layout).toMatchObject({ widthCells: 8, heightCells: 4, regionsPerCell: 4, widthPx: 24, heightPx: 12 });
    const oos = mapColours.oos!;
    expect(cellColour(decoded, 3, 0, 0)).toEqual([...oos]);
    expect(cellColour(decoded, 3, 1, 0)).toEqual(expectedColour([0.5], [oos]));
    expect(cellColour(decoded, 3, 2, 0)).toEqual([...heatmapBackground]);
    expect(cellColour(decoded, 3, 0, 3)).toEqual(expectedColour([1 / 3], [oos]));
    expect(cellColour(decoded, 3, 1, 3)).toEqual([...heatmapOutside]);
  });

  it('draws several maps in distinct colours, their mix where they overlap', () => {
    const [failback, current, next] = [new Bitset(256 * 3), new Bitset(256 * 3), new Bitset(256 * 3)];
    failback.set(0);
    current.set(1);
    next.set(2);
    failback.set(3);
    current.set(3);
    const layers = [
      { name: 'failback', bits: failback },
      { name: 'current', bits: current },
      { name: 'next', bits: next },
    ];
    const heatmap = renderHeatmap(layers);
    const colours = heatmap.legend.map((l) => l.colour);
    expect(new Set(colours.map(String)).size).toBe(3);
    const { decoded } = render(layers);
    expect(decoded.pixel(0, 0)).toEqual([...mapColours.failback!]);
    expect(decoded.pixel(2, 0)).toEqual([...mapColours.current!]);
    expect(decoded.pixel(4, 0)).toEqual([...mapColours.next!]);
    expect(decoded.pixel(6, 0)).toEqual(expectedColour([1, 1, 0], colours));
    expect(decoded.pixel(8, 0)).toEqual([...heatmapBackground]);
    // Unknown names get palette colours no other layer uses.
    const named = renderHeatmap([
      { name: 'oos', bits: failback },
      { name: 'mine', bits: current },
      { name: 'yours', bits: next },
    ]).legend.map((l) => String(l.colour));
    expect(new Set(named).size).toBe(3);
  });

  it(`is deterministic: the same maps give the same bytes; another map other bytes (seed ${seed})`, async () => {
    const random = seededRandom(seed);
    const bits = new Bitset(50_000);
    for (let i = 0; i < 500; i++) bits.set(Math.floor(random() * 50_000));
    const first = heatmapPng([{ name: 'moos', bits }]).png;
    expect(heatmapPng([{ name: 'moos', bits: bits.clone() }]).png.equals(first)).toBe(true);
    const path = join(await tempDir(), 'moos.png');
    await writeHeatmapPng(path, [{ name: 'moos', bits }]);
    expect((await readFile(path)).equals(first)).toBe(true);
    bits.set(bits.nextClearBit(0));
    expect(heatmapPng([{ name: 'moos', bits }]).png.equals(first)).toBe(false);
  });

  it('refuses impossible geometry and maps of different sizes', () => {
    expect(() => encodePng({ widthPx: 0, heightPx: 1, rgb: new Uint8Array(0) })).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => heatmapLayout(10, { widthCells: 0 })).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => heatmapLayout(10, { widthCells: 4096, cellPx: 8 })).toThrow(/width in pixels/);
    expect(() =>
      renderHeatmap([
        { name: 'a', bits: new Bitset(10) },
        { name: 'b', bits: new Bitset(11) },
      ]),
    ).toThrow(expect.objectContaining({ code: 'SIZE_MISMATCH' }));
    expect(heatmapLayout(0)).toMatchObject({ widthCells: 256, heightCells: 1, regionsPerCell: 1 });
  });
});
