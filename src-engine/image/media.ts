// Files on the image's media: opened without following links and checked regular on the open
// descriptor (an image is untrusted input), read exactly, written durably on file systems whose
// directories may not take an fsync (FAT, exFAT, some FUSE mounts).

import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, rename, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { assert } from '../assert';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

function entryType(stats: Stats): EntryType {
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  return 'other';
}

export function describeEntryType(type: EntryType): string {
  return { file: 'a regular file', directory: 'a directory', symlink: 'a symbolic link', other: 'a device, socket or pipe' }[type];
}

/** Every entry of `dir` with its type as lstat sees it (links are not followed). */
export async function listEntries(dir: string): Promise<Map<string, EntryType>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw fromSystemError(error, 'read image directory', dir);
  }
  const entries = new Map<string, EntryType>();
  for (const name of names.sort()) {
    try {
      entries.set(name, entryType(await lstat(join(dir, name))));
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw fromSystemError(error, 'inspect', join(dir, name));
    }
  }
  return entries;
}

export interface OpenedFile {
  readonly handle: FileHandle;
  readonly sizeBytes: number;
}

/** Why a file cannot be opened as a regular file: 'missing', or what it is instead. */
export class NotRegularFile extends Error {
  constructor(
    readonly path: string,
    readonly found: 'missing' | EntryType,
  ) {
    super(`${path} is ${found === 'missing' ? 'missing' : describeEntryType(found)}`);
  }
}

/**
 * Opens `path` for reading without following a symbolic link (O_NOFOLLOW) or blocking on a
 * pipe (O_NONBLOCK), and checks on the open descriptor that it is a regular file: what is read
 * is what was checked, whatever is renamed meanwhile.
 */
export async function openRegular(path: string): Promise<OpenedFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT') throw new NotRegularFile(path, 'missing');
    if (code === 'ELOOP') throw new NotRegularFile(path, 'symlink');
    throw fromSystemError(error, 'open', path);
  }
  const stats = await handle.stat();
  if (!stats.isFile()) {
    await handle.close();
    throw new NotRegularFile(path, entryType(stats));
  }
  return { handle, sizeBytes: stats.size };
}

/** Reads exactly `buffer.length` bytes at `positionBytes`; a short read means the file shrank. */
export async function readExactly(handle: FileHandle, buffer: Uint8Array, positionBytes: number, path: string): Promise<void> {
  let doneBytes = 0;
  while (doneBytes < buffer.length) {
    const { bytesRead } = await handle.read(buffer, doneBytes, buffer.length - doneBytes, positionBytes + doneBytes).catch((error: unknown) => {
      throw fromSystemError(error, 'read', path);
    });
    if (bytesRead === 0) {
      throw new TidemarkError('IO', `${path} ended at ${positionBytes + doneBytes} bytes while being read`, 'it changed while in use; copy the image again');
    }
    doneBytes += bytesRead;
  }
}

/** Writes all of `data` at `positionBytes`. */
export async function writeExactly(handle: FileHandle, data: Uint8Array, positionBytes: number, path: string): Promise<void> {
  let doneBytes = 0;
  while (doneBytes < data.length) {
    const { bytesWritten } = await handle.write(data, doneBytes, data.length - doneBytes, positionBytes + doneBytes).catch((error: unknown) => {
      throw fromSystemError(error, 'write', path);
    });
    assert(bytesWritten > 0, 'a write makes progress');
    doneBytes += bytesWritten;
  }
}

/**
 * Syncs a directory so a create or rename inside it survives a crash, where the file system
 * takes a directory fsync; where it refuses one (EINVAL, ENOTSUP…) its renames are already
 * as durable as it makes them.
 */
export async function syncDirectoryIfSupported(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    if (!['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EPERM', 'EACCES', 'EISDIR', 'EBADF'].includes(errnoCode(error) ?? '')) {
      throw fromSystemError(error, 'sync directory', dir);
    }
  } finally {
    await handle?.close();
  }
}

/** Writes a whole file atomically: a temporary name beside it, fsync, rename, directory sync. */
export async function writeFileDurable(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.part`);
  try {
    const handle = await open(temporary, 'w', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw fromSystemError(error, 'write', path);
  }
  await syncDirectoryIfSupported(dirname(path));
}

/** Bytes an unprivileged user may still write on the file system of `dir`, and its type (statfs magic). */
export async function fileSystemOf(dir: string): Promise<{ freeBytes: number; type: number }> {
  try {
    const stats = await statfs(dir);
    return { freeBytes: stats.bavail * stats.bsize, type: stats.type };
  } catch (error) {
    throw fromSystemError(error, 'measure the free space of', dir);
  }
}

/** statfs magic numbers of file systems whose files must stay below 4 GiB. */
export const fatFileSystemTypes: ReadonlySet<number> = new Set([0x4d44 /* vfat, msdos */]);
