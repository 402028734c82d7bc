// Volume backends in the nbdkit shape: a few required operations (size, pread, pwrite,
// flush, close) and optional capabilities. Files and block devices share one implementation.

import { execFile } from 'node:child_process';
import { constants as fsConstants, read, write, writeSync } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { SyncWritePolicy } from './sync-write-policy';

export interface VolumeBackend {
  readonly path: string;
  readonly kind: 'file' | 'block';
  readonly sizeBytes: number;
  /** Reads exactly buffer.length bytes at offset; bytes past the end of a short file read as zero. */
  pread(buffer: Uint8Array, offsetBytes: number): Promise<void>;
  /** Undefined when written synchronously (nothing to wait for). */
  pwrite(buffer: Uint8Array, offsetBytes: number): Promise<void> | undefined;
  /** Makes completed writes durable (fdatasync). */
  flush(): Promise<void>;
  /** Optional: deallocates a byte range so it reads as zeros; false when not possible. */
  punchHole?(offsetBytes: number, bytes: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Splits a Linux dev_t (as Node reports it) into major and minor numbers. */
export function deviceNumbers(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

/** Size of a block device from sysfs (in 512-byte sectors, whatever the logical block size). */
export async function blockDeviceBytes(path: string, rdev: number, sysfsRoot = '/sys'): Promise<number> {
  const { major, minor } = deviceNumbers(rdev);
  const sizePath = `${sysfsRoot}/dev/block/${major}:${minor}/size`;
  try {
    const sectors = Number((await readFile(sizePath, 'utf8')).trim());
    if (!Number.isSafeInteger(sectors)) throw new Error(`unparsable size "${sectors}"`);
    return sectors * 512;
  } catch (error) {
    throw new TidemarkError('IO', `cannot read the size of block device ${path} from ${sizePath}`, 'check that sysfs is mounted and the device exists', {
      cause: error,
    });
  }
}

// The callback API on the handle's descriptor: FileHandle.read/write cost about twice as much
// per call (a promise wrapper and a request object each), which small NBD I/O feels.
function readAt(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buffer, offset, length, position, (error, bytes) => (error ? reject(error) : resolve(bytes))));
}

function writeAt(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => write(fd, buffer, offset, length, position, (error, bytes) => (error ? reject(error) : resolve(bytes))));
}

/**
 * Writes up to this size are handed to the kernel on the calling thread (`pwrite` into the
 * page cache: a few microseconds for 4 KiB, 0.1–0.3 ms for 1 MiB) instead of through libuv's
 * thread pool, whose hand-off (queue, wake a worker, wake the loop on completion) cost more
 * than the copy: it was the largest single cost of small NBD writes, and on two vCPUs the
 * workers' wake-ups preempt the loop that reads the next request (docs/nbd.md: 1 MiB writes
 * 0.76–0.79 of nbdkit through the pool, 0.98–1.0 on the loop, same session). Larger writes
 * still take the pool so one request never holds the loop for long. Durability is unchanged:
 * either way the bytes are in the page cache when the write resolves, and `flush` syncs.
 */
export const syncWriteBytesMax = 1024 * 1024;

export class FileBackend implements VolumeBackend {
  /** When writes up to syncWriteBytesMax may run on this thread (they back off to the pool after stalls). */
  private readonly syncWrites = new SyncWritePolicy();

  /** Writes done synchronously, how many of them stalled, and the back-offs to the pool (tests, diagnostics). */
  get writeStats(): { readonly syncWrites: number; readonly stalls: number; readonly backoffs: number } {
    return this.syncWrites.stats;
  }

  private constructor(
    readonly path: string,
    readonly kind: 'file' | 'block',
    readonly sizeBytes: number,
    private readonly handle: FileHandle,
    readonly readOnly: boolean,
  ) {}

  /** Device and inode of the open file (is it still the file at `path`?). */
  async identity(): Promise<{ dev: number; ino: number }> {
    const { dev, ino } = await this.handle.stat();
    return { dev, ino };
  }

