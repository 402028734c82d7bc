// The host side of the console API: validated requests in, engine calls, plain data out.
// One instance per engine; the IPC handlers and the web server both call `handle`.

import { resolve as resolvePath } from 'node:path';
import {
  isOnHost,
  isTidemarkError,
  parseVolRef,
  roleTaskCancellable,
  volrefOnHost,
  TidemarkError,
  type Engine,
  type EngineEvent,
  type FailbackSummary,
  type FailoverSummary,
  type GeneratorSettings,
  type GroupCycleSummary,
  type GroupFailoverSummary,
  type MapInspection,
  type PairRecord,
  type RoleTaskState,
  type ReplicationState,
  type SeedingTask,
  type SyncState,
  type TrackingState,
} from '../src-engine';
import type {
  BitmapDto,
  ConsoleArgs,
  ConsoleErrorDto,
  ConsoleResult,
  ConsoleVerb,
  DataPathDto,
  FailbackDto,
  FailoverDto,
  EngineEventDto,
  GroupCycleDto,
  HostsDto,
  HostVolumesDto,
  MapViewDto,
  OverviewDto,
  ReplicationStateDto,
  ReplicationViewDto,
  RoleTaskDto,
  SeedingTaskDto,
  SyncStateDto,
  TrackingStateDto,
} from './console-api';
import { ConsoleRefusal, validateRequest } from './console-schema';

type Handlers = { [V in ConsoleVerb]: (args: ConsoleArgs<V>) => Promise<ConsoleResult<V>> };

export type HandleOutcome = { ok: true; result: unknown } | { ok: false; error: ConsoleErrorDto };

export class ConsoleService {
  private readonly handlers: Handlers;

  constructor(private readonly engine: Engine) {
    this.handlers = {
      overview: () => this.overview(),
      bitmap: async ({ pair, which }) => toBitmapDto(await engine.bitmap(pair, which)),
      events: async ({ afterId }) => engine.events.list(afterId),
      labReset: async () => {
        await engine.resetLab();
        return this.overview();
      },
      generatorStart: async (settings) => engine.startGenerator(settings as GeneratorSettings),
      generatorStop: async () => engine.stopGenerator(),
      hosts: () => this.hosts(),
      hostAdd: ({ name }) => engine.hosts.add(name),
      hostRemove: async ({ name }) => {
        await engine.hosts.remove(name);
        return this.hosts();
      },
      hostConnect: ({ name }) => engine.hosts.connect(name),
      hostAnswer: ({ name, questionId, ...answer }) => engine.hosts.answer(name, questionId, answer),
      hostVolumes: ({ host }) => this.hostVolumes(host ?? null),
      pairEstimate: ({ primary, secondary, regionBytes }) => engine.pairOps.estimate(primary, secondary, regionBytes),
      pairCreate: async (options) => {
        await engine.pairOps.create(options);
        return this.overview();
      },
      pairDelete: async ({ name, force }) => {
        await engine.pairOps.delete(name, force ?? false);
        return this.overview();
      },
      groupCreate: async ({ name, pairs }) => {
        await engine.pairOps.createGroup(name, pairs);
        return this.overview();
      },
      groupDelete: async ({ name }) => {
        await engine.pairOps.deleteGroup(name);
        return this.overview();
      },
      syncStart: async ({ pair, method, limitRateBytesPerSecond }) => toSyncStateDto(await engine.pairOps.startSync(pair, method, limitRateBytesPerSecond)),
      syncCancel: async ({ pair }) => {
        const state = await engine.pairOps.cancelSync(pair);
        return state ? toSyncStateDto(state) : null;
      },
      mapView: async ({ source, compare }) => toMapViewDto(await engine.maps.inspect(source, compare)),
      mapFileOpen: async ({ fileName, bytesBase64 }) => engine.maps.openFile(fileName, Buffer.from(bytesBase64, 'base64')),
      pairTimeline: async ({ pair }) => engine.timeline(pair),
      seedingTasks: async () => engine.seeding.list().map(toSeedingTaskDto),
      exportPreflight: async ({ source, dir, splitBytes }) => {
        const { fileSystemType: _type, ...preflight } = await engine.seeding.preflight(source, dir, splitBytes);
        return preflight;
      },
      imageExport: async ({ source, dir, splitBytes }) => toSeedingTaskDto(engine.seeding.startExport(source, dir, splitBytes)),
      imageVerify: async ({ dir }) => toSeedingTaskDto(engine.seeding.startVerify(dir)),
      imageImport: async ({ dir, target }) => toSeedingTaskDto(engine.seeding.startImport(dir, target)),
      seedingCancel: async ({ id }) => toSeedingTaskDto(await engine.seeding.cancel(id)),
      replicationStart: async ({ pair, limitRateBytesPerSecond, once }) =>
        toReplicationStateDto(await engine.replication.start(pair, { ...(limitRateBytesPerSecond ? { limitRateBytesPerSecond } : {}), once: once === true })),
      replicationStop: async ({ pair }) => {
        const state = await engine.replication.stop(pair);
        return state ? toReplicationStateDto(state) : null;
      },
      replicationPause: async ({ pair }) => toReplicationStateDto(await engine.replication.pause(pair)),
      replicationResume: async ({ pair }) => toReplicationStateDto(await engine.replication.resume(pair)),
      replicationState: ({ pair }) => this.replicationView(pair),
      failover: async ({ pair }) => toFailoverDto(await engine.pairOps.failover(pair)),
      failbackPlan: async ({ pair }) => this.failbackDto(pair, await engine.pairOps.failbackPlan(pair)),
      failbackStart: async ({ pair, discardChangesOn, limitRateBytesPerSecond }) =>
        this.roleTaskDto(
          await engine.roles.startFailback(pair, {
            ...(discardChangesOn ? { discardChangesOn } : {}),
            ...(limitRateBytesPerSecond ? { limitRateBytesPerSecond } : {}),
          }),
        ),
      migratePlan: ({ pair }) => engine.roles.migratePlan(pair),
      migrateStart: async ({ pair }) => this.roleTaskDto(await engine.roles.startMigrate(pair)),
      roleTaskCancel: async ({ pair }) => this.roleTaskDto(engine.roles.cancel(pair)),
      roleTask: async ({ pair }) => {
        const state = engine.roles.state(pair);
        return state ? this.roleTaskDto(state) : null;
      },
      roleOptions: async ({ pair }) => {
        const options = await engine.roles.options(pair);
        const state = engine.roles.state(pair);
        return { ...options, task: state ? await this.roleTaskDto(state) : null };
      },
      verify: async ({ pair }) => {
        const { regions, regionsDiffering, differing, pendingRegions } = await engine.pairOps.verify(pair);
        return { pair, regions, regionsDiffering, differing, pendingRegions };
      },
    };
  }

