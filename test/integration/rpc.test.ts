// RPC over a real Unix socket: handshake, unary and streamed calls with payloads, typed
// errors, pipelining within the window, credit flow control, cancellation, keepalive, and
// malformed input closing only that connection.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rpcCreditChunks, rpcInFlightMax } from '../../src-engine/constants';
import { TidemarkError } from '../../src-engine/errors';
import { FrameDecoder, encodeFrame } from '../../src-engine/transport/frame';
import { RpcPeer, type RpcHandler } from '../../src-engine/transport/rpc';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/engine';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function serve(handler: RpcHandler, options: { keepaliveMs?: number; log?: string[] } = {}): Promise<{ path: string; server: Server; peers: RpcPeer[] }> {
  const path = join(await tempDir(), 'rpc.sock');
  const peers: RpcPeer[] = [];
  const server = createServer((socket) => {
    const peer = new RpcPeer(socket, {
      role: 'server',
      handler,
      peerInfo: { agent: 'test' },
      keepaliveMs: options.keepaliveMs ?? 0,
      log: (line) => options.log?.push(line),
    });
    peers.push(peer);
    void peer.handshake().catch(() => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, () => resolve()));
  cleanups.push(() => {
    peers.forEach((p) => p.close());
    server.close();
  });
  return { path, server, peers };
}

async function dial(path: string, keepaliveMs = 0): Promise<RpcPeer> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection(path, () => resolve(s));
    s.once('error', reject);
  });
  const peer = new RpcPeer(socket, { role: 'client', peerInfo: { client: 'test' }, keepaliveMs });
  cleanups.push(() => peer.close());
  await peer.handshake();
  return peer;
}

