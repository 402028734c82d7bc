// Runs density computations in a Web Worker so a 4M-region map never blocks the UI thread.
// Requests coalesce: while one is computing, only the newest waiting request is kept, so a
// fast-changing bitmap never builds a backlog. Without Worker support it computes inline.
import { cellDensities, type BitsView, type HeatmapLayout } from './density';
import type { DensityRequest, DensityResult } from './density-worker';

export interface DensityJob {
  readonly bits: BitsView;
  readonly layout: HeatmapLayout;
  readonly viewStart: number;
  readonly viewRegions: number;
}

type Waiting = { job: DensityJob; resolve: (result: DensityResult | undefined) => void };

export class DensityClient {
  private worker: Worker | undefined;
  private nextId = 1;
  private busy: { id: number; resolve: (result: DensityResult | undefined) => void } | undefined;
  private waiting: Waiting | undefined;

  constructor() {
    if (typeof Worker !== 'undefined') {
      this.worker = new Worker(new URL('./density-worker.ts', import.meta.url), { type: 'module' });
      this.worker.onmessage = (message: MessageEvent<DensityResult>) => this.finished(message.data);
    }
  }

  /** Resolves with the densities, or undefined when a newer request superseded this one. */
  compute(job: DensityJob): Promise<DensityResult | undefined> {
    if (!this.worker) {
      const started = performance.now();
      const { density, cells } = cellDensities(job.bits, job.layout, job.viewStart, job.viewRegions);
      return Promise.resolve({ id: 0, density, cells, computeMs: performance.now() - started });
    }
    return new Promise((resolve) => {
      this.waiting?.resolve(undefined); // superseded
      this.waiting = { job, resolve };
      if (!this.busy) this.startNext();
    });
  }

  private startNext(): void {
    const next = this.waiting;
    if (!next || !this.worker) return;
    this.waiting = undefined;
    const id = this.nextId++;
    this.busy = { id, resolve: next.resolve };
    const words = next.job.bits.words.slice(); // the caller keeps its copy for hover
    const request: DensityRequest = {
      id,
      words,
      regionCount: next.job.bits.regionCount,
      layout: next.job.layout,
      viewStart: next.job.viewStart,
      viewRegions: next.job.viewRegions,
    };
    this.worker.postMessage(request, [words.buffer]);
  }

  private finished(result: DensityResult): void {
    const busy = this.busy;
    this.busy = undefined;
    if (busy && busy.id === result.id) busy.resolve(result);
    this.startNext();
  }

  dispose(): void {
    this.worker?.terminate();
    this.worker = undefined;
    this.busy?.resolve(undefined);
    this.waiting?.resolve(undefined);
  }
}