  private async roleTaskDto(state: RoleTaskState): Promise<RoleTaskDto> {
    const { progress, failback, migrate } = state;
    return {
      pair: state.pair,
      kind: state.kind,
      running: state.running,
      startedAtMs: state.startedAtMs,
      progress: progress ? { ...progress, etaMs: progress.etaMs ?? null } : null,
      // After a failback the record names the survivor as primary and the other side as secondary.
      failback: failback ? await this.failbackDto(state.pair, failback) : null,
      migrate: migrate
        ? {
            pair: migrate.pair,
            newPrimary: migrate.newPrimary,
            oldPrimary: migrate.oldPrimary,
            generation: migrate.generation,
            drainedRegions: migrate.drainedRegions,
            finalRegions: migrate.finalRegions,
            bytesTransferred: migrate.bytesTransferred,
            pauseMs: migrate.pauseMs,
            durationMs: migrate.durationMs,
            resumed: migrate.resumed,
            checkedRegions: migrate.checkedRegions,
            checkDifferingRegions: migrate.checkDifferingRegions,
            checkDiffering: [...migrate.checkDiffering],
          }
        : null,
      error: state.error,
      cancellable: roleTaskCancellable(state),
      cancelling: state.cancelling,
    };
  }

  private async failbackDto(pair: string, s: FailbackSummary): Promise<FailbackDto> {
    const record = await this.engine.pairs.require(pair);
    return {
      pair,
      newPrimary: record.primary.volref,
      oldPrimary: record.secondary.volref,
      regions: s.regions,
      regionBytes: record.regionBytes,
      resyncRegions: s.resyncRegions,
      resyncBytes: s.resyncBytes,
      failbackRegions: s.failbackRegions,
      unshippedRegions: s.unshippedRegions,
      runs: s.runs.slice(0, 500).map(([first, count]) => [first, count] as const),
      runsTotal: s.runs.length,
      splitBrain: s.splitBrain,
      dryRun: s.dryRun,
      regionsTransferred: s.regionsTransferred,
      bytesTransferred: s.bytesTransferred,
      durationMs: s.durationMs,
    };
  }

