// The host side of the console API: validated requests in, engine calls, plain data out.
// One instance per engine; the IPC handlers and the web server both call `handle`.

import { isTidemarkError, type Engine, type EngineEvent, type GeneratorSettings } from '../src-engine';
import type { BitmapDto, ConsoleArgs, ConsoleErrorDto, ConsoleResult, ConsoleVerb, EngineEventDto, HostsDto, OverviewDto } from './console-api';
import { ConsoleRefusal, validateRequest } from './console-schema';

type Handlers = { [V in ConsoleVerb]: (args: ConsoleArgs<V>) => Promise<ConsoleResult<V>> };

export type HandleOutcome = { ok: true; result: unknown } | { ok: false; error: ConsoleErrorDto };

export class ConsoleService {
  private readonly handlers: Handlers;

  constructor(private readonly engine: Engine) {
    this.handlers = {
      overview: () => this.overview(),
      bitmap: async ({ pair, which }) => toBitmapDto(engine.bitmap(pair, which)),
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
    };
  }

  private async hosts(): Promise<HostsDto> {
    const [hosts, candidates] = await Promise.all([this.engine.hosts.list(), this.engine.hosts.candidates()]);
    return { hosts, candidates };
  }

  private async overview(): Promise<OverviewDto> {
    return this.engine.overview();
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

function toBitmapDto(view: ReturnType<Engine['bitmap']>): BitmapDto {
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

export { ConsoleRefusal };
