// Replication of a long-lived engine (the console): start, pause, resume and stop shipping of a
// pair (continuous, or periodic cycles) in the background, with live progress, a lag history
// for the chart, and the tracking state of any pair ("crash cost now": what a crash of the
// primary's agent would resend). Pausing ends the shipper but keeps the run — its settings,
// lag history and cycles — for resume; the primary's agent tracks writes throughout.
//
// A pair in a consistency group replicates with its group: starting it starts one run of the
// group's cycles (replicateGroup, every member at one instant), which every member's state
// shows and any member's stop, pause or resume acts on. `once` runs one cycle (a periodic
// pair's, a group's) or, for a continuous pair, ships until in sync.

import type { TrackingState } from '../agent';
import { TidemarkError, isTidemarkError } from '../errors';
import type { EventLog } from '../events';
import {
  failedOverMember,
  groupOf,
  replicateGroup,
  replicatePair,
  type CycleProgress,
  type EndpointResolver,
  type GroupCycleSummary,
  type GroupRecord,
  type PairStore,
  type ReplicateSummary,
  type ShipPath,
  type ShipProgress,
} from '../replication';

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
  /** The consistency group whose cycles this run ships (every member shows the same run), else null. */
  readonly group: string | null;
  /** One cycle (or, continuous, until in sync), not a run that goes on. */
  readonly once: boolean;
  /** The periodic cycle under way, null between cycles; for a group, the member shipping or applying now. */
  readonly cycleProgress: CycleProgress | null;
  /** When the cycle under way started (its rate and ETA), null between cycles. */
  readonly cycleStartedAtMs: number | null;
  /** A group run's latest finished cycle. */
  readonly lastGroupCycle: GroupCycleSummary | null;
  /** A periodic run's cycle failed and is retried (a dropped link, a lost group hold): why, and since when; cleared by its next progress. */
  readonly retrying: { readonly message: string; readonly sinceMs: number } | null;
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
  /** A group run's applied cycles per member pair (state.cycles is the pair's own otherwise). */
  readonly memberCycles: Map<string, readonly CycleRecord[]>;
}

interface LaunchSettings {
  readonly limitRateBytesPerSecond: number | null;
  readonly once: boolean;
}

