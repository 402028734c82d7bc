// A pool of signature worker threads. Work goes out in batches of regions; each worker keeps
// two batches in flight so it never waits for the main thread; memory is bounded by
// workers × chunk bytes whatever the region size.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { assert } from '../assert';
import { signatureBatchBytesMax, signatureChunkBytes, signatureWorkersMax } from '../constants';
import { TidemarkError, fromSystemError } from '../errors';
import { signatureBytes, type HashAlgorithm } from './algorithms';
import type { RegionLocation } from './read-hash';
import type { WorkerRequest, WorkerResponse } from './worker';
import { signatureWorkerSource } from './worker-source';

export interface RegionToSign {
  readonly regionIndex: number;
  readonly location: RegionLocation;
}

export interface SignatureBatch {
  readonly regionIndexes: readonly number[];
  /** regionIndexes.length signatures, back to back. */
  readonly signatures: Uint8Array;
}

export interface SignProgress {
  readonly regionsDone: number;
  readonly bytesDone: number;
}

export interface SignOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: SignProgress) => void;
  readonly batchBytesMax?: number;
}

interface PendingBatch {
  readonly regionIndexes: number[];
  readonly bytes: number;
  readonly settle: (response: WorkerResponse) => void;
}

const batchesInFlightPerWorker = 2;

/** Resolves when `thread` says it is ready; rejects if it fails or exits first. */
function whenReady(thread: Worker): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (error?: Error) => {
      thread.off('message', onMessage).off('error', onError).off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    const onMessage = () => settle();
    const onError = (error: Error) => settle(error);
    const onExit = (code: number) => settle(new Error(`it exited with code ${code} before it was ready`));
    thread.on('message', onMessage).on('error', onError).on('exit', onExit);
  });
}

/**
 * Starts `count` threads running `source` (CommonJS, evaluated) and waits until each is ready.
 * If any fails or exits first, every thread started is terminated and the error names why.
 */
export async function startWorkerThreads(source: string, workerData: unknown, count: number): Promise<Worker[]> {
  const threads = Array.from({ length: count }, () => new Worker(source, { eval: true, workerData }));
  const outcomes = await Promise.allSettled(threads.map(whenReady));
  const failure = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (!failure) return threads;
  await Promise.all(threads.map((thread) => thread.terminate()));
  const reason = failure.reason instanceof Error ? failure.reason.message : String(failure.reason);
  throw new TidemarkError('IO', `cannot start a signature worker: ${reason}`, 'retry; if it persists, run with TIDEMARK_DEBUG=1 and report it', {
    cause: failure.reason,
  });
}

class PoolWorker {
  readonly pending = new Map<number, PendingBatch>();
  private failure: Error | undefined;

  constructor(readonly thread: Worker) {
    thread.on('message', (response: WorkerResponse) => {
      if (response.kind === 'ready') return;
      const batch = this.pending.get(response.batchId);
      assert(batch !== undefined, `worker answered unknown batch ${response.batchId}`);
      this.pending.delete(response.batchId);
      batch.settle(response);
    });
    thread.on('error', (error) => this.failAll(error));
    thread.on('exit', (code) => this.failAll(new Error(`signature worker exited with code ${code}`)));
  }

  private failAll(error: Error): void {
    this.failure ??= error;
    for (const [batchId, batch] of this.pending) {
      batch.settle({ kind: 'failed', batchId, code: undefined, message: error.message, path: undefined });
    }
    this.pending.clear();
  }

  get usable(): boolean {
    return this.failure === undefined;
  }

  send(batchId: number, locations: RegionLocation[], batch: PendingBatch): void {
    this.pending.set(batchId, batch);
    this.thread.postMessage({ kind: 'batch', batchId, locations } satisfies WorkerRequest);
  }

  /** Closes the worker's descriptors once the batches sent so far are done. */
  release(): void {
    if (this.usable) this.thread.postMessage({ kind: 'release' } satisfies WorkerRequest);
  }
}

export class SignaturePool {
  private nextBatchId = 0;
  private busy: Promise<void> = Promise.resolve();
  private disposed = false;

  private constructor(
    readonly algorithm: HashAlgorithm,
    private readonly workers: PoolWorker[],
  ) {}

  get workerCount(): number {
    return this.workers.length;
  }

  static defaultWorkerCount(): number {
    return Math.max(1, Math.min(availableParallelism(), 8));
  }

