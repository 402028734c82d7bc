// RPC over any byte stream (a local socket, stdio, an SSH channel): a version handshake,
// request ids, pipelining with a bounded in-flight window, streamed responses with credit
// flow control, cancellation and keepalive. Spec: docs/agent-rpc.md.

import type { Duplex } from 'node:stream';
import { assert } from '../assert';
import { rpcCreditChunks, rpcInFlightMax, rpcKeepaliveMs, rpcHandshakeTimeoutMs, rpcProtocolVersion } from '../constants';
import { TidemarkError, isTidemarkError, type ErrorCode } from '../errors';
import { FrameDecoder, FrameError, encodeFrameParts, type Frame } from './frame';

export interface RpcMessage {
  readonly json: Record<string, unknown>;
  readonly payload: Uint8Array;
}

export interface RpcContext {
  readonly signal: AbortSignal;
  /** Whether the client asked for a stream of replies (else one reply). */
  readonly streaming: boolean;
}

/**
 * Serves one method: a single reply, or a stream of replies (an async iterable). A handler
 * that streams should produce lazily (an async generator): when the client asked for one
 * reply, the stream is closed unconsumed. A handler may refuse a request by throwing.
 */
export type RpcHandler = (method: string, request: RpcMessage, context: RpcContext) => Promise<RpcMessage> | AsyncIterable<RpcMessage>;

export interface RpcOptions {
  readonly role: 'client' | 'server';
  readonly handler?: RpcHandler;
  /** What this side is, sent in the handshake (e.g. the agent version). */
  readonly peerInfo?: Record<string, unknown>;
  readonly log?: (line: string) => void;
  readonly keepaliveMs?: number;
}

const emptyPayload = new Uint8Array(0);

