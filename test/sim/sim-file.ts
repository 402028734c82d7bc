// A simulated bitmap file for crash tests: writes land in a volatile image and reach the
// durable image only on sync. A crash can be armed to strike during the Nth write (that
// write is torn to a prefix) and the test then chooses which image a restart sees. Syncs
// can be made to fail (EIO): the writes then stay unsynced, as after a real fsync error,
// where writeback may still put any of them on disk later.

import type { BitmapFile } from '../../src-engine/bitmap';

export class CrashError extends Error {
  constructor() {
    super('simulated crash');
  }
}

/** What a failed fdatasync reports. */
export class SyncFailure extends Error {
  readonly code = 'EIO';
  constructor() {
    super('simulated fdatasync failure (EIO)');
  }
}

export class SimFile implements BitmapFile {
  readonly path = '/sim/bitmap.tmbm';
  /** What the OS holds now (every write applied). */
  volatile = new Uint8Array(0);
  /** What survives power loss (as of the last sync). */
  durable = new Uint8Array(0);
  writes = 0;
  /** Completed writes since the last sync: a crash may persist any subset of them. */
  unsynced: { offset: number; data: Uint8Array }[] = [];
  syncs = 0;
  private crashAtWrite = -1;
  private tornBytes = 0;
  crashed = false;
  /** Decides, per sync attempt (0, 1, …), whether it fails with EIO. */
  failSync: ((attempt: number) => boolean) | undefined;
  syncAttempts = 0;
  syncFailures = 0;

  /** The `n`th write from now (0 = next) keeps only its first `tornBytes` bytes, then the process "dies". */
  armCrash(n: number, tornBytes: number): void {
    this.crashAtWrite = this.writes + n;
    this.tornBytes = tornBytes;
  }

  async sizeBytes(): Promise<number> {
    return this.volatile.length;
  }

  async read(buffer: Uint8Array, offset: number): Promise<number> {
    const available = Math.max(0, Math.min(buffer.length, this.volatile.length - offset));
    buffer.set(this.volatile.subarray(offset, offset + available));
    return available;
  }

  private apply(buffer: Uint8Array, offset: number): void {
    if (offset + buffer.length > this.volatile.length) {
      const grown = new Uint8Array(offset + buffer.length);
      grown.set(this.volatile);
      this.volatile = grown;
    }
    this.volatile.set(buffer, offset);
  }

  async write(buffer: Uint8Array, offset: number): Promise<void> {
    if (this.crashed) throw new CrashError();
    if (this.writes === this.crashAtWrite) {
      this.crashed = true;
      const torn = buffer.slice(0, this.tornBytes);
      this.apply(torn, offset);
      // What reached the disk of a torn write is one more write a power loss may keep.
      this.unsynced.push({ offset, data: torn });
      throw new CrashError();
    }
    this.writes += 1;
    this.apply(buffer, offset);
    this.unsynced.push({ offset, data: buffer.slice() });
  }

  async sync(): Promise<void> {
    if (this.crashed) throw new CrashError();
    if (this.failSync?.(this.syncAttempts++)) {
      // Nothing becomes durable, nothing is forgotten: the writes stay unsynced.
      this.syncFailures += 1;
      throw new SyncFailure();
    }
    this.syncs += 1;
    this.durable = this.volatile.slice();
    this.unsynced = [];
  }

  /** The durable image plus the unsynced writes that `keep` selects (by index). */
  imageWith(keep: (writeIndex: number) => boolean): Uint8Array {
    const image = new Uint8Array(Math.max(this.durable.length, ...this.unsynced.map((w) => w.offset + w.data.length)));
    image.set(this.durable);
    this.unsynced.forEach((w, i) => keep(i) && image.set(w.data, w.offset));
    return image;
  }

  async close(): Promise<void> {}

  /** A new file holding `image` (the state a restart finds). */
  static from(image: Uint8Array): SimFile {
    const file = new SimFile();
    file.volatile = image.slice();
    file.durable = image.slice();
    return file;
  }
}
