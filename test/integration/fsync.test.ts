// Durable directory creation: every missing level is created (and its parent synced, which a
// test cannot observe without pulling the power), an existing path is left alone; a user-given
// directory one level at a time, failing in one line where it cannot (under /proc, a file in the way).
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDirectories, createUserDirectories } from '../../src-engine/fsync';
import { tempDir } from '../helpers/tmp';

describe('createDirectories', () => {
  it('creates every missing level with the mode asked for, and accepts an existing path', async () => {
    const dir = await tempDir();
    const deep = join(dir, 'a', 'b', 'c');
    await createDirectories(deep, 0o700);
    expect((await stat(deep)).isDirectory()).toBe(true);
    expect((await stat(deep)).mode & 0o777).toBe(0o700);
    await createDirectories(deep, 0o700);
    await createDirectories(join(dir, 'a'));
    expect((await stat(join(dir, 'a', 'b'))).isDirectory()).toBe(true);
  });
});

describe('createUserDirectories', () => {
  it('creates the missing levels outermost first and returns them; refuses /proc and a file in the way in one line', async () => {
    const dir = await tempDir();
    const deep = join(dir, 'a', 'b', 'c');
    expect(await createUserDirectories(deep)).toEqual([join(dir, 'a'), join(dir, 'a', 'b'), deep]);
    expect((await stat(deep)).isDirectory()).toBe(true);
    expect(await createUserDirectories(deep)).toEqual([]);
    await expect(createUserDirectories('/proc/tidemark-test-x/y')).rejects.toThrow('cannot create /proc/tidemark-test-x: ENOENT');
    await writeFile(join(dir, 'file'), '');
    await expect(createUserDirectories(join(dir, 'file', 'sub'))).rejects.toThrow(/cannot create .*file.*: ENOTDIR/);
  });
});
