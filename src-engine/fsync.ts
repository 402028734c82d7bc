// Durability helpers shared by every module that persists files.

import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { TidemarkError, errnoCode, type ErrorCode } from './errors';

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

/**
 * Creates a user-given directory and its missing parents one level at a time, and returns the
 * ones it created, outermost first. Node 20's recursive mkdir loops forever on ENOENT under
 * /proc; this stats upward to the first existing ancestor, then mkdirs each level, and a
 * failure is one line naming the directory and the errno.
 */
export async function createUserDirectories(path: string, mode?: number): Promise<string[]> {
  const missing = await missingDirectories(resolve(path));
  for (const directory of missing) {
    try {
      await mkdir(directory, { mode });
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw cannotCreate(directory, errnoCode(error) ?? String(error), error);
    }
  }
  return missing;
}

/** `path` and its parents up to the first existing directory, outermost first. */
async function missingDirectories(path: string): Promise<string[]> {
  const missing: string[] = [];
  for (let directory = path; dirname(directory) !== directory; directory = dirname(directory)) {
    const found = await stat(directory).catch((error: unknown) => {
      if (errnoCode(error) === 'ENOENT') return null;
      throw cannotCreate(directory, errnoCode(error) ?? String(error), error);
    });
    if (found?.isDirectory()) break;
    if (found) throw cannotCreate(directory, 'ENOTDIR (a file is in the way)');
    missing.unshift(directory);
  }
  return missing;
}

const errorCodeOfErrno: Record<string, ErrorCode> = {
  ENOENT: 'NOT_FOUND',
  EACCES: 'PERMISSION',
  EPERM: 'PERMISSION',
  EROFS: 'PERMISSION',
  ENOSPC: 'NO_SPACE',
  EDQUOT: 'NO_SPACE',
};

function cannotCreate(directory: string, errno: string, cause?: unknown): TidemarkError {
  return new TidemarkError(errorCodeOfErrno[errno] ?? 'IO', `cannot create ${directory}: ${errno}`, 'choose a directory on writable media', { cause });
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
