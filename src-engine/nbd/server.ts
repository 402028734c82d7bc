// NbdServer: listens on TCP or a Unix socket and serves a fixed set of exports to any number
// of clients, each connection parsed and answered by an NbdConnection.

import { lstat, chmod, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { assert, isPowerOfTwo } from '../assert';
import { TidemarkError, errnoCode } from '../errors';
import { type ConnectionHost, NbdConnection } from './connection';
import type { NbdExport } from './export';
import { BufferPool } from './buffer-pool';
import { nbdPooledBytesMax, nbdRequestBytesDefault, nbdRequestBytesMax, nbdRequestBytesMin, nbdStringBytesMax } from './protocol';

export interface NbdConnectionInfo {
  readonly connectionId: number;
  /** 'host:port' for TCP, 'unix' for a Unix socket. */
  readonly remote: string;
  /** 'opened' on accept, 'export' once the client chose an export, 'closed' when the socket closed. */
  readonly event: 'opened' | 'export' | 'closed';
  readonly exportName?: string;
}

export interface NbdServerOptions {
  /** Largest READ or WRITE payload (the NBD_INFO_BLOCK_SIZE maximum); default 32 MiB. */
  readonly maxRequestBytes?: number;
  /** Export failures (as answered to the client with an errno) and client protocol violations. */
  readonly onError?: (error: Error) => void;
  readonly onConnection?: (info: NbdConnectionInfo) => void;
  /**
   * Read sockets straight into the server's own buffers, large WRITE payloads into their
   * request's buffer (default true). False reads them as Node streams (a fresh buffer per read,
   * payloads copied out): the fallback used anyway where Node's socket internals differ.
   */
  readonly directReads?: boolean;
}

export type NbdListenTarget = { readonly host: string; readonly port: number } | { readonly socketPath: string };

export interface NbdListening {
  readonly host?: string;
  readonly port?: number;
  readonly socketPath?: string;
}

/** Unix socket paths are limited (108 bytes on Linux, 104 on macOS). */
const socketPathBytesMax = 104;

function checkExport(nbdExport: NbdExport): void {
  const where = `NBD export ${JSON.stringify(nbdExport.name)}`;
  assert(Buffer.byteLength(nbdExport.name) <= nbdStringBytesMax, `${where}: name within ${nbdStringBytesMax} bytes`);
  assert(Number.isSafeInteger(nbdExport.sizeBytes) && nbdExport.sizeBytes >= 0, `${where}: size is a safe integer`);
  const minBytes = nbdExport.minBlockBytes ?? 1;
  const preferredBytes = nbdExport.preferredBlockBytes ?? 4096;
  assert(isPowerOfTwo(minBytes) && isPowerOfTwo(preferredBytes) && minBytes <= preferredBytes, `${where}: block sizes are powers of two, min <= preferred`);
}

export class NbdServer {
  readonly exports: readonly NbdExport[];
  readonly maxRequestBytes: number;
  private readonly onError: (error: Error) => void;
  private readonly onConnection: (info: NbdConnectionInfo) => void;
  private readonly connections = new Set<NbdConnection>();
  private server: Server | undefined;
  private socketPath: string | undefined;
  private nextConnectionId = 1;
  private closing: Promise<void> | undefined;
  private readonly host: ConnectionHost;

  constructor(exports: readonly NbdExport[], options: NbdServerOptions = {}) {
    const maxRequestBytes = options.maxRequestBytes ?? nbdRequestBytesDefault;
    if (!(Number.isSafeInteger(maxRequestBytes) && maxRequestBytes >= nbdRequestBytesMin && maxRequestBytes <= nbdRequestBytesMax)) {
      throw new TidemarkError(
        'USAGE',
        `NBD request limit ${maxRequestBytes} bytes is outside ${nbdRequestBytesMin}..${nbdRequestBytesMax}`,
        'choose a limit in that range',
      );
    }
    if (exports.length === 0) throw new TidemarkError('USAGE', 'an NBD server needs at least one export', 'pass the volumes to export');
    const names = new Set(exports.map((e) => e.name));
    if (names.size !== exports.length) throw new TidemarkError('USAGE', 'two NBD exports share a name', 'give every export its own name');
    for (const e of exports) {
      checkExport(e);
      const preferredBytes = e.preferredBlockBytes ?? 4096;
      assert(preferredBytes <= maxRequestBytes && maxRequestBytes % (e.minBlockBytes ?? 1) === 0, 'block sizes fit the request limit');
    }
    this.exports = [...exports];
    this.maxRequestBytes = maxRequestBytes;
    this.onError = options.onError ?? (() => undefined);
    this.onConnection = options.onConnection ?? (() => undefined);
    this.host = {
      exports: this.exports,
      maxRequestBytes,
      pool: new BufferPool(nbdPooledBytesMax),
      directReads: options.directReads ?? true,
      findExport: (name) => (name === '' ? this.exports[0] : this.exports.find((e) => e.name === name)),
      reportError: (error) => this.report(error),
      exportSelected: (connection, nbdExport) =>
        this.notify({ connectionId: connection.connectionId, remote: connection.remote, event: 'export', exportName: nbdExport.name }),
    };
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** WRITE payload buffers in use by requests: 0 once every connection's requests have finished. */
  get payloadBuffersLent(): number {
    return this.host.pool.lentBuffers;
  }

  /** Starts listening. Port 0 picks a free port; the bound address is returned. */
  async listen(target: NbdListenTarget): Promise<NbdListening> {
    assert(this.server === undefined && this.closing === undefined, 'an NBD server listens once');
    // Paused on connect: a connection chooses how its socket is read before anything is.
    const server = createServer({ allowHalfOpen: false, noDelay: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    this.server = server;
    if ('socketPath' in target) {
      await this.listenUnix(server, target.socketPath);
      return { socketPath: target.socketPath };
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: target.host, port: target.port }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) => {
      this.server = undefined;
      throw new TidemarkError('IO', `cannot listen for NBD on ${target.host}:${target.port}: ${errnoCode(error) ?? String(error)}`, 'choose another port', {
        cause: error,
      });
    });
    const address = server.address();
    assert(address !== null && typeof address === 'object', 'a TCP server has an address');
    return { host: address.address, port: address.port };
  }

  /**
   * Binds a Unix socket created 0600. A socket file left by a dead server (nothing answers)
   * is replaced; one that answers, or a file that is not a socket, is refused.
   */
  private async listenUnix(server: Server, path: string): Promise<void> {
    if (Buffer.byteLength(path) >= socketPathBytesMax) {
      throw new TidemarkError('USAGE', `the NBD socket path ${path} is too long for a Unix socket`, `use a path under ${socketPathBytesMax} bytes`);
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      const outcome = await new Promise<'ok' | 'in-use'>((resolve, reject) => {
        const onError = (error: Error) => (errnoCode(error) === 'EADDRINUSE' ? resolve('in-use') : reject(error));
        server.once('error', onError);
        // Created 0600: only this user may connect. umask is per process (not in workers),
        // so the chmod below is what holds everywhere; the umask closes the window where it can.
        const umask = setUmask(0o177);
        server.listen(path, () => {
          server.off('error', onError);
          resolve('ok');
        });
        if (umask !== undefined) setUmask(umask);
      }).catch((error: unknown) => {
        throw new TidemarkError('IO', `cannot listen for NBD on ${path}: ${(error as Error).message}`, 'check the directory exists and is writable', {
          cause: error,
        });
      });
      if (outcome === 'ok') {
        await chmod(path, 0o600);
        this.socketPath = path;
        return;
      }
      const info = await lstat(path).catch(() => undefined);
      if (info && !info.isSocket()) {
        throw new TidemarkError('ALREADY_EXISTS', `cannot listen for NBD on ${path}: a file that is not a socket is there`, 'choose another path');
      }
      if (await socketAnswers(path)) {
        throw new TidemarkError('BUSY', `another server already listens on ${path}`, 'stop it first, or choose another socket path');
      }
      await rm(path, { force: true }); // stale: its server died
    }
    throw new TidemarkError('IO', `cannot bind the NBD socket ${path}`, 'another process keeps recreating it; choose another path');
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    const connection = new NbdConnection(this.nextConnectionId++, remote, socket, this.host);
    this.connections.add(connection);
    this.notify({ connectionId: connection.connectionId, remote, event: 'opened' });
    void connection.whenClosed().then(() => {
      this.connections.delete(connection);
      const exportName = connection.exportName;
      this.notify({ connectionId: connection.connectionId, remote, event: 'closed', ...(exportName === undefined ? {} : { exportName }) });
    });
  }

  /**
   * Stops listening, lets requests already read finish (a bounded wait), then ends every
   * connection and removes the socket file.
   */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  dispose(): Promise<void> {
    return this.close();
  }

  private async closeNow(): Promise<void> {
    const server = this.server;
    const stopped = server
      ? new Promise<void>((resolve) => {
          if (!server.listening) return resolve();
          server.close(() => resolve());
        })
      : Promise.resolve();
    await Promise.all([...this.connections].map((c) => c.shutdown()));
    await stopped;
    if (this.socketPath !== undefined) await rm(this.socketPath, { force: true });
  }

  private report(error: Error): void {
    try {
      this.onError(error);
    } catch {
      // A failing error callback must not take the server down with it.
    }
  }

  private notify(info: NbdConnectionInfo): void {
    try {
      this.onConnection(info);
    } catch (error) {
      this.report(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

/** process.umask(mask) where allowed (not in worker threads); returns the previous mask. */
function setUmask(mask: number): number | undefined {
  try {
    return process.umask(mask);
  } catch {
    return undefined;
  }
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path, () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
