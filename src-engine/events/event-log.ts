// The engine's event log: every notable thing (a volume created, a write generator started,
// a bitmap segment recovered) with time, pair and severity. A bounded ring; subscribers are
// told of each event as it happens.

import { assert } from '../assert';

export type Severity = 'info' | 'warning' | 'error';

export interface EngineEvent {
  readonly id: number;
  /** Wall-clock time, ms since the epoch. */
  readonly atMs: number;
  readonly severity: Severity;
  /** The pair the event concerns, if any. */
  readonly pair: string | null;
  /** A short machine-readable kind, e.g. `lab.created`, `generator.started`. */
  readonly kind: string;
  readonly message: string;
}

export type EventInput = Omit<EngineEvent, 'id' | 'atMs'>;

export class EventLog {
  private readonly events: EngineEvent[] = [];
  private nextId = 1;
  private readonly listeners = new Set<(event: EngineEvent) => void>();

  constructor(
    readonly capacity = 10_000,
    private readonly nowMs: () => number = Date.now,
  ) {
    assert(capacity > 0, 'event log capacity is positive');
  }

  emit(input: EventInput): EngineEvent {
    const event: EngineEvent = { ...input, id: this.nextId++, atMs: this.nowMs() };
    this.events.push(event);
    if (this.events.length > this.capacity) this.events.shift();
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /** Events with id > afterId (all kept events by default), oldest first. */
  list(afterId = 0): EngineEvent[] {
    const first = this.events.findIndex((e) => e.id > afterId);
    return first === -1 ? [] : this.events.slice(first);
  }

  subscribe(listener: (event: EngineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
