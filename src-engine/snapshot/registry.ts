// The snapshots of one volume, each in `<directory>/<snapshotId>/` (docs/home-layout.md). The
// directory is the registry: a snapshot exists once its record is written, which
// createSnapshot does last, so no index can disagree with what is on disk. Every snapshot is
// reopened with its volume, so copy-on-write keeps protecting it across restarts.

import { randomUUID } from 'node:crypto';
import { access, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from '../assert';
import { snapshotLabelCharsMax, snapshotsPerVolumeMax } from '../constants';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { createDirectories, syncDirectory } from '../fsync';
import type { Volume } from '../volume';
import { createSnapshot, openSnapshot, snapshotIdPattern, snapshotRecordPath, type ReflinkPolicy, type Snapshot } from './snapshot';

/** A snapshot directory being deleted: renamed first, so a crash never leaves half a snapshot under its id. */
const deletingPrefix = '.deleting-';

export interface SnapshotRegistryOptions {
  readonly reflink?: ReflinkPolicy;
  /** Renames a snapshot directory (a delete's commit point): fs.rename; tests pass one that fails. */
  readonly rename?: (from: string, to: string) => Promise<void>;
}

/** A snapshot that could not be reopened; it can only be deleted. */
export interface DamagedSnapshot {
  readonly snapshotId: string;
  readonly error: TidemarkError;
}

/** Refuses anything but a snapshot id (a UUID), so an id never names another path. */
export function checkSnapshotId(snapshotId: string): void {
  if (!snapshotIdPattern.test(snapshotId)) {
    throw new TidemarkError('USAGE', `"${snapshotId.slice(0, 64)}" is not a snapshot id`, 'pass the snapshotId that creating or listing the snapshot returned');
  }
}

export function checkSnapshotLabel(label: string): void {
  if (label.length > snapshotLabelCharsMax) {
    throw new TidemarkError('USAGE', `a snapshot label has at most ${snapshotLabelCharsMax} characters, got ${label.length}`, 'use a shorter label');
  }
}

async function entriesOf(directory: string): Promise<string[]> {
  try {
    return await readdir(directory);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw fromSystemError(error, 'list snapshots in', directory);
  }
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

export class SnapshotRegistry {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly damaged = new Map<string, TidemarkError>();
  /** Creates and deletes run one at a time (the count limit and the directory stay consistent). */
  private serial: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly volume: Volume,
    readonly directory: string,
    private readonly reflink: ReflinkPolicy,
    private readonly rename: (from: string, to: string) => Promise<void>,
  ) {}

  /** Reopens every snapshot of `volume` kept in `directory`; the volume must not be written yet. */
  static async open(volume: Volume, directory: string, options: SnapshotRegistryOptions = {}): Promise<SnapshotRegistry> {
    const registry = new SnapshotRegistry(volume, directory, options.reflink ?? 'auto', options.rename ?? rename);
    try {
      await registry.load();
    } catch (error) {
      await registry.close();
      throw error;
    }
    return registry;
  }

  private async load(): Promise<void> {
    for (const name of await entriesOf(this.directory)) {
      const path = join(this.directory, name);
      if (name.startsWith(deletingPrefix)) await rm(path, { recursive: true, force: true });
      if (!snapshotIdPattern.test(name)) continue;
      // No record: createSnapshot was interrupted by a crash and never returned this snapshot.
      if (!(await exists(snapshotRecordPath(path)))) await rm(path, { recursive: true, force: true });
      else await this.reopen(name, path);
    }
  }

  private async reopen(snapshotId: string, path: string): Promise<void> {
    try {
      const snapshot = await openSnapshot(this.volume, path);
      this.snapshots.set(snapshotId, snapshot);
      if (snapshot.record.snapshotId !== snapshotId) {
        throw new TidemarkError('METADATA_CORRUPT', `snapshot directory ${path} holds snapshot ${snapshot.record.snapshotId}`, 'delete this snapshot');
      }
    } catch (error) {
      // A damaged snapshot must not keep its volume from opening; it can still be deleted.
      if (!(error instanceof TidemarkError) || error.code === 'INVARIANT') throw error;
      await this.snapshots.get(snapshotId)?.close();
      this.snapshots.delete(snapshotId);
      this.damaged.set(snapshotId, error);
    }
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    assert(!this.closed, 'snapshot registry used after close');
    const run = this.serial.then(work, work);
    this.serial = run.catch(() => undefined);
    return run;
  }

  /** Takes a snapshot (crash-consistent: createSnapshot holds the volume's writes while it does). */
  /** `atPointInTime`: see CreateSnapshotOptions. */
  async create(label = '', atPointInTime?: () => Promise<void>): Promise<Snapshot> {
    checkSnapshotLabel(label);
    return this.exclusive(async () => {
      if (this.snapshots.size + this.damaged.size >= snapshotsPerVolumeMax) {
        throw new TidemarkError(
          'USAGE',
          `volume ${this.volume.path} already has ${snapshotsPerVolumeMax} snapshots, the most one volume may have`,
          'delete snapshots that are no longer needed',
        );
      }
      const snapshotId = randomUUID();
      await createDirectories(this.directory, 0o700);
      const snapshot = await createSnapshot(this.volume, join(this.directory, snapshotId), { label, snapshotId, reflink: this.reflink, atPointInTime });
      this.snapshots.set(snapshotId, snapshot);
      return snapshot;
    });
  }

  /** The snapshot `snapshotId`: NOT_FOUND when there is none, its error when it is damaged. */
  get(snapshotId: string): Snapshot {
    checkSnapshotId(snapshotId);
    const snapshot = this.snapshots.get(snapshotId);
    if (snapshot) return snapshot;
    const damage = this.damaged.get(snapshotId);
    if (damage) throw damage;
    throw this.notFound(snapshotId);
  }

  private notFound(snapshotId: string): TidemarkError {
    return new TidemarkError(
      'NOT_FOUND',
      `volume ${this.volume.path} has no snapshot ${snapshotId}`,
      'list the snapshots of the volume; this one may have been deleted',
    );
  }

  list(): { snapshots: Snapshot[]; damaged: DamagedSnapshot[] } {
    const snapshots = [...this.snapshots.values()].sort((a, b) => a.record.createdAt.localeCompare(b.record.createdAt));
    return { snapshots, damaged: [...this.damaged].map(([snapshotId, error]) => ({ snapshotId, error })) };
  }

  /**
   * Deletes a snapshot, damaged ones included. Moving its directory away from its id is the
   * commit point, and the copy-on-write hook goes only once that move is durable: a delete
   * that fails leaves the snapshot listed and protected, and no restart can bring back a
   * snapshot whose hook was gone while the volume was written. Reads of it that are still
   * running fail with NOT_FOUND (Snapshot.checkOpen).
   */
  async delete(snapshotId: string): Promise<void> {
    checkSnapshotId(snapshotId);
    return this.exclusive(async () => {
      const snapshot = this.snapshots.get(snapshotId);
      if (!snapshot && !this.damaged.has(snapshotId)) throw this.notFound(snapshotId);
      const trash = await this.moveAside(snapshotId);
      this.snapshots.delete(snapshotId);
      this.damaged.delete(snapshotId);
      try {
        await snapshot?.close({ deleted: true });
      } finally {
        await rm(trash, { recursive: true, force: true });
      }
    });
  }

  /** Renames the snapshot's directory to its `.deleting-` name and makes that durable; on failure it stays under its id. */
  private async moveAside(snapshotId: string): Promise<string> {
    const path = join(this.directory, snapshotId);
    const trash = join(this.directory, `${deletingPrefix}${snapshotId}`);
    try {
      await this.rename(path, trash);
    } catch (error) {
      throw this.notDeleted(snapshotId, fromSystemError(error, 'rename snapshot directory', path));
    }
    try {
      await syncDirectory(this.directory);
    } catch (error) {
      // A crash could still undo the rename, and the snapshot must not come back unprotected: keep it.
      await this.rename(trash, path).catch(() => undefined);
      throw this.notDeleted(snapshotId, fromSystemError(error, 'sync snapshot directory', this.directory));
    }
    return trash;
  }

  private notDeleted(snapshotId: string, cause: TidemarkError): TidemarkError {
    return new TidemarkError(
      cause.code,
      `cannot delete snapshot ${snapshotId} of ${this.volume.path}: ${cause.message}; the snapshot is kept and still protected`,
      cause.hint,
      { cause },
    );
  }

  /** Closes every snapshot (keeping them on disk); not from inside `volume.quiesced()`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.serial;
    const results = await Promise.allSettled([...this.snapshots.values()].map((s) => s.close()));
    this.snapshots.clear();
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  }
}
