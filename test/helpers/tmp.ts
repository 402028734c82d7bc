// Temporary directories for tests, removed afterwards: one made inside a test after that test,
// one made in a beforeAll (shared by the file's tests) after the file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, expect } from 'vitest';

const madeInTest: string[] = [];
const madeForFile: string[] = [];

export async function tempDir(prefix = 'tidemark-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  (expect.getState().currentTestName === undefined ? madeForFile : madeInTest).push(dir);
  return dir;
}

async function removeAll(dirs: string[]): Promise<void> {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
}

afterEach(() => removeAll(madeInTest));
afterAll(() => removeAll(madeForFile));