  static async start(algorithm: HashAlgorithm, workerCount = SignaturePool.defaultWorkerCount(), chunkBytes = signatureChunkBytes): Promise<SignaturePool> {
    assert(
      Number.isInteger(workerCount) && workerCount >= 1 && workerCount <= signatureWorkersMax,
      `worker count ${workerCount} within 1..${signatureWorkersMax}`,
    );
    assert(
      Number.isInteger(chunkBytes) && chunkBytes > 0 && chunkBytes <= signatureBatchBytesMax,
      `chunk of ${chunkBytes} bytes within 1..${signatureBatchBytesMax}`,
    );
    const threads = await startWorkerThreads(signatureWorkerSource(), { algorithm, chunkBytes }, workerCount);
    return new SignaturePool(
      algorithm,
      threads.map((thread) => new PoolWorker(thread)),
    );
  }

  /**
   * Signs every region `items` yields, in batches; yields each batch when it is done (batches
   * may complete out of order). Calls on one pool run one after another.
   */
  async *sign(items: Iterable<RegionToSign>, options: SignOptions = {}): AsyncGenerator<SignatureBatch> {
    assert(!this.disposed, 'sign on a disposed pool');
    let release!: () => void;
    const previous = this.busy;
    this.busy = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      yield* this.signExclusive(items, options);
    } finally {
      release();
    }
  }

  private async *signExclusive(items: Iterable<RegionToSign>, options: SignOptions): AsyncGenerator<SignatureBatch> {
    const batchBytesMax = options.batchBytesMax ?? signatureBatchBytesMax / 4;
    const iterator = items[Symbol.iterator]();
    let lookahead = iterator.next();
    const ready: SignatureBatch[] = [];
    let inFlight = 0;
    let failure: Error | undefined;
    /** Set when the consumer stops (break, throw, end): batches still in flight feed no more. */
    let stopping = false;
    let wake: (() => void) | undefined;
    const progress = { regionsDone: 0, bytesDone: 0 };
    const signal = options.signal;
    const onAbort = () => wake?.();
    signal?.addEventListener('abort', onAbort);

    const takeBatch = (): { regionIndexes: number[]; locations: RegionLocation[]; bytes: number } | undefined => {
      if (lookahead.done) return undefined;
      const regionIndexes: number[] = [];
      const locations: RegionLocation[] = [];
      let bytes = 0;
      while (!lookahead.done && (locations.length === 0 || bytes + lookahead.value.location.bytes <= batchBytesMax)) {
        regionIndexes.push(lookahead.value.regionIndex);
        locations.push(lookahead.value.location);
        bytes += lookahead.value.location.bytes;
        lookahead = iterator.next();
      }
      return { regionIndexes, locations, bytes };
    };

    const feed = (worker: PoolWorker): void => {
      while (!stopping && worker.usable && worker.pending.size < batchesInFlightPerWorker && failure === undefined && !signal?.aborted) {
        const batch = takeBatch();
        if (!batch) return;
        inFlight += 1;
        worker.send(this.nextBatchId++, batch.locations, {
          regionIndexes: batch.regionIndexes,
          bytes: batch.bytes,
          settle: (response) => {
            inFlight -= 1;
            if (response.kind === 'done') {
              ready.push({ regionIndexes: batch.regionIndexes, signatures: response.signatures });
              progress.regionsDone += batch.regionIndexes.length;
              progress.bytesDone += batch.bytes;
              options.onProgress?.({ ...progress });
              feed(worker);
            } else if (response.kind === 'failed') {
              failure ??= response.path
                ? fromSystemError(Object.assign(new Error(response.message), { code: response.code }), 'read for signatures', response.path)
                : new TidemarkError('IO', `signature worker failed: ${response.message}`, 'retry; if it persists, run with TIDEMARK_DEBUG=1 and report it');
            }
            wake?.();
          },
        });
      }
    };

    try {
      for (const worker of this.workers) feed(worker);
      for (;;) {
        if (failure) throw failure;
        if (signal?.aborted) throw new TidemarkError('CANCELLED', 'signature computation cancelled', 'run it again to start over');
        const batch = ready.shift();
        if (batch) {
          assert(batch.signatures.length === batch.regionIndexes.length * signatureBytes(this.algorithm), 'one signature per region');
          yield batch;
          continue;
        }
        if (lookahead.done && inFlight === 0) return;
        if (!this.workers.some((w) => w.usable))
          throw new TidemarkError('IO', 'every signature worker stopped', 'retry; if it persists, run with TIDEMARK_DEBUG=1 and report it');
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      stopping = true;
      signal?.removeEventListener('abort', onAbort);
      // Let batches still in flight finish so the next call starts on idle workers.
      while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
      for (const worker of this.workers) worker.release();
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(
      this.workers.map(async (worker) => {
        worker.thread.postMessage({ kind: 'close' } satisfies WorkerRequest);
        await worker.thread.terminate();
      }),
    );
  }
}