  private async hosts(): Promise<HostsDto> {
    const [hosts, candidates] = await Promise.all([this.engine.hosts.list(), this.engine.hosts.candidates()]);
    return { hosts, candidates };
  }

  /**
   * The pair wizard's volume picker: the volumes a host's agent has registered (this machine's
   * own agent when `host` is null), each with the volref to pair it by and the pair of this
   * console it is in. A host that is not connected is refused rather than dialled: its
   * questions (host key, passphrase) are answered on the Hosts screen.
   */
  private async hostVolumes(host: string | null): Promise<HostVolumesDto> {
    const records = await this.engine.pairs.list();
    const members = records.flatMap((r) => [r.primary.volref, r.secondary.volref].map((volref) => ({ pair: r.name, ref: parseVolRef(volref) })));
    if (host === null) {
      const volumes = await this.engine.agent.volumeList();
      return {
        host: null,
        volumes: volumes.map((v) => ({
          path: v.path,
          volref: v.path,
          sizeBytes: v.sizeBytes,
          regionBytes: v.regionBytes,
          pair: members.find((m) => m.ref.kind === 'local' && resolvePath(m.ref.path) === v.path)?.pair ?? null,
        })),
      };
    }
    const known = (await this.engine.hosts.list()).find((h) => h.name === host);
    if (!known) throw new TidemarkError('NOT_FOUND', `no host ${host} in this console`, 'add it on the Hosts screen first, or type a path');
    if (known.state !== 'connected') {
      throw new TidemarkError(
        'DISCONNECTED',
        `host ${host} is not connected (${known.state}): its volumes cannot be listed`,
        'connect it on the Hosts screen, or type a path on it',
      );
    }
    const volumes = await (await this.engine.hosts.agent(host)).volumeList();
    return {
      host,
      volumes: volumes.map((v) => ({
        path: v.path,
        volref: volrefOnHost(host, v.path),
        sizeBytes: v.sizeBytes,
        regionBytes: v.regionBytes,
        pair: members.find((m) => isOnHost(m.ref, host) && m.ref.kind === 'ssh' && m.ref.path === v.path)?.pair ?? null,
      })),
    };
  }

  /** The Pair detail's replication panel: this console's run, and the primary's tracking. */
  private async replicationView(pair: string): Promise<ReplicationViewDto> {
    const record = await this.engine.pairs.require(pair);
    const primaryRef = parseVolRef(record.primary.volref);
    const state = this.engine.replication.state(pair);
    let dataPath: DataPathDto = state?.progress?.path ?? (primaryRef.kind === 'local' ? 'local' : 'relayed');
    let tracking: TrackingStateDto | null = null;
    let trackingError: ConsoleErrorDto | null = null;
    try {
      // Polled twice a second: never dial a host for it (a host that is down would be redialled
      // at every poll); a running replication keeps its primary's host connected anyway.
      if (primaryRef.kind === 'ssh') {
        const name = primaryRef.user ? `${primaryRef.user}@${primaryRef.host}` : primaryRef.host;
        const host = (await this.engine.hosts.list()).find((h) => h.name === name || h.name === primaryRef.host);
        if (host?.state !== 'connected') {
          throw new TidemarkError(
            'DISCONNECTED',
            `the primary's host ${host?.name ?? name} is not connected: its tracking is unknown here`,
            'connect it on the Hosts screen',
          );
        }
      }
      tracking = toTrackingStateDto(await this.engine.replication.tracking(pair));
      if (!state?.progress && primaryRef.kind === 'ssh') dataPath = (await this.engine.replication.nextPath(pair)) ?? dataPath;
    } catch (error) {
      // An unreachable primary leaves the run's own figures to show; say why tracking is missing.
      trackingError = isTidemarkError(error)
        ? { code: error.code, message: error.message, hint: error.hint }
        : {
            code: 'IO',
            message: `cannot ask the primary of ${pair} for its tracking: ${(error as Error).message}`,
            hint: 'check the primary host on the Hosts screen',
          };
    }
    const role = this.engine.roles.state(pair);
    const roleChange = role?.running ? role.kind : null;
    const { group, groupError } = await this.groupView(record);
    return { pair, dataPath, state: state ? toReplicationStateDto(state) : null, tracking, trackingError, roleChange, group, groupError };
  }

