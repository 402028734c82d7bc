// A small PNG decoder for tests, independent of the encoder in src-engine/maps/png.ts: its own
// table CRC-32, every chunk's CRC checked, IHDR/IDAT/IEND order, inflate, and all five row
// filters undone. 8-bit RGB (colour type 2) and RGBA (6) only — what the tests need.
import { inflateSync } from 'node:zlib';

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function tableCrc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface PngChunk {
  readonly type: string;
  readonly data: Buffer;
}

export interface DecodedPng {
  readonly widthPx: number;
  readonly heightPx: number;
  readonly chunks: readonly PngChunk[];
  /** RGB of pixel (x, y). */
  pixel(x: number, y: number): [number, number, number];
}

const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Chunks in order; throws on a bad signature, a short chunk or a CRC mismatch. */
export function pngChunks(png: Buffer): PngChunk[] {
  if (!signature.every((b, i) => png[i] === b)) throw new Error('not a PNG: bad signature');
  const chunks: PngChunk[] = [];
  for (let at = 8; at < png.length;) {
    const length = png.readUInt32BE(at);
    const typeAndData = png.subarray(at + 4, at + 8 + length);
    if (typeAndData.length !== length + 4 || at + 12 + length > png.length) throw new Error('truncated chunk');
    const crc = png.readUInt32BE(at + 8 + length);
    const type = typeAndData.toString('latin1', 0, 4);
    if (crc !== tableCrc32(typeAndData)) throw new Error(`CRC mismatch in ${type}`);
    chunks.push({ type, data: Buffer.from(typeAndData.subarray(4)) });
    at += 12 + length;
  }
  return chunks;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

function unfilter(raw: Buffer, widthPx: number, heightPx: number, bytesPerPixel: number): Uint8Array {
  const rowBytes = widthPx * bytesPerPixel;
  const out = new Uint8Array(rowBytes * heightPx);
  for (let y = 0; y < heightPx; y++) {
    const filter = raw[y * (rowBytes + 1)]!;
    for (let i = 0; i < rowBytes; i++) {
      const x = raw[y * (rowBytes + 1) + 1 + i]!;
      const a = i >= bytesPerPixel ? out[y * rowBytes + i - bytesPerPixel]! : 0;
      const b = y > 0 ? out[(y - 1) * rowBytes + i]! : 0;
      const c = y > 0 && i >= bytesPerPixel ? out[(y - 1) * rowBytes + i - bytesPerPixel]! : 0;
      const predictor = [0, a, b, (a + b) >>> 1, paeth(a, b, c)][filter];
      if (predictor === undefined) throw new Error(`unknown filter ${filter} on row ${y}`);
      out[y * rowBytes + i] = (x + predictor) & 0xff;
    }
  }
  return out;
}

export function decodePng(png: Buffer): DecodedPng {
  const chunks = pngChunks(png);
  const types = chunks.map((c) => c.type);
  if (types[0] !== 'IHDR' || types.at(-1) !== 'IEND' || !types.includes('IDAT')) throw new Error(`chunk order ${types.join(',')}`);
  const ihdr = chunks[0]!.data;
  const [widthPx, heightPx, depth, colourType, , , interlace] = [ihdr.readUInt32BE(0), ihdr.readUInt32BE(4), ihdr[8], ihdr[9], ihdr[10], ihdr[11], ihdr[12]];
  if (depth !== 8 || (colourType !== 2 && colourType !== 6) || interlace !== 0) throw new Error(`unsupported IHDR depth ${depth} type ${colourType}`);
  const bytesPerPixel = colourType === 2 ? 3 : 4;
  const raw = inflateSync(Buffer.concat(chunks.filter((c) => c.type === 'IDAT').map((c) => c.data)));
  if (raw.length !== (widthPx * bytesPerPixel + 1) * heightPx) throw new Error(`IDAT inflates to ${raw.length} bytes`);
  const pixels = unfilter(raw, widthPx, heightPx, bytesPerPixel);
  return {
    widthPx,
    heightPx,
    chunks,
    pixel: (x, y) => {
      const at = (y * widthPx + x) * bytesPerPixel;
      return [pixels[at]!, pixels[at + 1]!, pixels[at + 2]!];
    },
  };
}
