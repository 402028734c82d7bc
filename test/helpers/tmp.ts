// Temporary directories for tests, removed afterwards: one made inside a test after that test,
// one made in a beforeAll (shared by the file's tests) after the file. The file's afterAll hooks
// run in reverse order of registration (vitest.config.ts pins sequence.hooks: 'stack'), and this
// one registers on import, so a console a beforeAll started in such a dir is stopped first.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, TestRunner } from 'vitest';

const madeInTest: string[] = [];
const madeForFile: string[] = [];

export async function tempDir(prefix = 'tidemark-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // TestRunner.getCurrentTest is set during a test (and its beforeEach) and reset after it; in a beforeAll,
  // at any depth, it is undefined. (expect.getState().currentTestName is never reset.)
  (TestRunner.getCurrentTest() === undefined ? madeForFile : madeInTest).push(dir);
  return dir;
}

async function removeAll(dirs: string[]): Promise<void> {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
}

afterEach(() => removeAll(madeInTest));
afterAll(() => removeAll(madeForFile));
