// Role changes that copy data, run in the background of a long-lived engine (the console) the
// way a sync does: failback (its resync shipped by replicatePair) and migrate, each with live
// progress — phase, regions and bytes copied, rate, ETA — polled by the renderer; plus what the
// Failover card needs to offer the right one: whether the primary can be reached, whether the
// pair is failed over or has an unfinished migrate, and the regions a migrate would copy now.

import { assert } from '../assert';
import { Bitset } from '../bitmap';
import { TidemarkError, isTidemarkError } from '../errors';
import { formatCount } from '../size';
import type { EventLog } from '../events';
import { mapRuns } from '../maps';
import { ProgressMeter } from '../progress';
import {
  failbackPair,
  groupOf,
  migratePair,
  pairStatus,
  readCycleHistory,
  readMigrateJournal,
  replicatePair,
  type EndpointResolver,
  type FailbackSummary,
  type MigrateProgress,
  type MigrateSummary,
  type PairEndpoints,
  type PairRecord,
  type PairStore,
  type ReplicateSummary,
} from '../replication';
import { pairMapSources } from './pair-maps';

export type RoleTaskKind = 'failback' | 'migrate';

/** One model for both: migrate's phases as migratePair reports them; failback prepares (demote, seed the map), then copies. */
export interface RoleTaskProgress {
  readonly phase: MigrateProgress['phase'] | 'prepare' | 'sync';
  readonly regionsTransferred: number;
  readonly regionsTotal: number;
  readonly bytesTransferred: number;
  readonly bytesPerSecond: number;
  readonly etaMs: number | undefined;
}

export interface RoleTaskState {
  readonly pair: string;
  readonly kind: RoleTaskKind;
  readonly running: boolean;
  readonly startedAtMs: number;
  readonly progress: RoleTaskProgress | null;
  readonly failback: FailbackSummary | null;
  readonly migrate: MigrateSummary | null;
  readonly error: { code: string; message: string; hint: string } | null;
  /** Cancel was asked; the task stops at its next safe point (failback: before or while copying). */
  readonly cancelling: boolean;
}

/**
 * Whether Cancel may stop the task now: a failback always (its copy is plain replication of
 * a durably marked resync map, so a stop keeps everything and Fail back again copies only the
 * rest); a migrate only while it drains (nothing has changed yet) — from its pause on, both
 * sides refuse writes until it finishes, so it is not stopped halfway; nor is a resumed migrate
 * (it starts in the pause) or one still checking the pair before its drain.
 */
export function roleTaskCancellable(state: Pick<RoleTaskState, 'kind' | 'running' | 'progress'>): boolean {
  if (!state.running) return false;
  return state.kind === 'failback' || state.progress?.phase === 'drain';
}

export interface SideReach {
  readonly volref: string;
  readonly reachable: boolean;
  readonly error: string | null;
}

export interface RoleOptions {
  readonly pair: string;
  readonly mode: PairRecord['mode'];
  readonly generation: number;
  readonly failover: { readonly atMs: number; readonly forced: boolean; readonly phase: 'promoted' | 'seeded' } | null;
  /** A migrate died in its pause: Migrate again finishes it. */
  readonly unfinishedMigrate: boolean;
  readonly primary: SideReach;
  readonly secondary: SideReach;
  /** The consistency group the pair fails over with (every secondary of it at one instant), if any; `lastCycleAtMs`: when its last cycle finished (the pair's cycle history), null if it never cycled. */
  readonly group: { readonly name: string; readonly pairs: readonly string[]; readonly lastCycleAtMs: number | null } | null;
}

/** What a migrate would copy if it started now: the primary's unshipped regions (they grow while applications write). */
export interface MigratePlan {
  readonly pair: string;
  readonly regions: number;
  readonly regionBytes: number;
  readonly unshippedRegions: number;
  readonly unshippedBytes: number;
  readonly runs: readonly (readonly [number, number])[];
  /** Which maps make it up: continuous OOS ∪ in flight; periodic current ∪ next (the cycle in progress and everything since). */
  readonly maps: readonly string[];
}

interface Running {
  state: RoleTaskState;
  done: Promise<void>;
  readonly controller: AbortController;
  /** A failback: the side its preparation demoted (known once the copy begins). */
  demoted?: string;
}

