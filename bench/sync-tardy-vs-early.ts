// sync-tardy-vs-early: how long a sync holds a primary snapshot, and how much it copies aside
// meanwhile, with the tardy snapshot (seed 000: taken only for the tail) against the baseline
// that snapshots first and reads the whole pass from it (`early`). A 1 GiB pair of random data
// in 1 MiB regions, both volumes in one LocalAgent home, a writer at 20 regions/s through the
// primary's agent for the whole sync, the pass held to 256 MiB/s so it lasts seconds; each
// method on a fresh pair. Design: docs/sync.md "Benchmarks".

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalAgent, type AgentApi } from '../src-engine/agent';
import {
  PairStore,
  createPair,
  runSync,
  verifyPair,
  type EndpointResolver,
  type PairEndpoints,
  type SyncMethod,
  type SyncSummary,
  type VolumeEndpoint,
} from '../src-engine/replication';
import { syncSnapshotPrefix } from '../src-engine/replication/sync/names';
import { GiB, MiB, scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { mulberry32, randomBuffer, randomIndexBelow } from './random';
import { makeFigure } from './report';
import { withTempDir } from './temp';
import { writeTestFile } from './test-file';
import { percentile, runCommand } from './timing';

const pairBytesBase = 1 * GiB;
const regionBytes = 1 * MiB;
const writerRegionsPerSecond = 20;
const limitRateBytesPerSecond = 256 * MiB;
const cowPollMs = 100;
/** Interleaved runs per method (tardy, early, tardy, …); the figures are medians. One run is noisy on a shared machine. */
const benchRounds = 3;
const goal = 0.2;
const methods = ['tardy', 'early'] as const satisfies readonly SyncMethod[];
type Method = (typeof methods)[number];

/** Writes in flight at most: a stalled volume stops the writer here instead of piling up 1 MiB buffers. */
const writerInFlightMax = 64;

interface WriterStats {
  readonly writes: number;
  /** Writes due but not issued because writerInFlightMax were in flight (the volume stalled that long). */
  readonly skipped: number;
  readonly inFlightPeak: number;
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
  readonly latencyMsMax: number;
}

/**
 * An open-loop writer: issues a seeded random region write through `agent` every 1/rate s
 * whether or not the earlier ones finished (an application does not slow down because a
 * snapshot makes its writes copy aside), until stopped. Records each write's latency.
 */
class RateWriter {
  private readonly latenciesMs: number[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private inFlightPeak = 0;
  private skipped = 0;
  private timer: NodeJS.Timeout | undefined;
  private failure: unknown;

  constructor(
    private readonly agent: AgentApi,
    private readonly path: string,
    private readonly regionCount: number,
    private readonly seed: number,
  ) {}

  start(): void {
    const random = mulberry32(this.seed);
    const intervalMs = 1000 / writerRegionsPerSecond;
    const startMs = performance.now();
    let issued = 0;
    const tick = () => {
      // Every write due by now (timers run late under load; the rate is kept, not the spacing).
      while (startMs + issued * intervalMs <= performance.now()) {
        issued += 1;
        if (this.inFlight.size >= writerInFlightMax) {
          this.skipped += 1;
          continue;
        }
        const regionIndex = randomIndexBelow(random, this.regionCount);
        const data = randomBuffer(random, regionBytes);
        const writeStartMs = performance.now();
        const write: Promise<void> = this.agent.writeRegion(this.path, regionIndex, data).then(
          () => {
            this.latenciesMs.push(performance.now() - writeStartMs);
            this.inFlight.delete(write);
          },
          (error: unknown) => {
            this.failure ??= error;
            this.inFlight.delete(write);
          },
        );
        this.inFlight.add(write);
        this.inFlightPeak = Math.max(this.inFlightPeak, this.inFlight.size);
      }
      this.timer = setTimeout(tick, Math.max(0, startMs + issued * intervalMs - performance.now()));
    };
    tick();
  }

  /** Stops issuing, waits for the writes in flight. */
  async stop(): Promise<WriterStats> {
    clearTimeout(this.timer);
    await Promise.all(this.inFlight);
    if (this.failure !== undefined) throw this.failure instanceof Error ? this.failure : new Error(String(this.failure));
    const latencies = this.latenciesMs.length > 0 ? this.latenciesMs : [0];
    return {
      writes: this.latenciesMs.length,
      skipped: this.skipped,
      inFlightPeak: this.inFlightPeak,
      latencyMsP50: Math.round(percentile(latencies, 50)),
      latencyMsP99: Math.round(percentile(latencies, 99)),
      latencyMsMax: Math.round(Math.max(...latencies)),
    };
  }
}

interface CowSamples {
  /** Peak over the polls of the copied-aside bytes of every sync snapshot of the pair then alive. */
  readonly peakBytes: number;
  /** Polls that saw at least one sync snapshot, times the poll interval: the lifetime as polling saw it. */
  readonly seenMs: number;
  readonly polls: number;
  readonly snapshotsSeen: number;
  /** Kinds of the sync snapshots seen: a reflink clone has no copiedRegions to count. */
  readonly kinds: readonly string[];
}

/** Polls the primary's snapshot list every 100 ms while a sync runs: its sync snapshots' copiedRegions × regionBytes. */
class CowPoller {
  private peakBytes = 0;
  private seenPolls = 0;
  private polls = 0;
  private readonly snapshotIds = new Set<string>();
  private readonly kinds = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly agent: AgentApi,
    private readonly path: string,
    private readonly labelPrefix: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.inFlight) return; // a slow list skips a tick rather than piling up
      this.inFlight = this.poll()
        .catch((error: unknown) => {
          this.failure ??= error;
        })
        .finally(() => (this.inFlight = undefined));
    }, cowPollMs);
  }

  private async poll(): Promise<void> {
    const { snapshots } = await this.agent.snapshotList(this.path);
    const sync = snapshots.filter((s) => s.label.startsWith(this.labelPrefix));
    this.polls += 1;
    if (sync.length === 0) return;
    this.seenPolls += 1;
    for (const s of sync) {
      this.snapshotIds.add(s.snapshotId);
      this.kinds.add(s.kind);
    }
    const copiedBytes = sync.reduce((sum, s) => sum + (s.copiedRegions ?? 0) * s.regionBytes, 0);
    this.peakBytes = Math.max(this.peakBytes, copiedBytes);
  }

  async stop(): Promise<CowSamples> {
    clearInterval(this.timer);
    await this.inFlight;
    if (this.failure !== undefined) throw this.failure instanceof Error ? this.failure : new Error(String(this.failure));
    return { peakBytes: this.peakBytes, seenMs: this.seenPolls * cowPollMs, polls: this.polls, snapshotsSeen: this.snapshotIds.size, kinds: [...this.kinds] };
  }
}

