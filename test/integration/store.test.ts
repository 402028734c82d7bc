// Durable JSON records: atomic replace, checksum and schema checks, damage reported by path.
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TidemarkError } from '../../src-engine/errors';
import { defineRecord, readRecord, requireRecord, writeRecord } from '../../src-engine/store';
import { tempDir } from '../helpers/tmp';

const kind = defineRecord('tidemark/test', 1, z.object({ name: z.string(), count: z.number().int() }));

async function expectCorrupt(path: string, pattern: RegExp) {
  await expect(readRecord(path, kind)).rejects.toSatisfy(
    (e: unknown) => e instanceof TidemarkError && e.code === 'METADATA_CORRUPT' && e.message.includes(path) && pattern.test(e.message),
  );
}

describe('store', () => {
  it('writes atomically and reads back; leaves no temporary files', async () => {
    const dir = await tempDir();
    const path = join(dir, 'r.json');
    expect(await readRecord(path, kind)).toBeUndefined();
    await writeRecord(path, kind, { name: 'a', count: 1 });
    await writeRecord(path, kind, { name: 'b', count: 2 });
    expect(await readRecord(path, kind)).toEqual({ name: 'b', count: 2 });
    expect(await readdir(dir)).toEqual(['r.json']);
  });

  it('reports a damaged file by path and never replaces it', async () => {
    const dir = await tempDir();
    const path = join(dir, 'r.json');
    await writeRecord(path, kind, { name: 'a', count: 1 });
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace('"a"', '"z"'));
    await expectCorrupt(path, /checksum mismatch/);
    expect(await readFile(path, 'utf8')).toBe(text.replace('"a"', '"z"'));
    await writeFile(path, text.slice(0, 20));
    await expectCorrupt(path, /not valid JSON/);
    await writeFile(path, JSON.stringify({ format: 'other', version: 1, sha256: '', body: {} }));
    await expectCorrupt(path, /expected format/);
  });

  it('refuses a body that fails the schema, even with a valid checksum', async () => {
    const dir = await tempDir();
    const path = join(dir, 'r.json');
    const loose = defineRecord('tidemark/test', 1, z.object({ name: z.string(), count: z.string() }));
    await writeRecord(path, loose, { name: 'a', count: 'many' });
    await expectCorrupt(path, /schema: count/);
  });

  it('refuses to write an invalid value, and requireRecord names a missing file', async () => {
    const dir = await tempDir();
    await expect(writeRecord(join(dir, 'x.json'), kind, { name: 'a', count: 1.5 })).rejects.toThrow();
    await expect(requireRecord(join(dir, 'none.json'), kind, 'create it first')).rejects.toThrow(/does not exist/);
  });

  it('a write into a missing directory fails with NOT_FOUND and the path', async () => {
    const dir = await tempDir();
    await expect(writeRecord(join(dir, 'no', 'r.json'), kind, { name: 'a', count: 1 })).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && e.code === 'NOT_FOUND',
    );
  });
});