  /** The pair's group and which of its members are failed over; a damaged group record is reported, not thrown (the panel polls). */
  private async groupView(record: PairRecord): Promise<Pick<ReplicationViewDto, 'group' | 'groupError'>> {
    try {
      return { group: await this.engine.pairOps.group(record), groupError: null };
    } catch (error) {
      if (!isTidemarkError(error)) throw error;
      return { group: null, groupError: { code: error.code, message: error.message, hint: error.hint } };
    }
  }

  private async overview(): Promise<OverviewDto> {
    const overview = await this.engine.overview();
    return {
      ...overview,
      pairs: overview.pairs.map((p) => ({ ...p, sync: p.sync ? toSyncStateDto(p.sync) : null })),
      groups: overview.groups.map((g) => ({ name: g.name, pairs: [...g.pairs], createdAt: g.createdAt })),
    };
  }

  /** Validates and runs one request. Never throws: refusals and engine errors are outcomes. */
  async handle(verb: unknown, args: unknown): Promise<HandleOutcome> {
    let request: { verb: ConsoleVerb; args: unknown };
    try {
      request = validateRequest(verb, args);
    } catch (error) {
      const refusal = error as ConsoleRefusal;
      return { ok: false, error: { code: refusal.code, message: refusal.message, hint: 'the console and the engine disagree on the API; reload the console' } };
    }
    try {
      const handler = this.handlers[request.verb] as (args: unknown) => Promise<unknown>;
      return { ok: true, result: await handler(request.args) };
    } catch (error) {
      if (isTidemarkError(error)) return { ok: false, error: { code: error.code, message: error.message, hint: error.hint } };
      const message = error instanceof Error ? error.message : String(error);
      return { ok: false, error: { code: 'INTERNAL', message: `unexpected error: ${message}`, hint: 'see the console log; please report it' } };
    }
  }

  onEvent(listener: (event: EngineEventDto) => void): () => void {
    return this.engine.events.subscribe((event: EngineEvent) => listener(event));
  }
}

/** A failover's outcome as the console shows it: the DTO's fields only (not `forced`, always true here, nor the failback map's name). */
export function toFailoverDto(summary: FailoverSummary & { readonly groupFailover: GroupFailoverSummary | null }): FailoverDto {
  const group = summary.groupFailover;
  return {
    pair: summary.pair,
    newPrimary: summary.newPrimary,
    oldPrimary: summary.oldPrimary,
    generation: summary.generation,
    oldPrimaryReachable: summary.oldPrimaryReachable,
    atRiskRegions: summary.atRiskRegions,
    rolledBackRegions: summary.rolledBackRegions,
    group: group
      ? {
          name: group.group,
          pairs: group.members.map((m) => m.pair),
          rolledForward: group.rolledForward.map(({ pair, cycle }) => ({ pair, cycle })),
          abandonedCycle: group.abandonedCycle,
        }
      : null,
    durationMs: summary.durationMs,
  };
}

function toBitmapDto(view: Awaited<ReturnType<Engine['bitmap']>>): BitmapDto {
  const bytes = Buffer.from(view.words.buffer, view.words.byteOffset, view.words.byteLength);
  return {
    pair: view.pair,
    which: view.which,
    regionCount: view.regionCount,
    regionBytes: view.regionBytes,
    setCount: view.setCount,
    wordsBase64: bytes.toString('base64'),
  };
}

function toMapViewDto(view: MapInspection): MapViewDto {
  const words = view.bits.words;
  return {
    label: view.label,
    regionCount: view.regionCount,
    regionBytes: view.regionBytes,
    volumeBytes: view.volumeBytes,
    setCount: view.setCount,
    bytes: view.bytes,
    runCount: view.runCount,
    largestRun: view.largestRun,
    runs: view.runs,
    wordsBase64: Buffer.from(words.buffer, words.byteOffset, words.byteLength).toString('base64'),
    comparison: view.comparison,
  };
}