  /**
   * Opens a regular file or a block device. `sizeBytes` overrides the size of a regular file
   * (a sparse file may be shorter on disk than the volume it holds); other paths are refused.
   */
  static async open(path: string, options: { readOnly?: boolean } = {}): Promise<FileBackend> {
    const info = await stat(path).catch((error: unknown) => {
      throw fromSystemError(error, 'open volume', path);
    });
    if (!info.isFile() && !info.isBlockDevice()) {
      const what = info.isDirectory()
        ? 'a directory'
        : info.isCharacterDevice()
          ? 'a character device'
          : info.isFIFO()
            ? 'a FIFO'
            : info.isSocket()
              ? 'a socket'
              : 'not a regular file';
      throw new TidemarkError('NOT_A_VOLUME', `cannot use ${path} as a volume: it is ${what}`, 'give the path of a regular file or a block device');
    }
    const readOnly = options.readOnly ?? false;
    let handle: FileHandle;
    try {
      handle = await open(path, readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR);
    } catch (error) {
      throw fromSystemError(error, 'open volume', path);
    }
    try {
      const kind = info.isBlockDevice() ? 'block' : 'file';
      const sizeBytes = kind === 'block' ? await blockDeviceBytes(path, info.rdev) : info.size;
      return new FileBackend(path, kind, sizeBytes, handle, readOnly);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async pread(buffer: Uint8Array, offsetBytes: number): Promise<void> {
    let done = 0;
    try {
      while (done < buffer.length) {
        const bytesRead = await readAt(this.handle.fd, buffer, done, buffer.length - done, offsetBytes + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (error) {
      throw fromSystemError(error, 'read volume', this.path);
    }
    if (done < buffer.length) buffer.fill(0, done);
  }

  /** Undefined when the bytes went to the kernel on this thread (up to syncWriteBytesMax): nothing to wait for. Errors reject, never throw. */
  pwrite(buffer: Uint8Array, offsetBytes: number): Promise<void> | undefined {
    if (this.readOnly) return Promise.reject(new TidemarkError('PERMISSION', `volume ${this.path} is open read-only`, 'open it for writing'));
    try {
      if (buffer.length <= syncWriteBytesMax && this.trySyncWrite(buffer, offsetBytes)) return undefined;
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.pwriteThroughPool(buffer, offsetBytes);
  }

  private async pwriteThroughPool(buffer: Uint8Array, offsetBytes: number): Promise<void> {
    let done = 0;
    try {
      while (done < buffer.length) {
        const bytesWritten = await writeAt(this.handle.fd, buffer, done, buffer.length - done, offsetBytes + done);
        done += bytesWritten;
      }
    } catch (error) {
      throw fromSystemError(error, 'write volume', this.path);
    }
  }

  /**
   * Writes a buffer of up to syncWriteBytesMax on this thread unless a recent synchronous write stalled
   * (SyncWritePolicy); false when it did not (the caller writes through the pool).
   */
  private trySyncWrite(buffer: Uint8Array, offsetBytes: number): boolean {
    const startMs = performance.now();
    if (!this.syncWrites.maySyncWrite(startMs)) return false;
    let done = 0;
    try {
      while (done < buffer.length) done += writeSync(this.handle.fd, buffer, done, buffer.length - done, offsetBytes + done);
    } catch (error) {
      throw fromSystemError(error, 'write volume', this.path);
    }
    this.syncWrites.wrote(startMs, performance.now(), buffer.length);
    return true;
  }

  /**
   * Deallocates bytes [offsetBytes, +bytes) of a file so they read as zeros (util-linux
   * `fallocate --punch-hole --keep-size`); false where that is not possible (a block device, no
   * tool, a file system without holes): the caller writes zeros instead.
   */
  async punchHole(offsetBytes: number, bytes: number): Promise<boolean> {
    if (this.kind !== 'file' || this.readOnly) return false;
    const args = ['--punch-hole', '--keep-size', '--offset', String(offsetBytes), '--length', String(bytes), this.path];
    return new Promise<boolean>((resolve) => {
      execFile('fallocate', args, { timeout: 60_000 }, (error) => resolve(error === null));
    });
  }

  async flush(): Promise<void> {
    try {
      await this.handle.datasync();
    } catch (error) {
      if (errnoCode(error) === 'EINVAL' && this.readOnly) return;
      throw fromSystemError(error, 'flush volume', this.path);
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
