// Replication of a long-lived engine (the console): start, pause, resume and stop shipping of a
// pair (continuous, or periodic cycles) in the background, with live progress, a lag history
// for the chart, and the tracking state of any pair ("crash cost now": what a crash of the
// primary's agent would resend). Pausing ends the shipper but keeps the run — its settings,
// lag history and cycles — for resume; the primary's agent tracks writes throughout.

import type { TrackingState } from '../agent';
import { TidemarkError, isTidemarkError } from '../errors';
import type { EventLog } from '../events';
import { replicatePair, type EndpointResolver, type PairStore, type ReplicateSummary, type ShipPath, type ShipProgress } from '../replication';

/** One point of the lag chart. */
export interface LagSample {
  readonly atMs: number;
  readonly lagRegions: number;
  readonly lagBytes: number;
  readonly oldestUnshippedMs: number;
  readonly bytesPerSecond: number;
  readonly moosRegions: number;
}

export interface ReplicationState {
  readonly pair: string;
  readonly running: boolean;
  /** Paused by pause(): not shipping, resumable with its settings and history. */
  readonly paused: boolean;
  readonly startedAtMs: number;
  readonly limitRateBytesPerSecond: number | null;
  readonly progress: ShipProgress | null;
  /** Newest last, one sample a second at most, the last ten minutes. */
  readonly history: readonly LagSample[];
  readonly summary: ReplicateSummary | null;
  readonly error: { code: string; message: string; hint: string } | null;
  /** A periodic pair's applied cycles, newest last (the last 50). */
  readonly cycles: readonly CycleRecord[];
}

export interface CycleRecord {
  readonly cycle: number;
  /** The primary's instant the secondary holds since this cycle. */
  readonly pointInTime: string;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly durationMs: number;
  readonly finishedAtMs: number;
}

interface Running {
  state: ReplicationState;
  readonly controller: AbortController;
  done: Promise<void>;
  /** Set by pause() before it aborts: the run ends as paused, not stopped. */
  pausing: boolean;
}

const historySamplesMax = 600;
const sampleIntervalMs = 1000;

export class ReplicationOperations {
  private readonly runs = new Map<string, Running>();

  constructor(
    private readonly store: PairStore,
    private readonly resolver: EndpointResolver,
    private readonly events: EventLog,
  ) {}

  /** Set by the engine: whether a failback or migrate of the pair runs in the background (RoleTasks). */
  roleChanging: (name: string) => boolean = () => false;

  state(name: string): ReplicationState | null {
    return this.runs.get(name)?.state ?? null;
  }

  running(name: string): boolean {
    return this.runs.get(name)?.state.running ?? false;
  }

  /** The primary's tracking of the pair, asked of its agent. */
  async tracking(name: string): Promise<TrackingState> {
    const record = await this.store.require(name);
    const primary = await this.resolver.resolve(record.primary.volref);
    return primary.agent.trackingState(primary.path, record.pairId);
  }

  /** The path the next run of a pair with a remote primary takes: direct when its agent holds the pair's key (null: unknown). */
  async nextPath(name: string): Promise<ShipPath | null> {
    const record = await this.store.require(name);
    const primary = await this.resolver.resolve(record.primary.volref);
    if (!primary.sshTarget) return 'local';
    const peer = await primary.agent.peerStatus(record.pairId).catch(() => null);
    return peer === null ? null : peer.configured ? 'direct' : 'relayed';
  }

  async start(name: string, options: { limitRateBytesPerSecond?: number } = {}): Promise<ReplicationState> {
    return this.launch(name, options.limitRateBytesPerSecond ?? null, undefined);
  }

  /** Stops shipping and keeps the run (settings, lag history, cycles) for resume. */
  async pause(name: string): Promise<ReplicationState> {
    const run = this.runs.get(name);
    if (!run?.state.running) throw new TidemarkError('USAGE', `pair ${name} is not replicating: nothing to pause`, 'start replication first');
    run.pausing = true;
    run.controller.abort();
    await run.done;
    return run.state;
  }

  /** Ships again after pause(), with the run's rate limit, its history and cycles carried on. */
  async resume(name: string): Promise<ReplicationState> {
    const paused = this.runs.get(name)?.state;
    if (!paused?.paused) throw new TidemarkError('USAGE', `pair ${name} is not paused: nothing to resume`, 'use Start replication');
    return this.launch(name, paused.limitRateBytesPerSecond, paused);
  }