/** Plain data for the renderer: the summary without its bulky parts, times as numbers. */
export function toSyncStateDto(state: SyncState): SyncStateDto {
  const { progress, summary } = state;
  return {
    pair: state.pair,
    method: state.method,
    running: state.running,
    startedAtMs: state.startedAtMs,
    progress: progress
      ? {
          method: progress.method,
          round: progress.round,
          phase: progress.phase,
          regionsDone: progress.regionsDone,
          regionsTotal: progress.regionsTotal,
          regionsTransferred: progress.regionsTransferred,
          bytesTransferred: progress.bytesTransferred,
          bytesPerSecond: progress.bytesPerSecond,
          etaMs: progress.etaMs ?? null,
          marked: progress.marked,
        }
      : null,
    summary: summary
      ? {
          method: summary.method,
          regions: summary.regions,
          regionsTransferred: summary.regionsTransferred,
          bytesTransferred: summary.bytesTransferred,
          regionsReclaimed: summary.regionsReclaimed,
          pendingRegions: summary.pendingRegions,
          pointInTime: summary.pointInTime,
          durationMs: summary.durationMs,
          rounds: summary.rounds,
          resumed: summary.resumed,
        }
      : null,
    error: state.error,
  };
}

/** Plain data for the renderer: numbers and strings only, `undefined` as null. */
export function toReplicationStateDto(state: ReplicationState): ReplicationStateDto {
  const { progress, summary } = state;
  return {
    pair: state.pair,
    running: state.running,
    paused: state.paused,
    startedAtMs: state.startedAtMs,
    limitRateBytesPerSecond: state.limitRateBytesPerSecond,
    progress: progress
      ? {
          state: progress.state,
          oosRegions: progress.oosRegions,
          inFlightRegions: progress.inFlightRegions,
          moosRegions: progress.moosRegions,
          lagBytes: progress.lagBytes,
          oldestUnshippedMs: progress.oldestUnshippedMs,
          regionsTransferred: progress.regionsTransferred,
          bytesTransferred: progress.bytesTransferred,
          bytesPerSecond: progress.bytesPerSecond,
          etaMs: progress.etaMs ?? null,
          backlogRegions: progress.backlogRegions,
          protectSnapshotId: progress.protectSnapshotId,
          path: progress.path,
        }
      : null,
    cycles: state.cycles.map((c) => ({ ...c })),
    group: state.group,
    once: state.once,
    cycleProgress: state.cycleProgress ? { ...state.cycleProgress } : null,
    cycleStartedAtMs: state.cycleStartedAtMs,
    lastGroupCycle: state.lastGroupCycle ? toGroupCycleDto(state.lastGroupCycle) : null,
    retrying: state.retrying ? { ...state.retrying } : null,
    history: state.history.map((s) => ({
      atMs: s.atMs,
      lagRegions: s.lagRegions,
      lagBytes: s.lagBytes,
      oldestUnshippedMs: s.oldestUnshippedMs,
      bytesPerSecond: s.bytesPerSecond,
      moosRegions: s.moosRegions,
    })),
    summary: summary
      ? {
          regions: summary.regions,
          regionsTransferred: summary.regionsTransferred,
          bytesTransferred: summary.bytesTransferred,
          recoveredRegions: summary.recoveredRegions,
          backlogRegions: summary.backlogRegions,
          requeuedRegions: summary.requeuedRegions,
          protectSnapshots: summary.protectSnapshots,
          retries: summary.retries,
          durationMs: summary.durationMs,
          inSync: summary.inSync,
          syncRegionsTransferred: summary.sync?.regionsTransferred ?? null,
        }
      : null,
    error: state.error,
  };
}

function toTrackingStateDto(state: TrackingState): TrackingStateDto {
  return {
    regionCount: state.regionCount,
    oosRegions: state.oosRegions,
    inFlightRegions: state.inFlightRegions,
    moosRegions: state.moosRegions,
    oldestUnshippedMs: state.oldestUnshippedMs,
    recoveredRegions: state.recoveredRegions,
    writes: state.writes,
    moosDestages: state.moosDestages,
    predictRegions: state.predictRegions,
  };
}

function toSeedingTaskDto(task: SeedingTask): SeedingTaskDto {
  return { ...task, progress: task.progress ? { ...task.progress, etaMs: task.progress.etaMs ?? null } : null };
}

export { ConsoleRefusal };

function toGroupCycleDto(cycle: GroupCycleSummary): GroupCycleDto {
  const { group, pointInTime, regionsTransferred, bytesTransferred, durationMs } = cycle;
  const members = cycle.members.map((m) => ({ pair: m.pair, cycle: m.cycle, regionsTransferred: m.regionsTransferred, bytesTransferred: m.bytesTransferred }));
  return { group, pointInTime, members, regionsTransferred, bytesTransferred, durationMs };
}
