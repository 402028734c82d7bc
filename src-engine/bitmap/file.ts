// The file a persistent bitmap lives in: a tiny positional-I/O port, so tests can inject
// crashes and faults (test/sim) while production uses a real file with fdatasync.

import { open, type FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../errors';

export interface BitmapFile {
  readonly path: string;
  sizeBytes(): Promise<number>;
  /** Reads up to `length` bytes at `offset`; returns how many were read (short at EOF). */
  read(buffer: Uint8Array, offset: number): Promise<number>;
  write(buffer: Uint8Array, offset: number): Promise<void>;
  /** Makes every completed write durable (fdatasync). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export class NodeBitmapFile implements BitmapFile {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string, mode: 'r' | 'r+'): Promise<NodeBitmapFile> {
    try {
      return new NodeBitmapFile(path, await open(path, mode));
    } catch (error) {
      throw fromSystemError(error, 'open bitmap', path);
    }
  }

  async sizeBytes(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  async read(buffer: Uint8Array, offset: number): Promise<number> {
    let done = 0;
    while (done < buffer.length) {
      const { bytesRead } = await this.handle.read(buffer, done, buffer.length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  async write(buffer: Uint8Array, offset: number): Promise<void> {
    try {
      let done = 0;
      while (done < buffer.length) {
        const { bytesWritten } = await this.handle.write(buffer, done, buffer.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (error) {
      throw fromSystemError(error, 'write bitmap', this.path);
    }
  }

  async sync(): Promise<void> {
    try {
      await this.handle.datasync();
    } catch (error) {
      throw fromSystemError(error, 'sync bitmap', this.path);
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