  private async launch(name: string, limitRateBytesPerSecond: number | null, resumed: ReplicationState | undefined): Promise<ReplicationState> {
    if (this.running(name)) throw new TidemarkError('BUSY', `pair ${name} is already replicating`, 'stop it first to change its settings');
    if (this.roleChanging(name)) throw new TidemarkError('BUSY', `pair ${name} is failing back or migrating`, 'replication starts again once it finished');
    const record = await this.store.require(name);
    const [primary, secondary] = await Promise.all([this.resolver.resolve(record.primary.volref), this.resolver.resolve(record.secondary.volref)]);
    const controller = new AbortController();
    const run: Running = {
      state: {
        pair: name,
        running: true,
        paused: false,
        startedAtMs: resumed?.startedAtMs ?? Date.now(),
        limitRateBytesPerSecond,
        progress: null,
        history: resumed?.history ?? [],
        summary: null,
        error: null,
        cycles: resumed?.cycles ?? [],
      },
      controller,
      done: Promise.resolve(),
      pausing: false,
    };
    this.runs.set(name, run);
    this.events.emit(
      resumed
        ? { severity: 'info', pair: name, kind: 'replication.resumed', message: `replication of ${name} resumed` }
        : { severity: 'info', pair: name, kind: 'replication.started', message: `replicating ${name} to ${record.secondary.volref}` },
    );
    run.done = replicatePair({
      store: this.store,
      pair: record,
      endpoints: { primary, secondary },
      once: false,
      signal: controller.signal,
      ...(limitRateBytesPerSecond ? { limitRateBytesPerSecond } : {}),
      onProgress: (progress) => this.record(run, progress),
      onCycle: (cycle) => {
        const record: CycleRecord = {
          cycle: cycle.cycle,
          pointInTime: cycle.pointInTime,
          regionsTransferred: cycle.regionsTransferred,
          bytesTransferred: cycle.bytesTransferred,
          durationMs: cycle.durationMs,
          finishedAtMs: Date.now(),
        };
        run.state = { ...run.state, cycles: [...run.state.cycles.slice(-49), record] };
      },
      onWarning: (message) => this.events.emit({ severity: 'warning', pair: name, kind: 'replication.retry', message }),
    }).then(
      (summary) => {
        const paused = controller.signal.aborted && run.pausing;
        run.state = { ...run.state, running: false, paused, summary };
        if (paused)
          this.events.emit({ severity: 'info', pair: name, kind: 'replication.paused', message: `replication of ${name} paused (writes are still tracked)` });
      },
      (error: unknown) => {
        const stopped = controller.signal.aborted;
        const paused = stopped && run.pausing;
        const e = isTidemarkError(error) ? error : new TidemarkError('IO', (error as Error).message, '');
        run.state = { ...run.state, running: false, paused, error: stopped ? null : { code: e.code, message: e.message, hint: e.hint } };
        this.events.emit(
          paused
            ? { severity: 'info', pair: name, kind: 'replication.paused', message: `replication of ${name} paused (writes are still tracked)` }
            : stopped
              ? { severity: 'info', pair: name, kind: 'replication.stopped', message: `replication of ${name} stopped` }
              : { severity: 'error', pair: name, kind: 'replication.failed', message: e.message },
        );
      },
    );
    return run.state;
  }

  private record(run: Running, progress: ShipProgress): void {
    const history = run.state.history;
    const last = history[history.length - 1];
    const atMs = Date.now();
    const sample: LagSample = {
      atMs,
      lagRegions: progress.oosRegions + progress.inFlightRegions,
      lagBytes: progress.lagBytes,
      oldestUnshippedMs: progress.oldestUnshippedMs,
      bytesPerSecond: progress.bytesPerSecond,
      moosRegions: progress.moosRegions,
    };
    const next = !last || atMs - last.atMs >= sampleIntervalMs ? [...history.slice(-(historySamplesMax - 1)), sample] : history;
    run.state = { ...run.state, progress, history: next };
  }

  async stop(name: string): Promise<ReplicationState | null> {
    const run = this.runs.get(name);
    if (!run) return null;
    run.pausing = false;
    run.controller.abort();
    await run.done;
    if (run.state.paused) run.state = { ...run.state, paused: false }; // a paused run stopped: no longer resumable
    return run.state;
  }

  async stopAll(): Promise<void> {
    for (const name of [...this.runs.keys()]) await this.stop(name);
  }
}