type Busy = (name: string) => string | null;

export class RoleTasks {
  private readonly tasks = new Map<string, Running>();

  constructor(
    private readonly store: PairStore,
    private readonly resolver: EndpointResolver & { endpoints(record: PairRecord): Promise<PairEndpoints> },
    private readonly events: EventLog,
    /** Why another activity of this console keeps a role change from starting (a sync, replication), or null. */
    private readonly busy: Busy,
  ) {}

  state(name: string): RoleTaskState | null {
    return this.tasks.get(name)?.state ?? null;
  }

  running(name: string): boolean {
    return this.tasks.get(name)?.state.running ?? false;
  }

  async options(name: string): Promise<RoleOptions> {
    const status = await pairStatus(this.store, this.resolver, name);
    const { record } = status;
    const side = (s: typeof status.primary): SideReach => ({ volref: s.volref, reachable: s.reachable, error: s.error });
    return {
      pair: name,
      mode: record.mode,
      generation: record.generation,
      failover: record.failover ? { atMs: record.failover.atMs, forced: record.failover.forced, phase: record.failover.phase } : null,
      unfinishedMigrate: (await readMigrateJournal(this.store.pairDir(name))) !== undefined,
      primary: side(status.primary),
      secondary: side(status.secondary),
      group: await this.groupOptions(record),
    };
  }

  private async groupOptions(record: PairRecord): Promise<RoleOptions['group']> {
    const group = await groupOf(this.store, record);
    if (!group) return null;
    const cycles = (await readCycleHistory(this.store.pairDir(record.name))).filter((c) => c.group === group.name);
    return { name: group.name, pairs: group.pairs, lastCycleAtMs: cycles.at(-1)?.finishedAtMs ?? null };
  }

  /** The primary's unshipped regions now, read from its agent (the maps `tidemark map --which` shows). */
  async migratePlan(name: string): Promise<MigratePlan> {
    const record = await this.store.require(name);
    const primary = await this.resolver.resolve(record.primary.volref);
    const maps = record.mode === 'periodic' ? ['current', 'next'] : ['oos', 'in-flight'];
    const read = await Promise.all(
      maps.map((which) =>
        pairMapSources[which]!(primary, record, () => this.resolver.endpoints(record)).catch((error: unknown) => {
          // A periodic primary between cycles has no current map: nothing is in progress.
          if (isTidemarkError(error) && error.code === 'NOT_FOUND' && which === 'current') return null;
          throw error;
        }),
      ),
    );
    const bits = read.filter((m) => m !== null).map((m) => new Bitset(m.regionCount, m.words));
    assert(bits.length > 0, 'a migrate plan reads at least one map');
    const union = Bitset.union(...bits);
    const unshippedRegions = union.popcount();
    return {
      pair: name,
      regions: union.bitCount,
      regionBytes: record.regionBytes,
      unshippedRegions,
      unshippedBytes: unshippedRegions * record.regionBytes,
      runs: mapRuns(union, 500),
      maps,
    };
  }

  private begin(name: string, kind: RoleTaskKind): Running {
    if (this.running(name))
      throw new TidemarkError('BUSY', `pair ${name} is already changing roles (${this.tasks.get(name)!.state.kind})`, 'wait for it to finish');
    const why = this.busy(name);
    if (why) throw new TidemarkError('BUSY', `pair ${name} is ${why}`, `stop that first, then ${kind} again`);
    const running: Running = {
      state: { pair: name, kind, running: true, startedAtMs: Date.now(), progress: null, failback: null, migrate: null, error: null, cancelling: false },
      done: Promise.resolve(),
      controller: new AbortController(),
    };
    this.tasks.set(name, running);
    return running;
  }

  private fail(running: Running, error: unknown): void {
    const { pair, kind } = running.state;
    if (running.controller.signal.aborted && isTidemarkError(error) && error.code === 'CANCELLED') {
      const e = cancelledError(running.state, running.demoted);
      running.state = { ...running.state, running: false, cancelling: false, error: { code: e.code, message: e.message, hint: e.hint } };
      this.events.emit({ severity: 'warning', pair, kind: `pair.${kind}-cancelled`, message: e.oneLine() });
      return;
    }
    const e = isTidemarkError(error) ? error : new TidemarkError('IO', error instanceof Error ? error.message : String(error), 'see the event log');
    running.state = { ...running.state, running: false, cancelling: false, error: { code: e.code, message: e.message, hint: e.hint } };
    this.events.emit({ severity: 'error', pair, kind: `pair.${kind}-failed`, message: e.oneLine() });
  }

