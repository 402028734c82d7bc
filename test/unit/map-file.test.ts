// Map files (.tmmap, docs/map-format.md): round trips, atomic writes, and every kind of damage
// rejected with one line naming the file — flipped bytes, truncation, a newer version, absurd
// sizes in a header whose checksum is valid (a forged file), and a file too large to be one.
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';
import { TidemarkError } from '../../src-engine/errors';
import { decodeMapFile, encodeMapFile, mapFileBytesMax, readMapFile, writeMapFile, type MapFileContents } from '../../src-engine/maps';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261123);
const pairId = '3f0c2a4e-8d1b-4c7a-9e2f-5b6a7c8d9e0f';

function randomMap(random: () => number, regionCount: number, density: number): Bitset {
  const bits = new Bitset(regionCount);
  for (let r = 0; r < regionCount; r++) if (random() < density) bits.set(r);
  return bits;
}

function sample(regionCount = 1001, regionBytes = 65536): MapFileContents {
  const random = seededRandom(seed);
  return {
    pair: { name: 'site', pairId },
    regionBytes,
    regionCount,
    volumeBytes: regionCount * regionBytes - 4096, // the last region is short
    createdAt: '2026-03-01T12:00:00.000Z',
    maps: [
      { name: 'failback', bits: randomMap(random, regionCount, 0.1) },
      { name: 'current', bits: randomMap(random, regionCount, 0.5) },
      { name: 'next', bits: new Bitset(regionCount) },
    ],
  };
}

/** A file built here, independently of the encoder: any header, any bits, a valid checksum. */
function forge(header: Record<string, unknown>, bits: Buffer, version = 1): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const preamble = Buffer.alloc(16);
  preamble.write('TMREGMAP', 0, 'latin1');
  preamble.writeUInt32LE(version, 8);
  preamble.writeUInt32LE(json.length, 12);
  const body = Buffer.concat([preamble, json, bits]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

function headerOf(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    format: 'tidemark/map',
    version: 1,
    pair: { name: 'site', pairId },
    regionBytes: 65536,
    regionCount: 16,
    volumeBytes: 16 * 65536,
    createdAt: '2026-03-01T12:00:00.000Z',
    tidemarkVersion: '0.1.0',
    maps: [{ name: 'oos', setCount: 2 }],
    ...overrides,
  };
}

/** The error readMapFile throws for `bytes`, checked to be one line naming the file. */
async function rejection(bytes: Buffer): Promise<TidemarkError> {
  const path = join(await tempDir(), 'damaged.tmmap');
  await writeFile(path, bytes);
  const error = await readMapFile(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TidemarkError);
  const tidemarkError = error as TidemarkError;
  expect(tidemarkError.message).toContain(path);
  expect(tidemarkError.oneLine()).not.toContain('\n');
  return tidemarkError;
}

