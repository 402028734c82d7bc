// A recording ConsoleApi for component tests: it answers from a table and remembers every
// request, so a test can check what a component asked the engine to do.
import type { ConsoleApi, ConsoleArgs, ConsoleResult, ConsoleVerb, EngineEventDto } from '../../src-main/console-api';

export class RecordingApi implements ConsoleApi {
  readonly requests: { verb: ConsoleVerb; args: unknown }[] = [];
  private readonly listeners = new Set<(event: EngineEventDto) => void>();

  constructor(private readonly answers: Partial<{ [V in ConsoleVerb]: (args: ConsoleArgs<V>) => ConsoleResult<V> }>) {}

  async request<V extends ConsoleVerb>(verb: V, args: ConsoleArgs<V>): Promise<ConsoleResult<V>> {
    this.requests.push({ verb, args });
    const answer = this.answers[verb] as ((args: ConsoleArgs<V>) => ConsoleResult<V>) | undefined;
    if (!answer) throw new Error(`no answer for ${verb}`);
    return answer(args);
  }

  onEvent(listener: (event: EngineEventDto) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  push(event: EngineEventDto): void {
    for (const listener of this.listeners) listener(event);
  }
}