  /**
   * Asks a running failback or draining migrate to stop (roleTaskCancellable); it ends with a
   * CANCELLED error saying what is kept. Refused for a migrate past its drain.
   */
  cancel(name: string): RoleTaskState {
    const running = this.tasks.get(name);
    if (!running?.state.running) throw new TidemarkError('USAGE', `pair ${name} has no failback or migrate running`, 'nothing to cancel');
    if (!roleTaskCancellable(running.state)) {
      throw new TidemarkError(
        'BUSY',
        `migrate of ${name} is past its drain: writes are paused on both sides until it finishes, so it cannot be stopped now`,
        'wait a few seconds for it to finish; then Migrate back if the roles should be as before',
      );
    }
    running.state = { ...running.state, cancelling: true };
    running.controller.abort();
    this.events.emit({ severity: 'info', pair: name, kind: `pair.${running.state.kind}-cancel`, message: `cancelling the ${running.state.kind} of ${name}` });
    return running.state;
  }

  /**
   * Starts a failback in the background (docs/failover.md): the same failbackPair as the CLI,
   * its resync shipped by replicatePair with progress callbacks. A split brain's survivor must
   * be named (the plan said so).
   */
  async startFailback(name: string, options: { discardChangesOn?: string; limitRateBytesPerSecond?: number } = {}): Promise<RoleTaskState> {
    const record = await this.store.require(name);
    if (!record.failover) throw new TidemarkError('USAGE', `pair "${name}" has not failed over`, 'failback brings back an old primary after a failover');
    const running = this.begin(name, 'failback');
    running.state = {
      ...running.state,
      progress: { phase: 'prepare', regionsTransferred: 0, regionsTotal: 0, bytesTransferred: 0, bytesPerSecond: 0, etaMs: undefined },
    };
    this.events.emit({
      severity: 'info',
      pair: name,
      kind: 'pair.failback-started',
      message: `failback of ${name} started: ${record.secondary.volref} will be demoted`,
    });
    const replicate = (pair: PairRecord, endpoints: PairEndpoints): Promise<ReplicateSummary> => {
      const total = pair.failover?.resyncRegions ?? 0;
      const meter = new ProgressMeter(Number.MAX_SAFE_INTEGER);
      const report = (progress: RoleTaskProgress) => (running.state = { ...running.state, progress });
      running.demoted = pair.secondary.volref; // the record after the seeding: the loser is the secondary
      report({ phase: 'copy', regionsTransferred: 0, regionsTotal: total, bytesTransferred: 0, bytesPerSecond: 0, etaMs: undefined });
      return replicatePair({
        store: this.store,
        pair,
        endpoints,
        once: true,
        failbackCopy: true,
        signal: running.controller.signal,
        ...(options.limitRateBytesPerSecond ? { limitRateBytesPerSecond: options.limitRateBytesPerSecond } : {}),
        onSyncProgress: (p) =>
          report({
            phase: 'sync',
            regionsTransferred: p.regionsDone,
            regionsTotal: p.regionsTotal,
            bytesTransferred: p.bytesTransferred,
            bytesPerSecond: p.bytesPerSecond,
            etaMs: p.etaMs,
          }),
        // Continuous: what is left is the tracking's OOS and in flight (writes meanwhile add to it).
        onProgress: (p) =>
          report({
            phase: 'copy',
            regionsTransferred: p.regionsTransferred,
            regionsTotal: Math.max(total, p.regionsTransferred + p.oosRegions + p.inFlightRegions),
            bytesTransferred: p.bytesTransferred,
            bytesPerSecond: p.bytesPerSecond,
            etaMs: p.etaMs,
          }),
        // Periodic: one cycle carries the whole resync map.
        onCycleProgress: (p) => {
          const snapshot = meter.update(Math.max(meter.snapshot().done, p.bytesTransferred));
          const remainingRegions = p.regionsTotal - p.regionsDone;
          const bytesPerRegion = p.regionsDone > 0 ? p.bytesTransferred / p.regionsDone : pair.regionBytes;
          report({
            phase: 'copy',
            regionsTransferred: p.regionsDone,
            regionsTotal: p.regionsTotal,
            bytesTransferred: p.bytesTransferred,
            bytesPerSecond: snapshot.ratePerSecond,
            etaMs: remainingRegions === 0 ? 0 : snapshot.ratePerSecond > 0 ? (remainingRegions * bytesPerRegion * 1000) / snapshot.ratePerSecond : undefined,
          });
        },
      });
    };
    const discard = options.discardChangesOn ? { discardChangesOn: options.discardChangesOn } : {};
    running.done = failbackPair(this.store, this.resolver, name, { ...discard, replicate, signal: running.controller.signal }).then(
      (summary) => {
        const last = running.state.progress;
        running.state = {
          ...running.state,
          running: false,
          cancelling: false, // a cancel too late to stop it
          failback: summary,
          progress: {
            phase: 'done',
            regionsTransferred: summary.regionsTransferred,
            regionsTotal: Math.max(summary.regionsTransferred, last?.regionsTotal ?? 0),
            bytesTransferred: summary.bytesTransferred,
            bytesPerSecond: last?.bytesPerSecond ?? 0,
            etaMs: 0,
          },
        };
        this.events.emit({
          severity: 'info',
          pair: name,
          kind: 'pair.failback',
          message: `pair ${name} failed back: ${summary.regionsTransferred} regions copied; the old primary is the secondary`,
        });
      },
      (error: unknown) => this.fail(running, error),
    );
    return running.state;
  }