interface MethodRun {
  readonly method: Method;
  readonly summary: SyncSummary;
  readonly cow: CowSamples;
  /** The figure: the larger of the polled peak and the engine's own samples (both observe copiedRegions; the true peak is at least this). */
  readonly cowBytesPeak: number;
  readonly writer: WriterStats;
}

function localResolver(agent: AgentApi): EndpointResolver {
  return { resolve: async (volref: string): Promise<VolumeEndpoint> => ({ volref, agent, path: volref, where: 'this machine' }) };
}

async function runMethod(context: BenchContext, method: Method, pairBytes: number, round: number): Promise<MethodRun> {
  return withTempDir(`sync-${method}`, async (dir) => {
    const home = join(dir, 'home');
    const agent = new LocalAgent(home, { purpose: 'benchmark' });
    try {
      const primaryPath = join(dir, 'primary.img');
      const secondaryPath = join(dir, 'secondary.img');
      const regionCount = pairBytes / regionBytes;
      await writeTestFile(primaryPath, pairBytes, regionBytes, context.seed);
      await agent.volumeAdopt(primaryPath, regionBytes);
      await agent.volumeCreate(secondaryPath, pairBytes, regionBytes);
      const store = new PairStore(home);
      const resolver = localResolver(agent);
      const pair = await createPair(store, resolver, { name: `bench-${method}`, primary: primaryPath, secondary: secondaryPath, regionBytes });
      const endpoints: PairEndpoints = { primary: await resolver.resolve(primaryPath), secondary: await resolver.resolve(secondaryPath) };
      await runCommand('sync', []); // the test file's writeback is not the first snapshot's to pay

      context.log(
        `${method} (run ${round + 1} of ${benchRounds}): syncing ${regionCount} regions at ${limitRateBytesPerSecond / MiB} MiB/s, open-loop writer at ${writerRegionsPerSecond} regions/s`,
      );
      const writer = new RateWriter(agent, primaryPath, regionCount, context.seed ^ 0x5eed);
      const poller = new CowPoller(agent, primaryPath, syncSnapshotPrefix(pair.pairId));
      writer.start();
      poller.start();
      let summary: SyncSummary;
      let cow: CowSamples;
      let writes: WriterStats;
      try {
        summary = await runSync({ store, pair, endpoints, method, limitRateBytesPerSecond });
      } finally {
        cow = await poller.stop();
        writes = await writer.stop();
      }
      context.log(
        `${method}: ${summary.durationMs} ms, ${summary.rounds} round(s), ${summary.regionsTransferred} regions sent; ` +
          `primary snapshot held ${summary.primarySnapshot.lifetimeMs} ms, copy-on-write peak ${(cow.peakBytes / MiB).toFixed(0)} MiB polled / ` +
          `${(summary.primarySnapshot.cowBytesPeak / MiB).toFixed(0)} MiB by the engine`,
      );
      context.log(
        `${method}: writer ${writes.writes} writes, latency p50 ${writes.latencyMsP50} ms, p99 ${writes.latencyMsP99} ms, max ${writes.latencyMsMax} ms, ` +
          `${writes.inFlightPeak} in flight at most${writes.skipped > 0 ? `, ${writes.skipped} skipped (${writerInFlightMax} in flight)` : ''}`,
      );
      await checkConverges(context, method, store, pair.name, endpoints);
      return {
        method,
        summary,
        cow,
        cowBytesPeak: Math.max(cow.peakBytes, summary.primarySnapshot.cowBytesPeak),
        writer: writes,
      };
    } finally {
      await agent.dispose();
    }
  });
}