interface Pending {
  readonly onFrame: (frame: Frame) => void;
  readonly onClose: (error: Error) => void;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<RpcMessage> {
  return typeof value === 'object' && value !== null && typeof (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function';
}

function isThenable(value: unknown): value is PromiseLike<RpcMessage> {
  return typeof value === 'object' && value !== null && typeof (value as Partial<PromiseLike<unknown>>).then === 'function';
}

/**
 * Lets go of a handler's result that will not be consumed (the client asked for the other
 * kind of reply): a promise's rejection is handled, and a stream is closed (a generator that
 * never started then runs nothing). An unhandled rejection would end the serving process.
 */
function discardResult(result: unknown): void {
  try {
    if (isThenable(result)) Promise.resolve(result).catch(() => undefined);
    if (isAsyncIterable(result)) {
      const iterator = result[Symbol.asyncIterator]();
      if (typeof iterator.return === 'function') Promise.resolve(iterator.return()).catch(() => undefined);
    }
  } catch {
    // A result that cannot even be closed holds nothing this side can release.
  }
}

function errorFromFrame(json: Record<string, unknown>): TidemarkError {
  const code = (typeof json.code === 'string' ? json.code : 'IO') as ErrorCode;
  return new TidemarkError(code, typeof json.message === 'string' ? json.message : 'remote error', typeof json.hint === 'string' ? json.hint : '');
}

export class RpcPeer {
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  /** Requests this side abandoned (cancelled early): their in-flight replies are dropped. */
  private readonly abandoned = new Set<number>();
  private readonly serving = new Map<number, { abort: AbortController; credit: (n: number) => void }>();
  private nextId = 1;
  private inFlight = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private closedError: Error | undefined;
  private readonly closeListeners: ((error: Error) => void)[] = [];
  private lastHeardMs = Date.now();
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private helloResolve: ((info: Record<string, unknown>) => void) | undefined;
  private helloSeen = false;
  private readonly helloReceived: Promise<Record<string, unknown>>;
  private bytesReadCount = 0;
  private bytesWrittenCount = 0;

  constructor(
    private readonly channel: Duplex,
    private readonly options: RpcOptions,
  ) {
    this.helloReceived = new Promise((resolve) => (this.helloResolve = resolve));
    void this.helloReceived.catch(() => undefined);
    channel.on('data', (chunk: Buffer) => this.receive(chunk));
    channel.on('error', (error: Error) =>
      this.close(new TidemarkError('DISCONNECTED', `RPC connection lost: ${error.message}`, 'the agent or the link went away; retry to reconnect')),
    );
    channel.on('close', () =>
      this.close(new TidemarkError('DISCONNECTED', 'RPC connection closed by the peer', 'the agent or the link went away; retry to reconnect')),
    );
    // A stream that allows half-open (an SSH channel) may report the peer's end without a
    // 'close': sshd forwards the death of the agent behind it as end-of-stream and keeps the
    // channel open. No reply can follow, so it is a dropped connection now, not at the next
    // keepalive. When this side closes first, close() has already run and this does nothing.
    channel.on('end', () =>
      this.close(new TidemarkError('DISCONNECTED', 'RPC connection ended by the peer', 'the agent or the link went away; retry to reconnect')),
    );
    const keepaliveMs = options.keepaliveMs ?? rpcKeepaliveMs;
    if (keepaliveMs > 0) {
      this.keepaliveTimer = setInterval(() => this.keepalive(keepaliveMs), keepaliveMs);
      this.keepaliveTimer.unref();
    }
  }

  /** Exchanges hellos; resolves with the peer's info. Refuses another protocol version. */
  async handshake(timeoutMs = rpcHandshakeTimeoutMs): Promise<Record<string, unknown>> {
    this.send({ type: 'hello', id: 0, json: { protocol: 'tidemark-rpc', version: rpcProtocolVersion, ...this.options.peerInfo }, payload: emptyPayload });
    const timer = setTimeout(
      () =>
        this.close(
          new TidemarkError('DISCONNECTED', `RPC peer sent no hello within ${timeoutMs / 1000} s`, 'the far side is not a Tidemark agent, or it is stuck'),
        ),
      timeoutMs,
    );
    try {
      return await Promise.race([this.helloReceived, new Promise<never>((_, reject) => this.onClose(reject))]);
    } finally {
      clearTimeout(timer);
    }
  }

  onClose(listener: (error: Error) => void): void {
    if (this.closedError) listener(this.closedError);
    else this.closeListeners.push(listener);
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Bytes this side has received on its stream (frames of every kind, handshake included). */
  get bytesRead(): number {
    return this.bytesReadCount;
  }

  /** Bytes this side has handed to its stream (frames of every kind, handshake included). */
  get bytesWritten(): number {
    return this.bytesWrittenCount;
  }

  /** Bytes both ways on this connection's stream so far; kept after it closes. */
  wireBytes(): number {
    return this.bytesReadCount + this.bytesWrittenCount;
  }

  private send(frame: Frame): void {
    if (this.closedError) throw this.closedError;
    const [head, payload] = encodeFrameParts(frame);
    this.bytesWrittenCount += head.length + payload.length;
    if (payload.length === 0) {
      this.channel.write(head);
      return;
    }
    this.channel.cork(); // one writev for both pieces
    this.channel.write(head);
    this.channel.write(payload);
    this.channel.uncork();
  }

  /** Resolves once the channel has room again (at once when it has), or when it closes. */
  private drained(): Promise<void> {
    if (!this.channel.writableNeedDrain || this.closedError) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.channel.off('drain', done);
        this.channel.off('close', done);
        resolve();
      };
      this.channel.on('drain', done);
      this.channel.on('close', done);
    });
  }

  private keepalive(keepaliveMs: number): void {
    if (Date.now() - this.lastHeardMs > 3 * keepaliveMs) {
      this.close(
        new TidemarkError(
          'DISCONNECTED',
          `RPC peer unresponsive for ${Math.round((Date.now() - this.lastHeardMs) / 1000)} s`,
          'the link may be down; Tidemark reconnects on the next operation',
        ),
      );
      return;
    }
    if (!this.closedError) this.send({ type: 'ping', id: 0, json: {}, payload: emptyPayload });
  }

