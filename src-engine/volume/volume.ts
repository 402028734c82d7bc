// Volume: a backend seen as regions, with write hooks (snapshot copy-on-write, realization,
// change tracking) that run before every write, and a write gate for point-in-time work.

import { assert, invariantViolated } from '../assert';
import { ioBytesMax } from '../constants';
import { TidemarkError } from '../errors';
import type { VolumeBackend } from './backend';
import { RegionGeometry } from './geometry';

/**
 * Runs before the backend sees a write to regions [firstRegion, lastRegion]. The write
 * proceeds only when every hook has resolved, so a hook may persist what it must (a
 * snapshot's old data, a MOOS bit) before the data lands. Hooks run in registration order.
 */
export interface WriteHook {
  readonly name: string;
  /** Undefined: nothing to wait for (the common case, which then costs no promise). */
  beforeWrite(firstRegion: number, lastRegion: number): Promise<void> | undefined;
  /**
   * Optional: regions about to be written (a replication batch, announced by `prepareWrites`).
   * A hook may do for all of them at once what `beforeWrite` would do for each (a snapshot
   * copies them aside with one sync), so that their writes find nothing left to do. Doing it
   * for a region that is then not written must be harmless: `beforeWrite` still runs on every
   * write.
   */
  prepareWrites?(regionIndexes: readonly number[]): Promise<void>;
}

/** Who writes to a locked volume: the pair's replication, at the pair's generation. */
export interface WriteAuth {
  readonly pairId: string;
  readonly generation: number;
}

/** A secondary's lock: writes are refused unless they carry this pair's auth at this generation. */
export interface WriteLock extends WriteAuth {
  /** Why writes are refused, and what to do: one line for the person who tried. */
  readonly message: string;
  readonly hint: string;
}

export interface VolumeOptions {
  /** A Tidemark id when the volume is registered in a home. */
  readonly volumeId?: string;
}

/** finishWrite's `nextHook` when what it waits for is the backend's write itself. */
const backendWritten = -1;

export class Volume {
  readonly geometry: RegionGeometry;
  readonly volumeId: string | undefined;
  /**
   * Replaced, never mutated: a write runs the array it found when it started, so adding or
   * removing a hook meanwhile cannot make it skip one (splicing a live array shifted the
   * hooks after the removed one under the running loop).
   */
  private hooks: readonly WriteHook[] = [];
  private writesInFlight = 0;
  private gateWaiters: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  private gateClosed = false;
  private closed = false;
  private writeLock: WriteLock | undefined;

  constructor(
    readonly backend: VolumeBackend,
    regionBytes: number,
    options: VolumeOptions = {},
  ) {
    this.geometry = new RegionGeometry(backend.sizeBytes, regionBytes);
    this.volumeId = options.volumeId;
  }

  get path(): string {
    return this.backend.path;
  }

  get sizeBytes(): number {
    return this.geometry.sizeBytes;
  }

  get regionBytes(): number {
    return this.geometry.regionBytes;
  }

  get regionCount(): number {
    return this.geometry.regionCount;
  }

  /**
   * Adds a hook; returns a function that removes it. Writes already past the gate keep the
   * hooks they started with; to know that no write runs a hook any more, add or remove it
   * inside `quiesced()`.
   */
  addWriteHook(hook: WriteHook): () => void {
    this.hooks = [...this.hooks, hook];
    return () => {
      this.hooks = this.hooks.filter((h) => h !== hook);
    };
  }

  /** Locks the volume (a pair's secondary until failover): only writes with the lock's auth pass. Undefined unlocks. */
  setWriteLock(lock: WriteLock | undefined): void {
    this.writeLock = lock;
  }

  get lockedBy(): WriteLock | undefined {
    return this.writeLock;
  }

  /** Throws as a write would: PERMISSION without the lock's auth, STALE at another generation. */
  checkWriteLock(auth: WriteAuth | undefined): void {
    const lock = this.writeLock;
    if (lock === undefined) return;
    if (auth === undefined || auth.pairId !== lock.pairId) throw new TidemarkError('PERMISSION', lock.message, lock.hint);
    if (auth.generation !== lock.generation) {
      throw new TidemarkError(
        'STALE',
        `write to ${this.path} carries generation ${auth.generation} of pair ${lock.pairId}, but the volume is at generation ${lock.generation}`,
        'the pair changed roles since this operation began (a failover?); check `tidemark pair show` and start again',
      );
    }
  }