/** With the writer stopped, a second sync takes what was pending and the pair verifies identical (untimed). */
async function checkConverges(context: BenchContext, method: Method, store: PairStore, name: string, endpoints: PairEndpoints): Promise<void> {
  const pair = await store.require(name);
  await runSync({ store, pair, endpoints, method: 'auto' });
  const result = await verifyPair(await store.require(name), endpoints);
  if (result.regionsDiffering !== 0) {
    throw new Error(
      `sync-tardy-vs-early: after the ${method} sync and a catch-up, ${result.regionsDiffering} regions differ (first ${result.differing.slice(0, 5).join(', ')})`,
    );
  }
  context.log(`${method}: checked — after a catch-up sync with the writer stopped, both sides verify identical`);
}

function ratioOf(name: string, tardy: number, early: number): number {
  if (early <= 0) throw new Error(`${name}: the early sync's figure is ${early}; nothing to compare against (did the writer run?)`);
  return tardy / early;
}

const median = (values: readonly number[]) => percentile(values, 50);

function details(context: BenchContext, runs: Record<Method, MethodRun[]>, pairBytes: number): Record<string, unknown> {
  const perRun = (run: MethodRun) => ({
    lifetimeMs: run.summary.primarySnapshot.lifetimeMs,
    cowBytesPeak: run.cowBytesPeak,
    cowBytesPeakPolled: run.cow.peakBytes,
    cowBytesPeakEngine: run.summary.primarySnapshot.cowBytesPeak,
    snapshotSeenMsPolled: run.cow.seenMs,
    snapshotsSeen: run.cow.snapshotsSeen,
    snapshotKinds: run.cow.kinds,
    polls: run.cow.polls,
    durationMs: run.summary.durationMs,
    rounds: run.summary.rounds,
    regionsTransferred: run.summary.regionsTransferred,
    bytesTransferred: run.summary.bytesTransferred,
    pendingRegions: run.summary.pendingRegions,
    writer: run.writer,
  });
  return {
    seed: context.seed,
    pairBytes,
    regionBytes,
    writerRegionsPerSecond,
    writerInFlightMax,
    limitRateBytesPerSecond,
    cowPollMs,
    benchRounds,
    statistic: `median of ${benchRounds} interleaved runs per method`,
    tardy: runs.tardy.map(perRun),
    early: runs.early.map(perRun),
  };
}