  /** Starts a migrate in the background: migratePair with its phase progress (drain, pause, copy, verify). */
  async startMigrate(name: string): Promise<RoleTaskState> {
    const record = await this.store.require(name);
    const running = this.begin(name, 'migrate');
    this.events.emit({
      severity: 'info',
      pair: name,
      kind: 'pair.migrate-started',
      message: `migrate of ${name} started: ${record.secondary.volref} will become the primary`,
    });
    running.done = migratePair(this.store, this.resolver, name, {
      signal: running.controller.signal,
      onProgress: ({ pair: _pair, ...progress }) => (running.state = { ...running.state, progress }),
    }).then(
      (summary) => {
        running.state = { ...running.state, running: false, cancelling: false, migrate: summary };
        const failedCheck = summary.checkDifferingRegions > 0;
        this.events.emit({
          severity: failedCheck ? 'error' : 'info',
          pair: name,
          kind: 'pair.migrate',
          message: `pair ${name} migrated: ${summary.newPrimary} is the primary (generation ${summary.generation}); writes paused ${summary.pauseMs} ms${
            failedCheck ? `; the check after the pause found ${formatCount(summary.checkDifferingRegions, 'region')} different from ${summary.oldPrimary}` : ''
          }`,
        });
      },
      (error: unknown) => this.fail(running, error),
    );
    return running.state;
  }

  /** Waits for running role changes (closing the console does not cancel them: each finishes or fails on its own). */
  async dispose(): Promise<void> {
    await Promise.all([...this.tasks.values()].map((r) => r.done));
  }
}

/** What a cancelled task kept, and how to go on: one line for the card and the event log. */
function cancelledError(state: RoleTaskState, demoted: string | undefined): TidemarkError {
  const p = state.progress;
  if (state.kind === 'migrate') {
    return new TidemarkError(
      'CANCELLED',
      `migrate of ${state.pair} cancelled while draining: nothing changed, the roles are as they were${p ? ` (${p.regionsTransferred} regions shipped to the secondary)` : ''}`,
      'Migrate again when ready',
    );
  }
  if (demoted === undefined)
    return new TidemarkError('CANCELLED', `failback of ${state.pair} cancelled before it changed anything`, 'Fail back again when ready');
  return new TidemarkError(
    'CANCELLED',
    `failback of ${state.pair} cancelled after copying ${p?.regionsTransferred ?? 0} of ${p?.regionsTotal ?? 0} regions: ${demoted} is demoted and the rest of the resync map is kept`,
    'Fail back again (or run replication) to copy only what is left',
  );
}