describe('map files', () => {
  it(`round-trips several maps with a short last region and a partial last byte (seed ${seed})`, async () => {
    const dir = await tempDir();
    const path = join(dir, 'site.tmmap');
    const contents = sample();
    await writeMapFile(path, contents);
    const read = await readMapFile(path);
    expect(read).toMatchObject({
      pair: contents.pair,
      regionBytes: 65536,
      regionCount: 1001,
      volumeBytes: contents.volumeBytes,
      createdAt: contents.createdAt,
    });
    expect(read.tidemarkVersion).toMatch(/\S/);
    expect(read.maps.map((m) => m.name)).toEqual(['failback', 'current', 'next']);
    read.maps.forEach((m, i) => expect(m.bits.equals(contents.maps[i]!.bits), m.name).toBe(true));
    expect(await readdir(dir)).toEqual(['site.tmmap']); // no temporary file left behind
    expect(encodeMapFile(contents).equals(await readFile(path))).toBe(true); // deterministic
  });

  it('round-trips an empty volume and a map with every region set', () => {
    const full = { ...sample(64), maps: [{ name: 'resync', bits: Bitset.full(64) }] };
    expect(decodeMapFile('x', encodeMapFile(full)).maps[0]!.bits.popcount()).toBe(64);
    const empty = { ...sample(0), volumeBytes: 0, maps: [{ name: 'oos', bits: new Bitset(0) }] };
    expect(decodeMapFile('x', encodeMapFile(empty)).regionCount).toBe(0);
  });

  it('overwrites an existing file atomically, and refuses contents a reader would reject', async () => {
    const path = join(await tempDir(), 'm.tmmap');
    await writeMapFile(path, sample());
    await writeMapFile(path, { ...sample(), maps: [{ name: 'oos', bits: Bitset.full(1001) }] });
    expect((await readMapFile(path)).maps.map((m) => m.name)).toEqual(['oos']);
    expect(() => encodeMapFile({ ...sample(), maps: [{ name: 'Bad Name', bits: new Bitset(1001) }] })).toThrow(/invariant/);
    expect(() => encodeMapFile({ ...sample(), maps: [{ name: 'oos', bits: new Bitset(1000) }] })).toThrow(/invariant/);
    expect(() => encodeMapFile({ ...sample(), volumeBytes: 1 })).toThrow(/region count 1001 does not match/);
  });

  it(`a flipped byte anywhere is rejected naming the file (seed ${seed})`, async () => {
    const good = encodeMapFile(sample());
    const random = seededRandom(seed + 1);
    const headerEnd = 16 + good.readUInt32LE(12);
    const positions = [headerEnd + 5, good.length - 1, 20, ...Array.from({ length: 8 }, () => 16 + Math.floor(random() * (good.length - 16)))];
    for (const at of positions) {
      const bad = Buffer.from(good);
      bad[at]! ^= 1 << Math.floor(random() * 8);
      const error = await rejection(bad);
      expect(error.code, `byte ${at}`).toBe('METADATA_CORRUPT');
      if (at >= headerEnd) expect(error.message, `byte ${at}`).toMatch(/checksum mismatch/);
    }
  });

  it('a truncated or extended file is rejected naming the file and what is wrong', async () => {
    const good = encodeMapFile(sample());
    const headerEnd = 16 + good.readUInt32LE(12);
    expect((await rejection(good.subarray(0, good.length - 1))).message).toMatch(/truncated: \d+ bytes, its header describes \d+/);
    expect((await rejection(good.subarray(0, headerEnd + 10))).message).toMatch(/truncated/);
    expect((await rejection(good.subarray(0, headerEnd - 10))).message).toMatch(/truncated: \d+ bytes, shorter than its header/);
    expect((await rejection(good.subarray(0, 12))).message).toMatch(/truncated: 12 bytes, shorter than its preamble/);
    expect((await rejection(Buffer.concat([good, Buffer.from([0])]))).message).toMatch(/1 unexpected bytes after the end/);
    expect((await rejection(Buffer.alloc(0))).message).toMatch(/is not a Tidemark map file/);
    expect((await rejection(Buffer.from('PK\x03\x04 a zip file, not a map'))).message).toMatch(/is not a Tidemark map file/);
  });

  it('a newer format version is refused as unsupported, naming the file', async () => {
    const bad = Buffer.from(encodeMapFile(sample()));
    bad.writeUInt32LE(2, 8);
    const error = await rejection(bad);
    expect(error.code).toBe('UNSUPPORTED');
    expect(error.message).toMatch(/has format version 2; this Tidemark reads version 1/);
    const forgedHeader = await rejection(forge(headerOf({ version: 2 }), Buffer.from([3, 0])));
    expect(forgedHeader.message).toMatch(/header version/);
  });

  it('absurd sizes and counts in a checksummed (forged) header are rejected before any allocation', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ regionCount: 2 ** 40, volumeBytes: 2 ** 52, regionBytes: 4096 }, /region count 1099511627776 exceeds the limit/],
      [{ regionCount: 2 ** 37, volumeBytes: 2 ** 53 }, /volume size 9007199254740992 exceeds the largest volume|header volumeBytes/],
      [{ regionCount: 2 ** 36, volumeBytes: 2 ** 52 + 2 ** 16 }, /volume size 4503599627436032 exceeds the largest volume/],
      [{ regionCount: 2 ** 31, volumeBytes: 2 ** 31 * 4096, regionBytes: 4096 }, /region count 2147483648 exceeds the limit/],
      [{ regionBytes: 3000 }, /region size 3000 is not a power of two/],
      [{ regionBytes: 2 ** 30, volumeBytes: 2 ** 34 }, /region size 1073741824 is not a power of two from/],
      [{ volumeBytes: 17 * 65536 }, /region count 16 does not match/],
      [{ maps: Array.from({ length: 17 }, (_, i) => ({ name: `m${i}`, setCount: 0 })) }, /header maps: Too big/i],
      [{ maps: [] }, /header maps/],
      [{ maps: [{ name: 'oos', setCount: 17 }] }, /map oos claims 17 set regions of 16/],
      [
        {
          maps: [
            { name: 'oos', setCount: 2 },
            { name: 'oos', setCount: 2 },
          ],
        },
        /two maps have the same name/,
      ],
      [{ maps: [{ name: '../x', setCount: 0 }] }, /header maps.0.name/],
      [{ regionCount: -1 }, /header regionCount/],
      [{ regionCount: 1.5 }, /header regionCount/],
      [{ extra: true }, /header: Unrecognized key/i],
      [{ pair: { name: 'site', pairId: 'not-a-uuid' } }, /header pair.pairId/],
      [{ createdAt: 'yesterday' }, /header createdAt/],
    ];
    for (const [overrides, pattern] of cases) {
      const error = await rejection(forge(headerOf(overrides), Buffer.from([3, 0])));
      expect(error.code, JSON.stringify(overrides)).toBe('METADATA_CORRUPT');
      expect(error.message, JSON.stringify(overrides)).toMatch(pattern);
    }
  });

  it('forged bits that disagree with the header are rejected: set counts, bits past the last region', async () => {
    expect((await rejection(forge(headerOf(), Buffer.from([7, 0])))).message).toMatch(/map oos has 3 regions set, its header says 2/);
    const odd = headerOf({ regionCount: 12, volumeBytes: 12 * 65536 });
    expect((await rejection(forge(odd, Buffer.from([3, 0x10])))).message).toMatch(/map oos has bits set past region 11/);
    // The forger itself is right: its file, consistent, reads.
    expect((await readMapFile(await writeTemp(forge(headerOf(), Buffer.from([3, 0]))))).maps[0]!.bits.popcount()).toBe(2);
  });

  it('a header length field beyond the limit, and a file larger than any map file, are refused without reading it', async () => {
    const bad = Buffer.from(encodeMapFile(sample()));
    bad.writeUInt32LE(0xffffffff, 12);
    expect((await rejection(bad)).message).toMatch(/header length 4294967295 exceeds 65536 bytes/);
    const path = join(await tempDir(), 'huge.tmmap');
    await writeFile(path, encodeMapFile(sample()));
    await truncate(path, mapFileBytesMax + 1); // sparse: nothing is written
    await expect(readMapFile(path)).rejects.toThrow(new RegExp(`map file ${path} is damaged: 1 GiB, larger than any map file`));
  });

  it('a missing file is NOT_FOUND naming it', async () => {
    const path = join(await tempDir(), `${randomUUID()}.tmmap`);
    await expect(readMapFile(path)).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(path) });
  });
});

async function writeTemp(bytes: Buffer): Promise<string> {
  const path = join(await tempDir(), 'forged.tmmap');
  await writeFile(path, bytes);
  return path;
}