async function run(context: BenchContext): Promise<void> {
  const pairBytes = scaledCount(pairBytesBase, context.sizeFactor, regionBytes);
  context.log(
    `sync-tardy-vs-early: ${(pairBytes / GiB).toFixed(2)} GiB pairs of random data (seed ${context.seed}) in ${regionBytes / MiB} MiB regions; ` +
      `${benchRounds} interleaved rounds of tardy then early, each run on a fresh pair, medians; copy-on-write polled every ${cowPollMs} ms`,
  );
  const runs: Record<Method, MethodRun[]> = { tardy: [], early: [] };
  for (let round = 0; round < benchRounds; round++) {
    for (const method of methods) runs[method].push(await runMethod(context, method, pairBytes, round));
  }
  if (methods.some((m) => runs[m].some((r) => r.cow.kinds.includes('reflink')))) {
    context.log(`note: the primary's sync snapshots were reflink clones here (no copiedRegions): the copy-on-write figure reads 0`);
  }
  const shared = details(context, runs, pairBytes);
  const lifetime = (m: Method) => median(runs[m].map((r) => r.summary.primarySnapshot.lifetimeMs));
  context.record(
    makeFigure({
      name: 'sync-tardy-vs-early-snapshot-lifetime',
      tidemark: { value: lifetime('tardy'), unit: 'ms' },
      peer: { name: 'early', value: lifetime('early'), unit: 'ms' },
      ratio: ratioOf('snapshot lifetime', lifetime('tardy'), lifetime('early')),
      goal,
      goalRule: 'at-most',
      details: { ...shared, note: 'primary snapshot lifetime (summary.primarySnapshot.lifetimeMs), tardy / early, medians; lower is better' },
    }),
  );
  const cow = (m: Method) => median(runs[m].map((r) => r.cowBytesPeak)) / MiB;
  context.record(
    makeFigure({
      name: 'sync-tardy-vs-early-cow-peak',
      tidemark: { value: cow('tardy'), unit: 'MiB' },
      peer: { name: 'early', value: cow('early'), unit: 'MiB' },
      ratio: ratioOf('copy-on-write peak', cow('tardy'), cow('early')),
      goal,
      goalRule: 'at-most',
      details: {
        ...shared,
        note:
          `copy-on-write peak of the primary's sync snapshots, tardy / early, medians; lower is better. Polled (snapshotList every ${cowPollMs} ms, ` +
          `copiedRegions × regionBytes summed over the pair's live sync snapshots), or the engine's own figure when larger`,
      },
    }),
  );
}

export const syncTardyVsEarlyBenchmark: Benchmark = {
  name: 'sync-tardy-vs-early',
  description: 'primary snapshot lifetime and copy-on-write peak of a 1 GiB sync at 256 MiB/s under a 20 regions/s writer: tardy vs early',
  run,
};
