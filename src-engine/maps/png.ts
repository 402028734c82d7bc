// A minimal PNG encoder (ISO/IEC 15948): 8-bit RGB, no interlace, filter 0 on every row,
// zlib deflate and CRC-32 from node:zlib. No ancillary chunks (no time, no gamma), so the
// same pixels always give the same bytes (with the same zlib).

import { crc32, deflateSync } from 'node:zlib';
import { invariantViolated } from '../assert';
import { TidemarkError } from '../errors';

export const pngSignature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Largest side we write (browsers and viewers handle it; the pixels stay below 1 GiB). */
export const pngSidePxMax = 16_384;

/** Pixels row by row from the top left, three bytes (R, G, B) each. */
export interface RgbImage {
  readonly widthPx: number;
  readonly heightPx: number;
  readonly rgb: Uint8Array;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const typeBytes = Buffer.from(type, 'latin1');
  const framed = Buffer.alloc(12 + data.length);
  framed.writeUInt32BE(data.length, 0);
  typeBytes.copy(framed, 4);
  framed.set(data, 8);
  framed.writeUInt32BE(crc32(data, crc32(typeBytes)), 8 + data.length);
  return framed;
}

function header(widthPx: number, heightPx: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(widthPx, 0);
  ihdr.writeUInt32BE(heightPx, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour (RGB)
  // compression 0 (deflate), filter method 0, interlace 0 (none): already zero
  return ihdr;
}

/** Each row prefixed by its filter type byte (0: none). */
function filteredRows(image: RgbImage): Buffer {
  const rowBytes = image.widthPx * 3;
  const raw = Buffer.alloc((rowBytes + 1) * image.heightPx);
  for (let y = 0; y < image.heightPx; y++) raw.set(image.rgb.subarray(y * rowBytes, (y + 1) * rowBytes), y * (rowBytes + 1) + 1);
  return raw;
}

function checkImage(image: RgbImage): void {
  const side = (px: number) => Number.isInteger(px) && px >= 1 && px <= pngSidePxMax;
  if (!side(image.widthPx) || !side(image.heightPx))
    throw new TidemarkError('USAGE', `cannot write a PNG of ${image.widthPx}×${image.heightPx} pixels`, `use 1 to ${pngSidePxMax} pixels a side`);
  if (image.rgb.length !== image.widthPx * image.heightPx * 3) invariantViolated(`${image.rgb.length} RGB bytes for ${image.widthPx}×${image.heightPx} pixels`);
}

/** The PNG file's bytes. */
export function encodePng(image: RgbImage): Buffer {
  checkImage(image);
  const idat = deflateSync(filteredRows(image), { level: 9 });
  return Buffer.concat([pngSignature, chunk('IHDR', header(image.widthPx, image.heightPx)), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))]);
}
