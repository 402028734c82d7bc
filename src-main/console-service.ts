// The host side of the console API: validated requests in, engine calls, plain data out.
// One instance per engine; the IPC handlers and the web server both call `handle`.

import { isTidemarkError, type Engine, type EngineEvent, type GeneratorSettings, type SeedingTask, type SyncState } from '../src-engine';
import type {
  BitmapDto,
  ConsoleArgs,
  ConsoleErrorDto,
  ConsoleResult,
  ConsoleVerb,
  EngineEventDto,
  HostsDto,
  OverviewDto,
  SeedingTaskDto,
  SyncStateDto,
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
      pairEstimate: ({ primary, secondary, regionBytes }) => engine.pairOps.estimate(primary, secondary, regionBytes),
      pairCreate: async (options) => {
        await engine.pairOps.create(options);
        return this.overview();
      },
      pairDelete: async ({ name, force }) => {
        await engine.pairOps.delete(name, force ?? false);
        return this.overview();
      },
      syncStart: async ({ pair, method, limitRateBytesPerSecond }) => toSyncStateDto(await engine.pairOps.startSync(pair, method, limitRateBytesPerSecond)),
      syncCancel: async ({ pair }) => {
        const state = await engine.pairOps.cancelSync(pair);
        return state ? toSyncStateDto(state) : null;
      },
      seedingTasks: async () => engine.seeding.list().map(toSeedingTaskDto),
      exportPreflight: async ({ source, dir, splitBytes }) => {
        const { fileSystemType: _type, ...preflight } = await engine.seeding.preflight(source, dir, splitBytes);
        return preflight;
      },
      imageExport: async ({ source, dir, splitBytes }) => toSeedingTaskDto(engine.seeding.startExport(source, dir, splitBytes)),
      imageVerify: async ({ dir }) => toSeedingTaskDto(engine.seeding.startVerify(dir)),
      imageImport: async ({ dir, target }) => toSeedingTaskDto(engine.seeding.startImport(dir, target)),
      seedingCancel: async ({ id }) => toSeedingTaskDto(await engine.seeding.cancel(id)),
      verify: async ({ pair }) => {
        const { regions, regionsDiffering, differing, pendingRegions } = await engine.pairOps.verify(pair);
        return { pair, regions, regionsDiffering, differing, pendingRegions };
      },
    };
  }

  private async hosts(): Promise<HostsDto> {
    const [hosts, candidates] = await Promise.all([this.engine.hosts.list(), this.engine.hosts.candidates()]);
    return { hosts, candidates };
  }

  private async overview(): Promise<OverviewDto> {
    const overview = await this.engine.overview();
    return { ...overview, pairs: overview.pairs.map((p) => ({ ...p, sync: p.sync ? toSyncStateDto(p.sync) : null })) };
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

function toSeedingTaskDto(task: SeedingTask): SeedingTaskDto {
  return { ...task, progress: task.progress ? { ...task.progress, etaMs: task.progress.etaMs ?? null } : null };
}

export { ConsoleRefusal };
