// Conveys regions to the secondary with a bounded number of writes in flight and a bounded
// window of written-but-uncommitted regions. A commit flushes the secondary, then records
// progress durably (the phase's `commit`): a crash or cancel redoes at most the window.

import { assert } from '../../assert';
import { TidemarkError } from '../../errors';
import type { WriteAuth } from '../../agent';
import type { VolumeEndpoint } from '../endpoints';
import type { TokenBucket } from '../../token-bucket';

export interface ConveyorOptions {
  readonly secondary: VolumeEndpoint;
  readonly auth: WriteAuth;
  readonly writesInFlightMax: number;
  /** W: regions written but not yet committed before sending waits for a commit. */
  readonly windowRegions: number;
  readonly commitIntervalMs: number;
  readonly bucket: TokenBucket | undefined;
  readonly signal: AbortSignal | undefined;
  /** Records progress durably; `acked` were written and flushed since the last commit, `inFlight` are not yet done. */
  readonly commit: (acked: readonly number[], inFlight: ReadonlySet<number>) => Promise<void>;
  readonly onWritten: (regionIndex: number, bytes: number) => void;
}

export class Conveyor {
  /** Regions sent and not acknowledged: writes in flight, and any that failed (never counted as done). */
  private readonly inFlight = new Set<number>();
  private readonly writes = new Set<Promise<void>>();
  private acked: number[] = [];
  private failure: unknown;
  private lastCommitMs = performance.now();
  private committing: Promise<void> | undefined;

  constructor(private readonly options: ConveyorOptions) {
    assert(options.writesInFlightMax >= 1 && options.windowRegions >= options.writesInFlightMax, 'a window of at least the writes in flight');
  }

  private checkFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Sends one region; resolves when another may be sent (its write runs on). */
  async send(regionIndex: number, data: Uint8Array): Promise<void> {
    this.checkFailed();
    const { signal, bucket } = this.options;
    if (signal?.aborted) throw cancelled();
    await bucket?.take(data.length, signal);
    while (this.inFlight.size >= this.options.writesInFlightMax) await this.oneSettled();
    while (this.inFlight.size + this.acked.length >= this.options.windowRegions) {
      if (this.inFlight.size > 0 && this.acked.length === 0) await this.oneSettled();
      else await this.commit();
    }
    this.checkFailed();
    this.inFlight.add(regionIndex);
    const { secondary, auth } = this.options;
    const write = secondary.agent.writeRegion(secondary.path, regionIndex, data, { auth }).then(
      () => {
        this.inFlight.delete(regionIndex);
        this.acked.push(regionIndex);
        this.options.onWritten(regionIndex, data.length);
      },
      (error: unknown) => {
        // Stays "in flight" (not done): a commit never moves the cursor past a failed region.
        this.failure ??= error;
      },
    );
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
    if (performance.now() - this.lastCommitMs >= this.options.commitIntervalMs && this.acked.length > 0) await this.commit();
  }

  private async oneSettled(): Promise<void> {
    if (this.writes.size > 0) await Promise.race(this.writes);
    this.checkFailed();
  }

  /** Flushes the secondary, then records what it holds durably. */
  async commit(): Promise<void> {
    while (this.committing) await this.committing;
    const acked = this.acked;
    const inFlight = new Set(this.inFlight);
    this.acked = [];
    this.committing = (async () => {
      if (acked.length > 0) await this.options.secondary.agent.flush(this.options.secondary.path);
      await this.options.commit(acked, inFlight);
      this.lastCommitMs = performance.now();
    })();
    try {
      await this.committing;
    } catch (error) {
      this.acked = [...acked, ...this.acked]; // not recorded: they are done again, never lost
      throw error;
    } finally {
      this.committing = undefined;
    }
  }

  /** Waits for every write, then commits what landed; rethrows the first failure after committing the rest. */
  async drain(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
    await this.commit();
    this.checkFailed();
  }

  /** After a failure or cancel: settles what is in flight and commits what landed, never throwing over the cause. */
  async settle(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
    await this.commit().catch(() => undefined);
  }
}

export function cancelled(): TidemarkError {
  return new TidemarkError('CANCELLED', 'cancelled', '');
}

/** Waits `ms`; rejects with CANCELLED as soon as `signal` aborts. */
export function sleepMs(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