describe('RPC', () => {
  it('handshakes, then answers unary calls with JSON and raw payloads', async () => {
    const { path } = await serve(async (method, request) => ({ json: { method, echoed: request.json }, payload: Uint8Array.from(request.payload).reverse() }));
    const client = await dial(path);
    const reply = await client.call('echo', { n: 7 }, Uint8Array.from([1, 2, 3]));
    expect(reply.json).toEqual({ method: 'echo', echoed: { n: 7 } });
    expect([...reply.payload]).toEqual([3, 2, 1]);
  });

  it('re-raises the engine error with its code and hint', async () => {
    const { path } = await serve(async () => {
      throw new TidemarkError('NO_SPACE', 'cannot write volume /v: the disk is full', 'free space and retry');
    });
    const client = await dial(path);
    await expect(client.call('write')).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && e.code === 'NO_SPACE' && e.hint === 'free space and retry',
    );
  });

  it('pipelines many calls but never more than the in-flight window', async () => {
    let inFlight = 0;
    let inFlightPeak = 0;
    const { path } = await serve(async (_method, request) => {
      inFlight += 1;
      inFlightPeak = Math.max(inFlightPeak, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight -= 1;
      return { json: request.json, payload: new Uint8Array(0) };
    });
    const client = await dial(path);
    const replies = await Promise.all(Array.from({ length: rpcInFlightMax * 3 }, (_, i) => client.call('n', { i })));
    expect(replies.map((r) => r.json.i)).toEqual(Array.from({ length: rpcInFlightMax * 3 }, (_, i) => i));
    expect(inFlightPeak).toBeGreaterThan(1);
    expect(inFlightPeak).toBeLessThanOrEqual(rpcInFlightMax);
  });

  it('streams with credit flow control: the producer stays within the credit of a slow consumer', async () => {
    let produced = 0;
    const { path } = await serve(async function* () {
      for (let i = 0; i < 60; i++) {
        produced += 1;
        yield { json: { i }, payload: new Uint8Array(1024) };
      }
    } as RpcHandler);
    const client = await dial(path);
    let consumed = 0;
    for await (const chunk of client.stream('regions')) {
      expect(chunk.json.i).toBe(consumed);
      consumed += 1;
      await new Promise((resolve) => setTimeout(resolve, 3));
      expect(produced - consumed).toBeLessThanOrEqual(rpcCreditChunks + 1);
    }
    expect(consumed).toBe(60);
  });

  it('cancels: the handler sees the abort and the caller gets CANCELLED', async () => {
    let aborted = false;
    const { path } = await serve(
      (_method, _request, context) =>
        new Promise((_, reject) => {
          context.signal.addEventListener('abort', () => {
            aborted = true;
            reject(new TidemarkError('CANCELLED', 'hash cancelled', ''));
          });
        }),
    );
    const client = await dial(path);
    const controller = new AbortController();
    const call = client.call('hash', {}, undefined, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(call).rejects.toSatisfy((e: unknown) => e instanceof TidemarkError && e.code === 'CANCELLED');
    expect(aborted).toBe(true);
  });

  it('a consumer that stops early stops the producer, and the handler finishes', async () => {
    let produced = 0;
    let finished = 0;
    const { path } = await serve(async function* () {
      try {
        for (let i = 0; i < 10_000; i++) {
          produced += 1;
          yield { json: { i }, payload: new Uint8Array(0) };
        }
      } finally {
        finished += 1;
      }
    } as RpcHandler);
    const client = await dial(path);
    for (let round = 0; round < 3; round++) for await (const chunk of client.stream('many')) if (chunk.json.i === 2) break;
    await until(() => finished === 3, 5_000, 'every abandoned handler to finish');
    expect(produced).toBeLessThan(3 * (3 + rpcCreditChunks + 2));
    expect((await client.call('many-unary-is-refused').catch((e: TidemarkError) => e.message)) as string).toMatch(/streams/);
  });

  it('malformed bytes close that connection with a logged reason; the server keeps serving', async () => {
    const log: string[] = [];
    const { path } = await serve(async () => ({ json: { ok: true }, payload: new Uint8Array(0) }), { log });
    const raw = createConnection(path);
    raw.resume(); // consume the server's hello so the close is seen
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await closed;
    expect(log.join('\n')).toMatch(/closing connection: (frame of \d+ bytes exceeds|unknown frame type)/);
    const client = await dial(path);
    expect((await client.call('still-alive')).json).toEqual({ ok: true });
  });

  it('a wrong protocol version is refused in the handshake', async () => {
    const log: string[] = [];
    const { path } = await serve(async () => ({ json: {}, payload: new Uint8Array(0) }), { log });
    const raw = createConnection(path);
    raw.resume(); // consume the server's hello so the close is seen
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    raw.write(encodeFrame({ type: 'hello', id: 0, json: { protocol: 'tidemark-rpc', version: 999 }, payload: new Uint8Array(0) }));
    await closed;
    expect(log.join('\n')).toMatch(/version 999/);
  });

  it('nothing is served before the hello, and a second hello closes the connection', async () => {
    let served = 0;
    const log: string[] = [];
    const { path } = await serve(async () => (served++, { json: {}, payload: new Uint8Array(0) }), { log });
    const hello = encodeFrame({ type: 'hello', id: 0, json: { protocol: 'tidemark-rpc', version: 1 }, payload: new Uint8Array(0) });
    const request = encodeFrame({ type: 'request', id: 1, json: { method: 'anything', params: {} }, payload: new Uint8Array(0) });
    for (const [bytes, reason] of [
      [request, /request frame before hello/],
      [Buffer.concat([hello, hello]), /a second hello/],
    ] as const) {
      const raw = createConnection(path);
      raw.resume();
      const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
      raw.write(bytes);
      await closed;
      expect(log.join('\n')).toMatch(reason);
    }
    expect(served).toBe(0);
  });

  it('a client that stops reading stops every stream at the socket, not only at its credits', async () => {
    const chunkBytes = 1024 * 1024;
    let produced = 0;
    const { path } = await serve(() =>
      (async function* () {
        for (let i = 0; i < 100; i++) {
          produced += 1;
          yield { json: { i }, payload: new Uint8Array(chunkBytes) };
        }
      })(),
    );
    const raw = createConnection(path);
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    raw.pause(); // never reads: the server's writes back up
    const streams = 16;
    raw.write(encodeFrame({ type: 'hello', id: 0, json: { protocol: 'tidemark-rpc', version: 1 }, payload: new Uint8Array(0) }));
    for (let id = 1; id <= streams; id++) {
      raw.write(encodeFrame({ type: 'request', id, json: { method: 'big', params: {}, streaming: true }, payload: new Uint8Array(0) }));
    }
    await until(() => produced > 0, 10_000, 'the streams to start');
    // Then until the producers are stuck (no new chunk for 200 ms): that is where they stay.
    for (let seen = -1; seen !== produced;) {
      seen = produced;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // Credits alone would let each stream queue rpcCreditChunks chunks (16 × 8 MiB here).
    expect(produced).toBeLessThan(streams * rpcCreditChunks);
    raw.destroy();
  });

  it('a dropped connection fails pending calls with a clear error', async () => {
    const { path, peers } = await serve(() => new Promise(() => undefined));
    const client = await dial(path);
    const call = client.call('forever');
    await until(() => peers.length === 1);
    peers[0]!.close();
    await expect(call).rejects.toThrow(/RPC connection (closed by the peer|ended by the peer|lost: read ECONNRESET)/);
  });

  it('an end-of-stream from the peer fails calls in flight at once, on a stream left half-open', async () => {
    // What sshd does when the agent behind it dies: it forwards end-of-stream and keeps the
    // channel half-open, so no 'close' comes. Both sockets allow half-open to reproduce that.
    const path = join(await tempDir(), 'half-open.sock');
    const decoder = new FrameDecoder();
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.write(encodeFrame({ type: 'hello', id: 0, json: { protocol: 'tidemark-rpc', version: 1 }, payload: new Uint8Array(0) }));
      socket.on('data', (chunk: Buffer) => {
        if (decoder.push(chunk).some((frame) => frame.type === 'request')) socket.end(); // dies mid-call
      });
    });
    await new Promise<void>((resolve) => server.listen(path, () => resolve()));
    cleanups.push(() => server.close());
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ path, allowHalfOpen: true }, () => resolve(s));
      s.once('error', reject);
    });
    const client = new RpcPeer(socket, { role: 'client', keepaliveMs: 0 });
    cleanups.push(() => client.close());
    await client.handshake();
    const startedMs = performance.now();
    // Without reacting to 'end' the call would wait for a keepalive (none here): cap the wait.
    const failure = await Promise.race([
      client.call('forever').then(
        () => 'answered',
        (error: unknown) => error,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still pending after 2 s'), 2_000)),
    ]);
    const failedAfterMs = performance.now() - startedMs;
    expect(failure).toBeInstanceOf(TidemarkError);
    expect((failure as TidemarkError).code).toBe('DISCONNECTED');
    expect((failure as TidemarkError).message).toMatch(/ended by the peer/);
    expect(failedAfterMs).toBeLessThan(1000);
    expect(client.closed).toBe(true);
  }, 5_000);

  it('keepalive closes a peer that stops answering', async () => {
    const path = join(await tempDir(), 'silent.sock');
    // A server that completes the handshake, then goes silent (never answers pings).
    const server = createServer((socket) =>
      socket.write(encodeFrame({ type: 'hello', id: 0, json: { protocol: 'tidemark-rpc', version: 1 }, payload: new Uint8Array(0) })),
    );
    await new Promise<void>((resolve) => server.listen(path, () => resolve()));
    cleanups.push(() => server.close());
    const client = await dial(path, 30);
    const closed = new Promise<Error>((resolve) => client.onClose(resolve));
    expect((await closed).message).toMatch(/unresponsive/);
  });

  it('a streaming request for a unary method is refused without crashing the server', async () => {
    const { path } = await serve(async () => {
      throw new TidemarkError('NOT_FOUND', 'no such volume', 'check the path');
    });
    const client = await dial(path);
    const streaming = async () => {
      for await (const _ of client.stream('volume.info')) void _;
    };
    await expect(streaming()).rejects.toThrow(/does not stream/);
    await expect(client.call('volume.info')).rejects.toThrow(/no such volume/); // still serving
  });

  it('a reply of the wrong kind is let go of: a rejecting promise is handled, an unconsumed stream is closed unstarted', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    cleanups.push(() => process.off('unhandledRejection', onUnhandled));
    let rejected!: () => void;
    const rejection = new Promise<void>((resolve) => (rejected = resolve));
    const closed: string[] = [];
    let started = 0;
    const { path } = await serve(((method) => {
      if (method === 'later-rejects') {
        return new Promise((_, reject) =>
          setTimeout(() => {
            reject(new TidemarkError('NOT_FOUND', 'no such bitmap', 'create it first'));
            rejected();
          }, 20),
        );
      }
      if (method === 'generator') {
        return (async function* () {
          started += 1;
          yield { json: {}, payload: new Uint8Array(0) };
        })();
      }
      if (method === 'iterator') {
        // Not a generator: only return() can release what it holds.
        const iterator: AsyncIterableIterator<never> = {
          [Symbol.asyncIterator]: () => iterator,
          next: () => Promise.reject(new TidemarkError('NOT_FOUND', 'no such bitmap', 'create it first')),
          return: () => {
            closed.push(method);
            return Promise.reject(new Error('a failing return() is handled too'));
          },
        };
        return iterator;
      }
      return Promise.resolve({ json: { alive: true }, payload: new Uint8Array(0) });
    }) as RpcHandler);
    const client = await dial(path);
    const streaming = async (method: string) => {
      for await (const _ of client.stream(method)) void _;
    };
    await expect(streaming('later-rejects')).rejects.toThrow(/does not stream/);
    await expect(client.call('generator')).rejects.toThrow(/streams/);
    await expect(client.call('iterator')).rejects.toThrow(/streams/);
    await rejection;
    await new Promise((resolve) => setTimeout(resolve, 20)); // unhandledRejection fires after the microtasks
    expect(unhandled).toEqual([]);
    expect(started).toBe(0);
    expect(closed).toEqual(['iterator']);
    expect((await client.call('ping')).json).toEqual({ alive: true });
  });

  it('tells the handler whether a stream was asked for', async () => {
    const { path } = await serve(async function* (_method, _request, context) {
      yield { json: { streaming: context.streaming }, payload: new Uint8Array(0) };
    } as RpcHandler);
    const client = await dial(path);
    for await (const chunk of client.stream('which')) expect(chunk.json).toEqual({ streaming: true });
    const unaryServer = await serve(async (_method, _request, context) => ({ json: { streaming: context.streaming }, payload: new Uint8Array(0) }));
    expect((await (await dial(unaryServer.path)).call('which')).json).toEqual({ streaming: false });
  });

  it('decodes a 4 MiB frame fed 64 bytes at a time without re-copying what it holds', () => {
    // 65 536 pushes: a decoder that joined its buffer on every push would copy ~128 GiB (minutes);
    // this one assembles the frame once.
    const bytes = encodeFrame({ type: 'request', id: 1, json: {}, payload: new Uint8Array(4 * 2 ** 20).fill(7) });
    const decoder = new FrameDecoder();
    const frames = [];
    for (let at = 0; at < bytes.length; at += 64) frames.push(...decoder.push(bytes.subarray(at, at + 64)));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.payload.length).toBe(4 * 2 ** 20);
    expect(frames[0]!.payload.every((b) => b === 7)).toBe(true);
  });

  it('decodes a 32 MiB frame arriving over a socket in socket-sized pieces', async () => {
    const { path } = await serve(async (_m, request) => ({ json: { bytes: request.payload.length }, payload: new Uint8Array(0) }));
    const client = await dial(path);
    const reply = await client.call('put', {}, new Uint8Array(32 * 2 ** 20)); // arrives in socket-sized pieces
    expect(reply.json.bytes).toBe(32 * 2 ** 20);
  });
});
