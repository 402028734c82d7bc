// The renderer's way to the engine: the Electron preload bridge when present, otherwise the
// web-mode client over WebSocket (token taken from the page URL once, then kept in session
// storage and removed from the address bar).

import type { ConsoleApi, ConsoleArgs, ConsoleErrorDto, ConsoleResult, ConsoleVerb, EngineEventDto } from '../src-main/console-api';

declare global {
  interface Window {
    tidemark?: ConsoleApi;
  }
}

/** An engine error as the renderer shows it: message and hint, in context. */
export class ApiError extends Error {
  constructor(readonly detail: ConsoleErrorDto) {
    super(detail.message);
  }
}

type Pending = { resolve: (value: unknown) => void; reject: (error: Error) => void };

class WebClient implements ConsoleApi {
  private socket: WebSocket | undefined;
  private opening: Promise<WebSocket> | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(event: EngineEventDto) => void>();

  constructor(private readonly token: string) {}

  private connect(): Promise<WebSocket> {
    if (this.socket?.readyState === WebSocket.OPEN) return Promise.resolve(this.socket);
    this.opening ??= new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(`ws://${location.host}/api?token=${encodeURIComponent(this.token)}`);
      socket.onopen = () => {
        this.socket = socket;
        this.opening = undefined;
        resolve(socket);
      };
      socket.onerror = () => {
        this.opening = undefined;
        reject(
          new ApiError({
            code: 'DISCONNECTED',
            message: 'cannot reach the Tidemark engine',
            hint: 'is `tidemark console --web` still running? Reload the page.',
          }),
        );
      };
      socket.onclose = () => {
        this.socket = undefined;
        for (const [, p] of this.pending) p.reject(new ApiError({ code: 'DISCONNECTED', message: 'connection to the engine closed', hint: 'reload the page' }));
        this.pending.clear();
      };
      socket.onmessage = (message) => this.receive(String(message.data));
    });
    return this.opening;
  }

  private receive(text: string): void {
    const frame = JSON.parse(text) as { id?: number; ok?: boolean; result?: unknown; error?: ConsoleErrorDto; push?: string; data?: EngineEventDto };
    if (frame.push === 'event' && frame.data) {
      for (const listener of this.listeners) listener(frame.data);
      return;
    }
    const pending = frame.id === undefined ? undefined : this.pending.get(frame.id);
    if (!pending || frame.id === undefined) return;
    this.pending.delete(frame.id);
    if (frame.ok) pending.resolve(frame.result);
    else pending.reject(new ApiError(frame.error ?? { code: 'INTERNAL', message: 'malformed reply', hint: 'reload the page' }));
  }

  async request<V extends ConsoleVerb>(verb: V, args: ConsoleArgs<V>): Promise<ConsoleResult<V>> {
    const socket = await this.connect();
    const id = this.nextId++;
    return new Promise<ConsoleResult<V>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      socket.send(JSON.stringify({ id, verb, args }));
    });
  }

  onEvent(listener: (event: EngineEventDto) => void): () => void {
    this.listeners.add(listener);
    void this.connect().catch(() => undefined);
    return () => this.listeners.delete(listener);
  }
}

function takeToken(): string {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) {
    sessionStorage.setItem('tidemark-token', fromUrl);
    history.replaceState(null, '', location.pathname);
    return fromUrl;
  }
  return sessionStorage.getItem('tidemark-token') ?? '';
}

/** Any rejection as an ApiError: the Electron bridge's JSON message, or a plain error. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const packed = /^tidemark:(\{.*\})$/s.exec(message);
  if (packed) {
    try {
      return new ApiError(JSON.parse(packed[1]!) as ConsoleErrorDto);
    } catch {
      // fall through: not our packing after all
    }
  }
  return new ApiError({ code: 'INTERNAL', message, hint: 'reload the console; if it persists, see the console log' });
}

let webClient: WebClient | undefined;

function bridged(bridge: ConsoleApi): ConsoleApi {
  const pick = bridge.pickDirectory?.bind(bridge);
  return {
    request: (verb, args) => bridge.request(verb, args).catch((error: unknown) => Promise.reject(toApiError(error))),
    onEvent: (listener) => bridge.onEvent(listener),
    ...(pick ? { pickDirectory: (options) => pick(options).catch((error: unknown) => Promise.reject(toApiError(error))) } : {}),
  };
}

export function consoleApi(): ConsoleApi {
  if (window.tidemark) return bridged(window.tidemark);
  webClient ??= new WebClient(takeToken());
  return webClient;
}
