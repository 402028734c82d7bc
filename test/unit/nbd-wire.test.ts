// NBD wire helpers without sockets: option payload parsing, context matching, extent encoding,
// region extents over bitsets, and the errno an export failure maps to.
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';
import { TidemarkError } from '../../src-engine/errors';
import { encodeExtents, nbdErrnoOf } from '../../src-engine/nbd/connection';
import { listMatches, metaContextsOf, parseInfoRequest, parseMetaContextRequest, setMatches } from '../../src-engine/nbd/negotiation';
import { regionExtents, volumeNbdExport } from '../../src-engine/nbd/volume-export';
import { FileBackend, Volume } from '../../src-engine/volume';
import { tempDir } from '../helpers/tmp';

function metaPayload(name: string, queries: string[]): Buffer {
  const parts = [Buffer.alloc(4), Buffer.from(name), Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(Buffer.byteLength(name));
  parts[2]!.writeUInt32BE(queries.length);
  for (const q of queries) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(Buffer.byteLength(q));
    parts.push(length, Buffer.from(q));
  }
  return Buffer.concat(parts);
}

describe('NBD negotiation payloads', () => {
  it('parses INFO/GO and refuses lengths that do not add up', () => {
    const good = Buffer.from([0, 0, 0, 3, 0x76, 0x6f, 0x6c, 0, 2, 0, 1, 0, 3]);
    expect(parseInfoRequest(good)).toEqual({ ok: true, value: { name: 'vol', infoTypes: [1, 3] } });
    expect(parseInfoRequest(good.subarray(0, 12)).ok).toBe(false);
    expect(parseInfoRequest(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0]))).toMatchObject({ ok: false, tooBig: true });
  });

  it('parses meta-context queries; LIST matches prefixes, SET only exact names', () => {
    const parsed = parseMetaContextRequest(metaPayload('vol', ['qemu:', 'base:allocation']));
    expect(parsed).toEqual({ ok: true, value: { exportName: 'vol', queries: ['qemu:', 'base:allocation'] } });
    expect(parseMetaContextRequest(metaPayload('vol', ['nonamespace'])).ok).toBe(false);
    expect(parseMetaContextRequest(Buffer.concat([metaPayload('vol', ['base:allocation']), Buffer.from([1])])).ok).toBe(false);
    const contexts = metaContextsOf({
      allocation: async () => [],
      metaContexts: [{ name: 'qemu:dirty-bitmap:tidemark-oos', extents: async () => [] }],
    } as never);
    expect(contexts.map((c) => [c.id, c.name])).toEqual([
      [1, 'base:allocation'],
      [2, 'qemu:dirty-bitmap:tidemark-oos'],
    ]);
    expect(listMatches(contexts, []).length).toBe(2);
    expect(listMatches(contexts, ['qemu:']).map((c) => c.id)).toEqual([2]);
    expect(listMatches(contexts, ['qemu:dirty-bitmap:']).map((c) => c.id)).toEqual([2]);
    expect(listMatches(contexts, ['base:']).map((c) => c.id)).toEqual([1]);
    expect(setMatches(contexts, ['qemu:']).length).toBe(0);
    expect(setMatches(contexts, ['qemu:dirty-bitmap:tidemark-oos', 'base:allocation', 'base:allocation']).map((c) => c.id)).toEqual([1, 2]);
  });
});

describe('NBD extents', () => {
  it('clips descriptors to the request, honours REQ_ONE and refuses empty or bad extents', () => {
    const payload = encodeExtents(
      7,
      [
        { lengthBytes: 100, flags: 3 },
        { lengthBytes: 1000, flags: 0 },
        { lengthBytes: 5, flags: 1 },
      ],
      600,
      false,
    );
    expect([payload.readUInt32BE(0), payload.readUInt32BE(4), payload.readUInt32BE(8), payload.readUInt32BE(12), payload.readUInt32BE(16)]).toEqual([
      7, 100, 3, 500, 0,
    ]);
    expect(payload.length).toBe(4 + 2 * 8);
    expect(
      encodeExtents(
        1,
        [
          { lengthBytes: 100, flags: 3 },
          { lengthBytes: 9, flags: 0 },
        ],
        600,
        true,
      ).length,
    ).toBe(12);
    expect(() => encodeExtents(1, [], 10, false)).toThrow(/no extents/);
    expect(() => encodeExtents(1, [{ lengthBytes: 0, flags: 0 }], 10, false)).toThrow(/gave extent/);
  });

  it('region extents merge runs and clip the ends inside regions', async () => {
    const dir = await tempDir();
    const path = join(dir, 'v.img');
    await writeFile(path, '');
    await truncate(path, 10 * 4096 + 100); // a short last region
    const volume = new Volume(await FileBackend.open(path), 4096);
    const bits = new Bitset(volume.regionCount);
    bits.setRange(2, 5);
    bits.set(10);
    expect(regionExtents(bits, volume, 100, volume.sizeBytes - 100, 0, 3)).toEqual([
      { lengthBytes: 2 * 4096 - 100, flags: 3 },
      { lengthBytes: 3 * 4096, flags: 0 },
      { lengthBytes: 5 * 4096, flags: 3 },
      { lengthBytes: 100, flags: 0 },
    ]);
    expect(regionExtents(bits, volume, 2 * 4096 + 1, 10, 0, 3)).toEqual([{ lengthBytes: 10, flags: 0 }]);
    const exported = volumeNbdExport(volume, { name: 'v', readOnly: false });
    expect(await exported.allocation(0, 4096)).toEqual([{ lengthBytes: 4096, flags: 0 }]);
    await volume.close();
  });
});

describe('NBD errnos', () => {
  it('maps permission, space and everything else', () => {
    expect(nbdErrnoOf(new TidemarkError('PERMISSION', 'locked', ''))).toBe(1);
    expect(nbdErrnoOf(new TidemarkError('STALE', 'old generation', ''))).toBe(1);
    expect(nbdErrnoOf(new TidemarkError('NO_SPACE', 'full', ''))).toBe(28);
    expect(nbdErrnoOf(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe(28);
    expect(nbdErrnoOf(new TidemarkError('IO', 'disk', ''))).toBe(5);
    expect(nbdErrnoOf(new Error('anything'))).toBe(5);
  });
});