  private receive(chunk: Buffer): void {
    this.lastHeardMs = Date.now();
    this.bytesReadCount += chunk.length;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      const reason = error instanceof FrameError ? error.reason : String(error);
      this.options.log?.(`rpc: closing connection: ${reason}`);
      this.close(new TidemarkError('IO', `RPC protocol error: ${reason}`, 'the peer is not a compatible Tidemark agent'));
      return;
    }
    for (const frame of frames) {
      try {
        this.dispatch(frame);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        this.options.log?.(`rpc: closing connection: ${reason}`);
        this.close(new TidemarkError('IO', `RPC protocol error: ${reason}`, 'the peer is not a compatible Tidemark agent'));
        return;
      }
    }
  }

  private dispatch(frame: Frame): void {
    // The peer's hello comes first and once: nothing is served to a peer that has not said
    // which protocol it speaks.
    if ((frame.type === 'hello') !== !this.helloSeen) throw new Error(frame.type === 'hello' ? 'a second hello' : `${frame.type} frame before hello`);
    switch (frame.type) {
      case 'hello':
        return this.receiveHello(frame);
      case 'ping':
        return this.send({ type: 'pong', id: 0, json: {}, payload: emptyPayload });
      case 'pong':
        return;
      case 'request':
        return this.serve(frame);
      case 'cancel':
        this.serving.get(frame.id)?.abort.abort();
        return;
      case 'credit': {
        const chunks = frame.json.chunks;
        if (typeof chunks !== 'number' || !Number.isInteger(chunks) || chunks < 1 || chunks > rpcCreditChunks) throw new Error('bad credit');
        this.serving.get(frame.id)?.credit(chunks);
        return;
      }
      default: {
        const pending = this.pending.get(frame.id);
        if (!pending && this.abandoned.has(frame.id)) {
          if (frame.type !== 'chunk') this.abandoned.delete(frame.id); // its last frame
          return;
        }
        if (!pending) throw new Error(`${frame.type} frame for unknown request ${frame.id}`);
        pending.onFrame(frame);
      }
    }
  }

  private receiveHello(frame: Frame): void {
    if (frame.json.protocol !== 'tidemark-rpc' || frame.json.version !== rpcProtocolVersion) {
      throw new Error(`peer speaks ${String(frame.json.protocol)} version ${String(frame.json.version)}, this side ${rpcProtocolVersion}`);
    }
    this.helloSeen = true;
    this.helloResolve?.(frame.json);
    this.helloResolve = undefined;
  }

  // ---- client side ----

  private async acquireSlot(): Promise<void> {
    while (this.inFlight >= rpcInFlightMax) await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    this.inFlight += 1;
  }

  private releaseSlot(): void {
    this.inFlight -= 1;
    this.slotWaiters.shift()?.();
  }

  /** One request, one reply. */
  async call(
    method: string,
    params: Record<string, unknown> = {},
    payload: Uint8Array = emptyPayload,
    options: { signal?: AbortSignal } = {},
  ): Promise<RpcMessage> {
    const replies: RpcMessage[] = [];
    for await (const reply of this.stream_(method, params, payload, options, false)) replies.push(reply);
    assert(replies.length === 1, `one reply to ${method}`);
    return replies[0]!;
  }

  /** One request, a stream of replies. The consumer's pace limits the sender (credits). */
  stream(
    method: string,
    params: Record<string, unknown> = {},
    payload: Uint8Array = emptyPayload,
    options: { signal?: AbortSignal } = {},
  ): AsyncIterable<RpcMessage> {
    return this.stream_(method, params, payload, options, true);
  }

  private async *stream_(
    method: string,
    params: Record<string, unknown>,
    payload: Uint8Array,
    options: { signal?: AbortSignal },
    streaming: boolean,
  ): AsyncGenerator<RpcMessage> {
    if (this.closedError) throw this.closedError;
    await this.acquireSlot();
    const id = this.nextId++;
    const queue: Frame[] = [];
    let failure: Error | undefined;
    let ended = false;
    let wake: (() => void) | undefined;
    this.pending.set(id, {
      onFrame: (frame) => {
        if (frame.type === 'chunk' && queue.filter((f) => f.type === 'chunk').length >= rpcCreditChunks)
          throw new Error(`request ${id}: more chunks than credited`);
        queue.push(frame);
        wake?.();
      },
      onClose: (error) => {
        failure = error;
        wake?.();
      },
    });
    const onAbort = () => {
      if (!this.closedError) this.send({ type: 'cancel', id, json: {}, payload: emptyPayload });
    };
    options.signal?.addEventListener('abort', onAbort);
    try {
      this.send({ type: 'request', id, json: { method, params, streaming }, payload });
      for (;;) {
        const frame = queue.shift();
        if (!frame) {
          if (failure) throw failure;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        if (frame.type === 'error') {
          ended = true;
          throw errorFromFrame(frame.json);
        }
        if (frame.type === 'end') {
          ended = true;
          return;
        }
        if (frame.type === 'response') {
          ended = true;
          yield { json: frame.json, payload: frame.payload };
          return;
        }
        if (frame.type !== 'chunk') throw new Error(`unexpected ${frame.type} frame for request ${id}`);
        yield { json: frame.json, payload: frame.payload };
        if (!this.closedError) this.send({ type: 'credit', id, json: { chunks: 1 }, payload: emptyPayload });
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      if (this.pending.delete(id) && !this.closedError && failure === undefined && !ended) {
        // The consumer stopped early: tell the server to stop producing, and drop what it
        // already sent.
        this.abandoned.add(id);
        if (this.abandoned.size > rpcInFlightMax * 4) this.abandoned.delete(this.abandoned.values().next().value!);
        this.send({ type: 'cancel', id, json: {}, payload: emptyPayload });
      }
      this.releaseSlot();
    }
  }

  // ---- server side ----

  private serve(frame: Frame): void {
    const handler = this.options.handler;
    if (!handler) throw new Error('request to a peer that serves nothing');
    if (this.serving.has(frame.id)) throw new Error(`request id ${frame.id} reused while in flight`);
    if (this.serving.size >= rpcInFlightMax) throw new Error(`more than ${rpcInFlightMax} requests in flight`);
    const { method, params, streaming } = frame.json;
    if (typeof method !== 'string' || typeof params !== 'object' || params === null || Array.isArray(params) || typeof streaming !== 'boolean') {
      throw new Error('request header lacks method, params or streaming');
    }
    const abort = new AbortController();
    let credits = rpcCreditChunks;
    let creditWaiter: (() => void) | undefined;
    this.serving.set(frame.id, {
      abort,
      credit: (n) => {
        credits = Math.min(rpcCreditChunks, credits + n); // a peer cannot bank unlimited credit
        creditWaiter?.();
      },
    });
    abort.signal.addEventListener('abort', () => creditWaiter?.());
    const waitForCredit = async () => {
      while (credits === 0 && !abort.signal.aborted && !this.closedError) await new Promise<void>((resolve) => (creditWaiter = resolve));
      if (!abort.signal.aborted && !this.closedError) credits -= 1;
    };
    void this.run(frame.id, method, { json: params as Record<string, unknown>, payload: frame.payload }, streaming, handler, abort, waitForCredit);
  }

  private async run(
    id: number,
    method: string,
    request: RpcMessage,
    streaming: boolean,
    handler: RpcHandler,
    abort: AbortController,
    waitForCredit: () => Promise<void>,
  ): Promise<void> {
    try {
      const result: unknown = handler(method, request, { signal: abort.signal, streaming });
      if (streaming) {
        if (!isAsyncIterable(result)) {
          discardResult(result); // the work started; its outcome is not wanted
          throw new TidemarkError('USAGE', `method ${method} does not stream`, 'call it without streaming');
        }
        for await (const message of result) {
          await waitForCredit();
          if (abort.signal.aborted || this.closedError) break;
          this.send({ type: 'chunk', id, json: message.json, payload: message.payload });
          await this.drained(); // credits bound each stream; this bounds all of them together
        }
        if (abort.signal.aborted) throw new TidemarkError('CANCELLED', `${method} cancelled`, '');
        if (!this.closedError) this.send({ type: 'end', id, json: {}, payload: emptyPayload });
      } else {
        if (!isThenable(result)) {
          discardResult(result);
          throw new TidemarkError('USAGE', `method ${method} streams`, 'call it as a stream');
        }
        const message = await result;
        if (!this.closedError) this.send({ type: 'response', id, json: message.json, payload: message.payload });
      }
    } catch (error) {
      if (!this.closedError) {
        const json = isTidemarkError(error)
          ? { code: error.code, message: error.message, hint: error.hint }
          : { code: 'IO', message: `agent error in ${method}: ${error instanceof Error ? error.message : String(error)}`, hint: 'see the agent log' };
        this.send({ type: 'error', id, json, payload: emptyPayload });
      }
    } finally {
      this.serving.delete(id);
    }
  }

  close(error: Error = new TidemarkError('IO', 'RPC connection closed', '')): void {
    if (this.closedError) return;
    this.closedError = error;
    clearInterval(this.keepaliveTimer);
    for (const pending of this.pending.values()) pending.onClose(error);
    for (const served of this.serving.values()) served.abort.abort();
    for (const wake of this.slotWaiters.splice(0)) wake();
    for (const listener of this.closeListeners.splice(0)) listener(error);
    this.channel.destroy();
  }
}
