// A userspace TCP relay on 127.0.0.1 that delays every chunk by a fixed time in each direction,
// keeping order: link latency for tests on kernels without netem (sch_netem).
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface DelayRelayOptions {
  /** Where each accepted connection is forwarded. */
  readonly targetAddress: string;
  readonly targetPort: number;
  /** Added to every chunk, each way: a round trip through the relay takes at least twice this. */
  readonly delayMs: number;
  /** Bytes held per direction before the relay stops reading that side (back-pressure). */
  readonly queuedBytesMax?: number;
}

export interface DelayRelay {
  readonly address: '127.0.0.1';
  readonly port: number;
  /** Connections accepted so far. */
  connectionCount(): number;
  /** Closes the listener and destroys every relayed connection. */
  dispose(): Promise<void>;
}

const queuedBytesMaxDefault = 8 * 1024 * 1024;

/**
 * One direction of a relayed connection. Each chunk is due `delayMs` after it was read; a
 * single timer writes due chunks in arrival order (never early: the timer is re-armed while
 * the head is not yet due), and the source's end is forwarded after its last chunk.
 */
class DelayedPipe {
  private readonly queue: { readonly data: Buffer | null; readonly dueMs: number }[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingForDrain = false;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly delayMs: number,
    private readonly queuedBytesMax: number,
  ) {
    if (!(delayMs >= 0 && Number.isFinite(delayMs))) throw new Error(`delayMs must be a non-negative number, not ${delayMs}`);
    if (!(queuedBytesMax > 0)) throw new Error(`queuedBytesMax must be positive, not ${queuedBytesMax}`);
    from.on('data', (chunk: Buffer) => {
      this.push(chunk);
      if (this.queuedBytes > this.queuedBytesMax) from.pause();
    });
    from.on('end', () => this.push(null));
    to.on('drain', () => {
      this.waitingForDrain = false;
      this.deliver();
    });
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  private push(data: Buffer | null): void {
    this.queue.push({ data, dueMs: performance.now() + this.delayMs });
    this.queuedBytes += data?.length ?? 0;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.waitingForDrain || this.queue.length === 0) return;
    const waitMs = Math.max(0, Math.ceil(this.queue[0]!.dueMs - performance.now()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.deliver();
    }, waitMs);
  }

  private deliver(): void {
    if (this.to.destroyed) return this.stop();
    while (this.queue.length > 0 && this.queue[0]!.dueMs <= performance.now()) {
      const { data } = this.queue.shift()!;
      if (data === null) {
        this.to.end();
        return this.stop();
      }
      this.queuedBytes -= data.length;
      if (this.from.isPaused() && this.queuedBytes <= this.queuedBytesMax / 2) this.from.resume();
      if (!this.to.write(data)) {
        this.waitingForDrain = true;
        return;
      }
    }
    if (this.queuedBytes < 0) throw new Error(`delay relay: queued bytes went negative (${this.queuedBytes})`);
    this.schedule();
  }
}

export async function startDelayRelay(options: DelayRelayOptions): Promise<DelayRelay> {
  const queuedBytesMax = options.queuedBytesMax ?? queuedBytesMaxDefault;
  const sockets = new Set<Socket>();
  const pipes = new Set<DelayedPipe>();
  let accepted = 0;
  // Each side stays open for writing after the other ends, so a half-close passes through.
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    accepted += 1;
    const upstream = createConnection({ port: options.targetPort, host: options.targetAddress, allowHalfOpen: true });
    const both = [client, upstream];
    const owned = [new DelayedPipe(client, upstream, options.delayMs, queuedBytesMax), new DelayedPipe(upstream, client, options.delayMs, queuedBytesMax)];
    for (const pipe of owned) pipes.add(pipe);
    let open = both.length;
    for (const socket of both) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', (hadError) => {
        sockets.delete(socket);
        open -= 1;
        // A reset or error on one side resets the relayed connection; a clean close lets the
        // other side's delayed bytes and end-of-stream through first.
        if (hadError) for (const other of both) other.destroy();
        if (open > 0) return;
        for (const pipe of owned) {
          pipe.stop();
          pipes.delete(pipe);
        }
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    address: '127.0.0.1',
    port,
    connectionCount: () => accepted,
    dispose: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const pipe of pipes) pipe.stop();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
