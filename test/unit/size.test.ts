import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '../../src-engine/errors';
import { formatBytes, parseDurationMs, parseSize } from '../../src-engine/size';
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
    for (const bad of ['', 'abc', '12Q', '-1', '1.5', '0.1KiB', '1e3']) {
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

  it('formats round values', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(2 ** 30)).toBe('1 GiB');
  });

  it('parses durations', () => {
    expect(parseDurationMs('60s')).toBe(60_000);
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('5m')).toBe(300_000);
    expect(() => parseDurationMs('soon')).toThrow(TidemarkError);
  });

  it('parse(format(x)) round-trips whole KiB multiples', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 20 }), (kib) => {
        expect(parseSize(`${kib}KiB`)).toBe(kib * 1024);
      }),
    );
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