const cyclesKept = 50;

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

  /** Set by the engine: what else of this console keeps the pair from replicating now (a sync), or null. */
  busy: (name: string) => string | null = () => null;

  /** The pair's latest run in this console (its group's run, for a member of a group), or null. */
  state(name: string): ReplicationState | null {
    const run = this.runs.get(name);
    if (!run) return null;
    return run.state.group ? { ...run.state, pair: name, cycles: run.memberCycles.get(name) ?? [] } : run.state;
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

  async start(name: string, options: { limitRateBytesPerSecond?: number; once?: boolean } = {}): Promise<ReplicationState> {
    return this.launch(name, { limitRateBytesPerSecond: options.limitRateBytesPerSecond ?? null, once: options.once ?? false }, undefined);
  }

  /** Stops shipping and keeps the run (settings, lag history, cycles) for resume. */
  async pause(name: string): Promise<ReplicationState> {
    const run = this.runs.get(name);
    if (!run?.state.running) throw new TidemarkError('USAGE', `pair ${name} is not replicating: nothing to pause`, 'start replication first');
    run.pausing = true;
    run.controller.abort();
    await run.done;
    return this.state(name)!;
  }

  /** Ships again after pause(), with the run's rate limit, its history and cycles carried on. */
  async resume(name: string): Promise<ReplicationState> {
    const paused = this.runs.get(name);
    if (!paused?.state.paused) throw new TidemarkError('USAGE', `pair ${name} is not paused: nothing to resume`, 'use Start replication');
    return this.launch(name, paused.state, paused);
  }

  private async launch(name: string, settings: LaunchSettings, resumed: Running | undefined): Promise<ReplicationState> {
    const record = await this.store.require(name);
    const group = await groupOf(this.store, record);
    if (resumed && resumed.state.group !== (group?.name ?? null)) {
      const was = resumed.state.group ? `group ${resumed.state.group}'s run` : `its own run`;
      throw new TidemarkError('STALE', `pair ${name}'s paused run was ${was}; its group changed since`, 'stop it, then start replication again');
    }
    if (group) await checkGroupCycles(this.store, group);
    // From these checks to register() nothing awaits: two starts at once cannot both pass them.
    for (const member of group?.pairs ?? [name]) this.checkIdle(member);
    const run: Running = {
      state: {
        pair: name,
        running: true,
        paused: false,
        startedAtMs: resumed?.state.startedAtMs ?? Date.now(),
        limitRateBytesPerSecond: settings.limitRateBytesPerSecond,
        progress: null,
        history: resumed?.state.history ?? [],
        summary: null,
        error: null,
        cycles: resumed?.state.cycles ?? [],
        group: group?.name ?? null,
        once: settings.once,
        cycleProgress: null,
        cycleStartedAtMs: null,
        lastGroupCycle: resumed?.state.lastGroupCycle ?? null,
        retrying: null,
      },
      controller: new AbortController(),
      done: Promise.resolve(),
      pausing: false,
      memberCycles: new Map(resumed?.memberCycles ?? []),
    };
    const subject = group ? `group ${group.name}` : name;
    this.register(group?.pairs ?? [name], run);
    run.done = this.settle(run, subject, group ? this.shipGroup(run, group) : this.shipPair(run, name));
    this.events.emit(
      resumed
        ? { severity: 'info', pair: name, kind: 'replication.resumed', message: `replication of ${subject} resumed` }
        : {
            severity: 'info',
            pair: name,
            kind: 'replication.started',
            message: group
              ? `replicating group ${group.name} (${group.pairs.join(', ')})${settings.once ? ': one cycle' : ''}`
              : `replicating ${name} to ${record.secondary.volref}${settings.once ? ' once' : ''}`,
          },
    );
    return this.state(name)!;
  }

  /**
   * Files the run under its pairs. The runs it replaces go from every name they were filed under:
   * a group's old run must not linger on a pair that left the group, nor a pair's own on its
   * group's other members.
   */
  private register(names: readonly string[], run: Running): void {
    const replaced = new Set(names.map((n) => this.runs.get(n)).filter((r) => r !== undefined));
    for (const [name, filed] of [...this.runs]) if (replaced.has(filed)) this.runs.delete(name);
    for (const name of names) this.runs.set(name, run);
  }

  /** A member of a run already going, or a pair a failback or migrate holds, cannot start one. */
  private checkIdle(name: string): void {
    const run = this.runs.get(name);
    if (run?.state.running && run.state.group) {
      throw new TidemarkError('BUSY', `group ${run.state.group} is already replicating`, 'stop it (on any of its pairs) first to change its settings');
    }
    if (run?.state.running) throw new TidemarkError('BUSY', `pair ${name} is already replicating`, 'stop it first to change its settings');
    if (this.roleChanging(name)) throw new TidemarkError('BUSY', `pair ${name} is failing back or migrating`, 'replication starts again once it finished');
    const busy = this.busy(name);
    if (busy) throw new TidemarkError('BUSY', `pair ${name} is ${busy}`, 'replication can start once it is done');
  }

  private async shipPair(run: Running, name: string): Promise<ReplicateSummary> {
    const record = await this.store.require(name);
    const [primary, secondary] = await Promise.all([this.resolver.resolve(record.primary.volref), this.resolver.resolve(record.secondary.volref)]);
    const limit = run.state.limitRateBytesPerSecond;
    return replicatePair({
      store: this.store,
      pair: record,
      endpoints: { primary, secondary },
      once: run.state.once,
      signal: run.controller.signal,
      ...(limit ? { limitRateBytesPerSecond: limit } : {}),
      onProgress: (progress) => this.record(run, progress),
      onCycleProgress: (progress) => this.cycleProgress(run, progress),
      onCycle: (cycle) => {
        const applied = toCycleRecord(cycle, cycle.pointInTime, cycle.durationMs);
        run.state = {
          ...run.state,
          cycles: [...run.state.cycles.slice(-(cyclesKept - 1)), applied],
          cycleProgress: null,
          cycleStartedAtMs: null,
          retrying: null,
        };
      },
      // A continuous shipper reports its retries in its own progress (state 'retrying').
      onWarning: (message) =>
        record.mode === 'periodic' ? this.retry(run, name, message) : this.events.emit({ severity: 'warning', pair: name, kind: 'replication.retry', message }),
    });
  }

  private async shipGroup(run: Running, group: GroupRecord): Promise<null> {
    const limit = run.state.limitRateBytesPerSecond;
    await replicateGroup(this.store, this.resolver, group, {
      once: run.state.once,
      signal: run.controller.signal,
      ...(limit ? { limitRateBytesPerSecond: limit } : {}),
      onProgress: (progress) => this.cycleProgress(run, progress),
      onCycle: (cycle) => {
        for (const member of cycle.members) {
          const applied = toCycleRecord(member, cycle.pointInTime, cycle.durationMs);
          run.memberCycles.set(member.pair, [...(run.memberCycles.get(member.pair) ?? []).slice(-(cyclesKept - 1)), applied]);
        }
        run.state = { ...run.state, lastGroupCycle: cycle, cycleProgress: null, cycleStartedAtMs: null, retrying: null };
        this.events.emit({
          severity: 'info',
          pair: run.state.pair,
          kind: 'group.cycle',
          message: `group ${group.name} cycle: ${cycle.members.map((m) => `${m.pair} cycle ${m.cycle} (${m.regionsTransferred} regions)`).join(', ')} — the secondaries hold the primaries as of ${cycle.pointInTime}`,
        });
      },
      onWarning: (message) => this.retry(run, run.state.pair, message),
    });
    return null;
  }

  /** Records how a run ended: done, paused, stopped, or failed. */
  private settle(run: Running, subject: string, shipping: Promise<ReplicateSummary | null>): Promise<void> {
    const { controller } = run;
    const pair = run.state.pair;
    return shipping.then(
      (summary) => {
        const paused = controller.signal.aborted && run.pausing;
        run.state = { ...run.state, running: false, paused, summary, cycleProgress: null, cycleStartedAtMs: null, retrying: null };
        if (paused)
          this.events.emit({ severity: 'info', pair, kind: 'replication.paused', message: `replication of ${subject} paused (writes are still tracked)` });
      },
      (error: unknown) => {
        const stopped = controller.signal.aborted;
        const paused = stopped && run.pausing;
        const e = isTidemarkError(error) ? error : new TidemarkError('IO', (error as Error).message, '');
        run.state = {
          ...run.state,
          running: false,
          paused,
          cycleProgress: null,
          cycleStartedAtMs: null,
          retrying: null,
          error: stopped ? null : { code: e.code, message: e.message, hint: e.hint },
        };
        this.events.emit(
          paused
            ? { severity: 'info', pair, kind: 'replication.paused', message: `replication of ${subject} paused (writes are still tracked)` }
            : stopped
              ? { severity: 'info', pair, kind: 'replication.stopped', message: `replication of ${subject} stopped` }
              : { severity: 'error', pair, kind: 'replication.failed', message: e.message },
        );
      },
    );
  }

  /** A cycle under way: its start (for rate and ETA) is this progress's when it is a new cycle, another member's, or a retry shipping again from the start. */
  private cycleProgress(run: Running, progress: CycleProgress): void {
    const previous = run.state.cycleProgress;
    const sameCycle = previous !== null && previous.pair === progress.pair && previous.cycle === progress.cycle && previous.phase === progress.phase;
    const carriesOn = sameCycle && progress.regionsDone >= previous.regionsDone && run.state.retrying === null;
    run.state = { ...run.state, cycleProgress: progress, cycleStartedAtMs: carriesOn ? run.state.cycleStartedAtMs : Date.now(), retrying: null };
  }

  private retry(run: Running, pair: string, message: string): void {
    run.state = { ...run.state, retrying: { message, sinceMs: run.state.retrying?.sinceMs ?? Date.now() } };
    this.events.emit({ severity: 'warning', pair, kind: 'replication.retry', message });
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
    return this.state(name);
  }

  /** The group was deleted: its runs that ended (stopped, failed, paused — a resume would be refused) are no longer shown on its pairs. */
  forgetGroup(group: string): void {
    for (const [name, run] of [...this.runs]) if (run.state.group === group && !run.state.running) this.runs.delete(name);
  }

  async stopAll(): Promise<void> {
    for (const name of [...this.runs.keys()]) await this.stop(name);
  }
}

function toCycleRecord(
  cycle: { readonly cycle: number; readonly regionsTransferred: number; readonly bytesTransferred: number },
  pointInTime: string,
  durationMs: number,
): CycleRecord {
  const { regionsTransferred, bytesTransferred } = cycle;
  return { cycle: cycle.cycle, pointInTime, regionsTransferred, bytesTransferred, durationMs, finishedAtMs: Date.now() };
}

/** A group with a failed-over member does not cycle (a cycle would refuse): refused at the start, with the group cycle's own reason. */
async function checkGroupCycles(store: PairStore, group: GroupRecord): Promise<void> {
  for (const name of group.pairs) if ((await store.require(name)).failover) throw failedOverMember(group.name, name);
}
