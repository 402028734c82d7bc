// Seeding in a long-lived engine (the console's Seeding screen): image export, verify and
// import run as background tasks with live progress, one at a time per directory, and a
// pre-flight of the target directory (free space, FAT's 4 GiB file limit) before an export.

import { statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { TidemarkError, isTidemarkError } from '../errors';
import type { EventLog } from '../events';
import { exportImage, importImage, splitBytesDefault, verifyImage, type ImageProgress } from '../image';
import type { EndpointResolver, PairStore } from '../replication';

export type SeedingKind = 'export' | 'verify' | 'import';

export interface SeedingTask {
  readonly id: number;
  readonly kind: SeedingKind;
  readonly dir: string;
  /** Export: the source (pair or VOLREF); import: the target VOLREF; verify: null. */
  readonly volume: string | null;
  readonly running: boolean;
  readonly startedAtMs: number;
  readonly progress: ImageProgress | null;
  /** The command's --json document when it finished. */
  readonly result: Record<string, unknown> | null;
  readonly error: { code: string; message: string; hint: string } | null;
}

export interface ExportPreflight {
  readonly dir: string;
  readonly neededBytes: number;
  readonly availableBytes: number;
  readonly fileSystemType: number;
  readonly fat: boolean;
  readonly splitBytes: number;
  readonly ok: boolean;
  readonly problem: string | null;
}

const fatMagic = 0x4d44; // vfat / msdos: files below 4 GiB
const fatFileBytesMax = 4 * 1024 ** 3 - 1;

/** statfs of `dir`, or of its nearest existing parent (the directory may not exist yet). */
async function statfsNearest(dir: string): Promise<{ availableBytes: number; type: number }> {
  for (let path = resolve(dir); ; path = dirname(path)) {
    try {
      const stats = await statfs(path);
      return { availableBytes: stats.bavail * stats.bsize, type: stats.type };
    } catch (error) {
      if (dirname(path) === path) throw error;
    }
  }
}

export class SeedingOperations {
  private readonly tasks = new Map<number, { task: SeedingTask; controller: AbortController; done: Promise<void> }>();
  private nextId = 1;

  constructor(
    private readonly store: PairStore,
    private readonly resolver: EndpointResolver,
    private readonly events: EventLog,
  ) {}

  list(): SeedingTask[] {
    return [...this.tasks.values()].map((t) => t.task).sort((a, b) => b.id - a.id);
  }

  /** What an export into `dir` needs (the source's realized bytes, an upper bound) and what the media has. */
  async preflight(source: string, dir: string, splitBytes = splitBytesDefault): Promise<ExportPreflight> {
    const record = await this.store.get(source).catch(() => undefined);
    const endpoint = await this.resolver.resolve(record ? record.primary.volref : source);
    const info = await endpoint.agent.volumeInfo(endpoint.path, record ? { regionBytes: record.regionBytes } : {});
    const neededBytes = Math.min(info.sizeBytes, info.realizedRegions * info.regionBytes);
    const { availableBytes, type } = await statfsNearest(dir);
    const fat = type === fatMagic;
    const problem =
      neededBytes > availableBytes
        ? `the media has ${availableBytes} bytes free, the image needs up to ${neededBytes}`
        : fat && splitBytes > fatFileBytesMax
          ? 'the media is FAT: data files must stay below 4 GiB (use the default split)'
          : null;
    return { dir: resolve(dir), neededBytes, availableBytes, fileSystemType: type, fat, splitBytes, ok: problem === null, problem };
  }

  startExport(source: string, dir: string, splitBytes?: number): SeedingTask {
    return this.start('export', dir, source, (signal, onProgress) =>
      exportImage({ source, dir, resolver: this.resolver, pairs: this.store, splitBytes, signal, onProgress }),
    );
  }

  startVerify(dir: string): SeedingTask {
    return this.start('verify', dir, null, async (signal, onProgress) => {
      const result = await verifyImage(dir, { signal, onProgress });
      return result;
    });
  }

  startImport(dir: string, target: string): SeedingTask {
    return this.start('import', dir, target, (signal, onProgress) =>
      importImage({ dir, target, resolver: this.resolver, pairs: this.store, signal, onProgress }),
    );
  }

  async cancel(id: number): Promise<SeedingTask> {
    const entry = this.tasks.get(id);
    if (!entry) throw new TidemarkError('NOT_FOUND', `no seeding task ${id}`, 'refresh the Seeding screen');
    entry.controller.abort();
    await entry.done;
    return entry.task;
  }

  private start(
    kind: SeedingKind,
    dir: string,
    volume: string | null,
    work: (signal: AbortSignal, onProgress: (p: ImageProgress) => void) => Promise<object>,
  ): SeedingTask {
    const absolute = resolve(dir);
    if ([...this.tasks.values()].some((t) => t.task.running && t.task.dir === absolute)) {
      throw new TidemarkError('BUSY', `a seeding task is already working in ${absolute}`, 'wait for it to finish, or cancel it');
    }
    const id = this.nextId++;
    const controller = new AbortController();
    const entry = {
      task: { id, kind, dir: absolute, volume, running: true, startedAtMs: Date.now(), progress: null, result: null, error: null } as SeedingTask,
      controller,
      done: Promise.resolve(),
    };
    this.tasks.set(id, entry);
    this.events.emit({ severity: 'info', pair: null, kind: `image.${kind}.started`, message: `image ${kind} started: ${absolute}` });
    entry.done = work(controller.signal, (progress) => (entry.task = { ...entry.task, progress })).then(
      (result) => {
        entry.task = { ...entry.task, running: false, result: result as Record<string, unknown> };
        this.events.emit({ severity: 'info', pair: null, kind: `image.${kind}.finished`, message: `image ${kind} finished: ${absolute}` });
      },
      (error: unknown) => {
        const e = isTidemarkError(error) ? error : new TidemarkError('IO', error instanceof Error ? error.message : String(error), 'see the log');
        entry.task = { ...entry.task, running: false, error: { code: e.code, message: e.message, hint: e.hint } };
        this.events.emit({ severity: e.code === 'CANCELLED' ? 'warning' : 'error', pair: null, kind: `image.${kind}.stopped`, message: e.oneLine() });
      },
    );
    return entry.task;
  }

  async dispose(): Promise<void> {
    for (const entry of this.tasks.values()) entry.controller.abort();
    await Promise.all([...this.tasks.values()].map((t) => t.done));
  }
}
