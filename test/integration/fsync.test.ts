// Durable directory creation: every missing level is created (and its parent synced, which a
// test cannot observe without pulling the power), an existing path is left alone.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDirectories } from '../../src-engine/fsync';
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
