// Byte sizes for people: parse `4096`, `64MiB`, `1G`, `1.5TiB`; format with binary units; counts
// with their noun (`1 region`, `2 regions`).

import { usageError } from './errors';

const kibiBytes = 1024n;
const unitBytes: Record<string, bigint> = {
  '': 1n,
  b: 1n,
  k: kibiBytes,
  kb: kibiBytes,
  kib: kibiBytes,
  m: kibiBytes ** 2n,
  mb: kibiBytes ** 2n,
  mib: kibiBytes ** 2n,
  g: kibiBytes ** 3n,
  gb: kibiBytes ** 3n,
  gib: kibiBytes ** 3n,
  t: kibiBytes ** 4n,
  tb: kibiBytes ** 4n,
  tib: kibiBytes ** 4n,
  p: kibiBytes ** 5n,
  pb: kibiBytes ** 5n,
  pib: kibiBytes ** 5n,
};

/** Largest size parseSize returns: byte counts must stay exact as JavaScript numbers. */
export const parsedSizeBytesMax = Number.MAX_SAFE_INTEGER;

/**
 * Parses a size. Units are binary (K = 1024) whichever spelling is used, as in dd, qemu-img
 * and truncate. The result must be a whole number of bytes. Throws a USAGE error otherwise.
 * Decimals are exact (integer and fraction digits as BigInt), never rounded through a float:
 * `1.00000000000000001KiB` is refused, not read as 1024.
 */
export function parseSize(text: string, what = 'size'): number {
  const match = /^\s*(\d+)(?:\.(\d+))?\s*([a-zA-Z]*)\s*$/.exec(text);
  const hint = `write a size such as 4096, 64MiB, 1G or 1.5TiB`;
  if (!match) throw usageError(`invalid ${what} "${text}"`, hint);
  const unit = unitBytes[match[3]!.toLowerCase()];
  if (unit === undefined) throw usageError(`invalid ${what} "${text}": unknown unit "${match[3]}"`, hint);
  const fractionDigits = match[2] ?? '';
  const scale = 10n ** BigInt(fractionDigits.length);
  const scaledBytes = (BigInt(match[1]!) * scale + BigInt(fractionDigits || '0')) * unit;
  if (scaledBytes % scale !== 0n) throw usageError(`invalid ${what} "${text}": not a whole number of bytes`, hint);
  const bytes = scaledBytes / scale;
  if (bytes > BigInt(parsedSizeBytesMax)) {
    throw usageError(
      `invalid ${what} "${text}": too large, the limit is ${parsedSizeBytesMax} bytes (just under 8 PiB)`,
      'write a smaller size, such as 64MiB, 1G or 1.5TiB',
    );
  }
  return Number(bytes);
}

/** `1 region`, `0 regions`, `2 regions`: a count with its noun, plural unless it is 1. */
export function formatCount(count: number | bigint, noun: string): string {
  return `${count} ${noun}${count === 1 || count === 1n ? '' : 's'}`;
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
  const fixed = unit === 0 ? String(value) : value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2);
  // Trailing zeros go only after a decimal point: "1.50" → "1.5", but "100" stays "100".
  const text = fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
  return `${text} ${units[unit]}`;
}

/** Parses a rate in bytes per second: `50MiB/s`, `1G/s`, or a size (per second implied). */
export function parseRate(text: string, what = 'rate'): number {
  const bytes = parseSize(text.replace(/\/s\s*$/i, ''), what);
  if (bytes <= 0) throw usageError(`invalid ${what} "${text}": must be more than 0`, 'write a rate such as 50MiB/s');
  return bytes;
}

/** Parses a duration: `500ms`, `60s`, `5m`, `1h`, or bare milliseconds. */
export function parseDurationMs(text: string, what = 'duration'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!match) throw usageError(`invalid ${what} "${text}"`, 'write a duration such as 500ms, 60s, 5m or 1h');
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 'ms']!;
  return Math.round(Number(match[1]) * scale);
}
