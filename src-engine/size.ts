// Byte sizes for people: parse `4096`, `64MiB`, `1G`, `1.5TiB`; format with binary units.

import { usageError } from './errors';

const unitBytes: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
  p: 1024 ** 5,
  pb: 1024 ** 5,
  pib: 1024 ** 5,
};

/**
 * Parses a size. Units are binary (K = 1024) whichever spelling is used, as in dd, qemu-img
 * and truncate. The result must be a whole number of bytes. Throws a USAGE error otherwise.
 */
export function parseSize(text: string, what = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const hint = `write a size such as 4096, 64MiB, 1G or 1.5TiB`;
  if (!match) throw usageError(`invalid ${what} "${text}"`, hint);
  const unit = unitBytes[match[2]!.toLowerCase()];
  if (unit === undefined) throw usageError(`invalid ${what} "${text}": unknown unit "${match[2]}"`, hint);
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) {
    throw usageError(`invalid ${what} "${text}": not a whole number of bytes`, hint);
  }
  return bytes;
}

/** Formats bytes with a binary unit and up to 3 significant decimals: `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 ? String(value) : value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2).replace(/\.?0+$/, '');
  return `${text} ${units[unit]}`;
}

/** Parses a duration: `500ms`, `60s`, `5m`, `1h`, or bare milliseconds. */
export function parseDurationMs(text: string, what = 'duration'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!match) throw usageError(`invalid ${what} "${text}"`, 'write a duration such as 500ms, 60s, 5m or 1h');
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 'ms']!;
  return Math.round(Number(match[1]) * scale);
}