  private checkSpan(offsetBytes: number, bytes: number): void {
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || !Number.isSafeInteger(bytes) || bytes < 0 || offsetBytes + bytes > this.sizeBytes) {
      throw new TidemarkError(
        'USAGE',
        `I/O of ${bytes} bytes at offset ${offsetBytes} is outside volume ${this.path} (${this.sizeBytes} bytes)`,
        'address bytes within the volume',
      );
    }
    // Hot path (every I/O): the message is built only when the check fails.
    if (bytes > ioBytesMax) invariantViolated(`one I/O of ${bytes} bytes within ${ioBytesMax}`);
    assert(!this.closed, 'I/O on a closed volume');
  }

  async read(offsetBytes: number, bytes: number): Promise<Buffer> {
    this.checkSpan(offsetBytes, bytes); // before allocating
    const buffer = Buffer.allocUnsafe(bytes);
    await this.backend.pread(buffer, offsetBytes);
    return buffer;
  }

  /** Reads target.length bytes at `offsetBytes` into `target` (a caller's reused buffer). */
  async readInto(target: Uint8Array, offsetBytes: number): Promise<void> {
    this.checkSpan(offsetBytes, target.length);
    await this.backend.pread(target, offsetBytes);
  }

  async readRegion(regionIndex: number): Promise<Buffer> {
    const span = this.geometry.region(regionIndex);
    return this.read(span.offsetBytes, span.bytes);
  }

  /** Writes `data` at `offsetBytes`; a locked volume takes only writes with its lock's `auth`. */
  async write(offsetBytes: number, data: Uint8Array, auth?: WriteAuth): Promise<void> {
    const pending = this.writeNow(offsetBytes, data, auth);
    if (pending) await pending;
  }

  /**
   * `write` for the hot path (every NBD WRITE): undefined when the write is done already — the
   * gate was open, no hook had anything to wait for and the backend wrote on this thread —
   * else a promise of the rest. A refused write (outside the volume, the wrong lock) throws
   * here; a failure after that rejects. No promise is made for a write that needs none.
   */
  writeNow(offsetBytes: number, data: Uint8Array, auth?: WriteAuth): Promise<void> | undefined {
    this.checkSpan(offsetBytes, data.length);
    this.checkWriteLock(auth);
    if (data.length === 0) return undefined;
    if (!this.tryEnterWrite()) return this.writeAfterGate(offsetBytes, data, auth);
    // Past the gate: leaveWrite runs once, here unless a promise carries the write on.
    let carried: Promise<void> | undefined;
    try {
      const { first, last } = this.geometry.regionsOf(offsetBytes, data.length);
      const hooks = this.hooks;
      for (let i = 0; i < hooks.length; i++) {
        const pending = hooks[i]!.beforeWrite(first, last);
        if (pending) return (carried = this.finishWrite(pending, hooks, i + 1, first, last, offsetBytes, data));
      }
      const written = this.backend.pwrite(data, offsetBytes);
      if (written) return (carried = this.finishWrite(written, hooks, backendWritten, first, last, offsetBytes, data));
      return undefined;
    } finally {
      if (carried === undefined) this.leaveWrite();
    }
  }

  /**
   * The rest of a write past the gate once `pending` settles: hooks from `nextHook` on (of the
   * array the write started with), then the backend — or nothing more when `pending` was the
   * backend's write (`nextHook` = backendWritten). Leaves the gate.
   */
  private async finishWrite(
    pending: Promise<void>,
    hooks: readonly WriteHook[],
    nextHook: number,
    first: number,
    last: number,
    offsetBytes: number,
    data: Uint8Array,
  ): Promise<void> {
    try {
      await pending;
      if (nextHook === backendWritten) return;
      for (let i = nextHook; i < hooks.length; i++) {
        const next = hooks[i]!.beforeWrite(first, last);
        if (next) await next;
      }
      const written = this.backend.pwrite(data, offsetBytes);
      if (written) await written;
    } finally {
      this.leaveWrite();
    }
  }

  /** A write that found the gate closed (a snapshot's instant): waits, then runs as any write. */
  private async writeAfterGate(offsetBytes: number, data: Uint8Array, auth: WriteAuth | undefined): Promise<void> {
    await this.enterWrite();
    try {
      this.checkWriteLock(auth); // the lock may have been set while this write waited at the gate
      const { first, last } = this.geometry.regionsOf(offsetBytes, data.length);
      for (const hook of this.hooks) {
        const pending = hook.beforeWrite(first, last);
        if (pending) await pending;
      }
      const written = this.backend.pwrite(data, offsetBytes);
      if (written) await written;
    } finally {
      this.leaveWrite();
    }
  }

  async writeRegion(regionIndex: number, data: Uint8Array, auth?: WriteAuth): Promise<void> {
    const span = this.geometry.region(regionIndex);
    if (data.length !== span.bytes) {
      throw new TidemarkError('USAGE', `region ${regionIndex} of ${this.path} holds ${span.bytes} bytes, got ${data.length}`, 'write whole regions');
    }
    await this.write(span.offsetBytes, data, auth);
  }

  /**
   * Announces writes to `regionIndexes` (each within the volume): every hook with
   * `prepareWrites` runs it, past the write gate as a write's hooks do (so not across a
   * snapshot's instant), all at once — preparing is an optimisation, not an ordering: the
   * writes themselves still run every hook, in registration order.
   */
  async prepareWrites(regionIndexes: readonly number[]): Promise<void> {
    for (const r of regionIndexes) {
      if (!(Number.isSafeInteger(r) && r >= 0 && r < this.regionCount)) {
        throw new TidemarkError('USAGE', `region ${r} is outside ${this.path} (${this.regionCount} regions)`, 'address regions within the volume');
      }
    }
    if (regionIndexes.length === 0) return;
    await this.enterWrite();
    try {
      await Promise.all(this.hooks.map((hook) => (hook.prepareWrites ? hook.prepareWrites(regionIndexes) : Promise.resolve())));
    } finally {
      this.leaveWrite();
    }
  }

  /**
   * Reclaims regions [firstRegion, endRegion) (seed 001: "releases the remote region for
   * re-use"): the write hooks run as for a write (a snapshot copies the old data aside), then
   * the bytes are deallocated (a hole) or, where that is not possible, overwritten with zeros.
   * Runs with writes held, so `afterReclaim` (clearing realization) sees no write in between.
   * Resolves true when a hole was punched.
   */
  async reclaim(firstRegion: number, endRegion: number, auth: WriteAuth | undefined, afterReclaim: () => Promise<void>): Promise<boolean> {
    if (!(
      Number.isSafeInteger(firstRegion) &&
      Number.isSafeInteger(endRegion) &&
      0 <= firstRegion &&
      firstRegion < endRegion &&
      endRegion <= this.regionCount
    )) {
      throw new TidemarkError(
        'USAGE',
        `regions [${firstRegion}, ${endRegion}) are outside ${this.path} (${this.regionCount} regions)`,
        'reclaim regions within the volume',
      );
    }
    this.checkWriteLock(auth);
    return this.quiesced(async () => {
      assert(!this.closed, 'reclaim on a closed volume');
      this.checkWriteLock(auth);
      for (const hook of this.hooks) await hook.beforeWrite(firstRegion, endRegion - 1);
      const offsetBytes = this.geometry.region(firstRegion).offsetBytes;
      const last = this.geometry.region(endRegion - 1);
      const bytes = last.offsetBytes + last.bytes - offsetBytes;
      const punched = (await this.backend.punchHole?.(offsetBytes, bytes)) ?? false;
      if (!punched) {
        const zeros = new Uint8Array(Math.min(bytes, 4 * 1024 * 1024));
        for (let done = 0; done < bytes; done += zeros.length)
          await this.backend.pwrite(zeros.subarray(0, Math.min(zeros.length, bytes - done)), offsetBytes + done);
      }
      await afterReclaim();
      return punched;
    });
  }

  async flush(): Promise<void> {
    await this.backend.flush();
  }

  /** enterWrite without waiting: false when the gate is closed (then await enterWrite). */
  private tryEnterWrite(): boolean {
    if (this.gateClosed || this.closed) return false;
    this.writesInFlight += 1;
    return true;
  }

  private async enterWrite(): Promise<void> {
    while (this.gateClosed) await new Promise<void>((resolve) => this.gateWaiters.push(resolve));
    if (this.closed) throw new TidemarkError('IO', `volume ${this.path} was closed while a write waited`, 'retry after reopening the volume');
    this.writesInFlight += 1;
  }

  private leaveWrite(): void {
    this.writesInFlight -= 1;
    assert(this.writesInFlight >= 0, 'writes in flight never negative');
    if (this.writesInFlight === 0) for (const wake of this.drainWaiters.splice(0)) wake();
  }

  /**
   * Holds new writes and waits for writes in flight to finish, then runs `work` with the
   * volume still: the point in time of a snapshot. Writes resume when `work` settles.
   */
  async quiesced<T>(work: () => Promise<T>): Promise<T> {
    while (this.gateClosed) await new Promise<void>((resolve) => this.gateWaiters.push(resolve));
    this.gateClosed = true;
    try {
      while (this.writesInFlight > 0) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
      return await work();
    } finally {
      this.gateClosed = false;
      for (const wake of this.gateWaiters.splice(0)) wake();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.quiesced(async () => {
      this.closed = true;
    });
    await this.backend.close();
  }
}
