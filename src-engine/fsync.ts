// Durability helpers shared by every module that persists files.

import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** Syncs a directory so a rename or create inside it survives a crash. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates `path` and any missing parents, then syncs the parent of every directory it
 * created, so the new entries survive a crash (a file synced inside a directory whose own
 * entry was lost is lost with it).
 */
export async function createDirectories(path: string, mode?: number): Promise<void> {
  const target = resolve(path);
  const created = await mkdir(target, { recursive: true, mode });
  if (created === undefined) return;
  const firstCreated = resolve(created);
  for (let directory = target; ; directory = dirname(directory)) {
    await syncDirectory(dirname(directory));
    if (directory === firstCreated || dirname(directory) === directory) return;
  }
}

let temporaryCounter = 0;

/**
 * Writes a whole file atomically: a temporary file beside it (unique per process and call),
 * fsync, rename over the target, fsync the directory. On failure the temporary file is
 * removed and the target is as it was.
 */
export async function writeFileDurably(path: string, data: Uint8Array | string, mode = 0o600): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${temporaryCounter++}`);
  try {
    const handle = await open(temporary, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(path));
}
