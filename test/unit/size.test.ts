import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '../../src-engine/errors';
import { formatBytes, formatCount, parseDurationMs, parseSize } from '../../src-engine/size';
import { regionCountMax } from '../../src-engine/constants';
import { RegionGeometry } from '../../src-engine/volume';

describe('sizes', () => {
  it('parses the documented spellings with binary units', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('64MiB')).toBe(64 * 2 ** 20);
    expect(parseSize('1G')).toBe(2 ** 30);
    expect(parseSize('1.5TiB')).toBe(1.5 * 2 ** 40);
    expect(parseSize('4k')).toBe(4096);
    expect(parseSize(' 2 MB ')).toBe(2 * 2 ** 20);
  });

  it('refuses bad sizes with a usage error naming the input and the fix', () => {
    for (const bad of ['', 'abc', '12Q', '-1', '1.5', '0.1KiB', '1e3', '1.00000000000000001KiB', '8PiB', '99999999999999999999']) {
      let caught: unknown;
      try {
        parseSize(bad, '--size');
      } catch (error) {
        caught = error;
      }
      expect(caught, bad).toBeInstanceOf(TidemarkError);
      expect((caught as TidemarkError).code).toBe('USAGE');
      expect((caught as TidemarkError).hint).toMatch(/64MiB/);
    }
  });

  it('parses decimals exactly, never through a rounded float', () => {
    expect(parseSize('1.5KiB')).toBe(1536);
    expect(parseSize('0.25KiB')).toBe(256);
    expect(parseSize('1.0000KiB')).toBe(1024);
    expect(parseSize('1.0009765625KiB')).toBe(1025); // 1025 / 1024, written out in full
    expect(() => parseSize('1.00000000000000001KiB', '--size')).toThrow(/invalid --size "1.00000000000000001KiB": not a whole number of bytes/);
    expect(() => parseSize('1.000976562KiB')).toThrow(/not a whole number of bytes/);
  });

  it('says a size is too large, with the limit, rather than "not whole"', () => {
    expect(parseSize(String(Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER);
    for (const huge of ['8PiB', String(Number.MAX_SAFE_INTEGER + 1), '99999999999999999999', '8192TiB']) {
      expect(() => parseSize(huge, '--size'), huge).toThrow(
        expect.objectContaining({ code: 'USAGE', message: expect.stringMatching(/too large, the limit is 9007199254740991 bytes/) }),
      );
    }
  });

  it('formats round values', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(2 ** 30)).toBe('1 GiB');
    expect(formatBytes(100 * 1024)).toBe('100 KiB'); // not "1 KiB": zeros of a whole number stay
    expect(formatBytes(10 * 2 ** 20)).toBe('10 MiB');
  });

  it('parses durations', () => {
    expect(parseDurationMs('60s')).toBe(60_000);
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('5m')).toBe(300_000);
    expect(() => parseDurationMs('soon')).toThrow(TidemarkError);
  });

  it('parses whole KiB multiples exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 20 }), (kib) => {
        expect(parseSize(`${kib}KiB`)).toBe(kib * 1024);
      }),
    );
  });

  it('parse(formatBytes(x)) round-trips every size formatBytes writes exactly', () => {
    // formatBytes keeps 2 decimals below 10, 1 below 100, none above: quarters, halves and
    // whole numbers of a unit (and any byte count below 1 KiB) print exactly.
    const exactValue = fc.oneof(
      fc.integer({ min: 4, max: 39 }).map((quarters) => quarters / 4),
      fc.integer({ min: 20, max: 199 }).map((halves) => halves / 2),
      fc.integer({ min: 100, max: 1023 }),
    );
    fc.assert(
      fc.property(exactValue, fc.integer({ min: 1, max: 4 }), fc.nat({ max: 1023 }), (value, unitPower, smallBytes) => {
        const bytes = value * 1024 ** unitPower;
        expect(parseSize(formatBytes(bytes))).toBe(bytes);
        expect(parseSize(formatBytes(smallBytes))).toBe(smallBytes);
      }),
    );
  });
});

describe('counts', () => {
  it('name their noun in the singular for exactly one, the plural otherwise', () => {
    expect([0, 1, 2, 1n, 3n].map((n) => formatCount(n, 'region'))).toEqual(['0 regions', '1 region', '2 regions', '1 region', '3 regions']);
  });
});

describe('region geometry', () => {
  it('splits a volume into regions with a short last region', () => {
    const g = new RegionGeometry(10 * 4096 + 100, 4096);
    expect(g.regionCount).toBe(11);
    expect(g.region(10)).toEqual({ offsetBytes: 40960, bytes: 100 });
    expect(g.regionsOf(4095, 2)).toEqual({ first: 0, last: 1 });
  });

  it('accepts powers of two from 4 KiB to 64 MiB only', () => {
    expect(() => new RegionGeometry(2 ** 30, 2048)).toThrow(
      expect.objectContaining({ code: 'USAGE', hint: expect.stringMatching(/power of two from 4 KiB to 64 MiB/) }),
    );
    expect(() => new RegionGeometry(2 ** 30, 3 * 4096)).toThrow(TidemarkError);
    expect(() => new RegionGeometry(2 ** 30, 128 * 2 ** 20)).toThrow(TidemarkError);
    expect(new RegionGeometry(2 ** 30, 64 * 2 ** 20).regionCount).toBe(16);
  });

  it('refuses more regions than a bitmap can index, naming the region size that fits', () => {
    const nineTiB = 9 * 2 ** 40;
    expect(() => new RegionGeometry(nineTiB, 4096)).toThrow(
      expect.objectContaining({ code: 'USAGE', message: expect.stringMatching(/more than the 2147483647/), hint: 'use a larger --region-size, at least 8KiB' }),
    );
    expect(new RegionGeometry(nineTiB, 8192).regionCount).toBeLessThanOrEqual(regionCountMax);
    expect(new RegionGeometry(regionCountMax * 4096, 4096).regionCount).toBe(regionCountMax);
    expect(() => new RegionGeometry(regionCountMax * 4096 + 1, 4096)).toThrow(TidemarkError);
  });

  it('every byte belongs to exactly the region regionOf names', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 12, max: 26 }), fc.nat(), (sizeBytes, shift, at) => {
        const g = new RegionGeometry(sizeBytes, 2 ** shift);
        const offset = at % sizeBytes;
        const span = g.region(g.regionOf(offset));
        expect(span.offsetBytes <= offset && offset < span.offsetBytes + span.bytes).toBe(true);
      }),
    );
  });
});
