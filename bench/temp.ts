// Temporary directories for benchmark data, removed after use and also when the run is
// interrupted, so a 1 GiB test file never outlives the benchmark that made it.

import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const liveDirs = new Set<string>();

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `tidemark-bench-${prefix}-`));
  liveDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

/** Runs `work` in a fresh temporary directory and removes the directory afterwards, even on error. */
export async function withTempDir<T>(prefix: string, work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await makeTempDir(prefix);
  try {
    return await work(dir);
  } finally {
    await removeTempDir(dir);
  }
}

/** Synchronous removal of every directory still live, for signal handlers. */
export function removeTempDirsNow(): void {
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}
