// The agent daemon: owns one home, listens on <home>/agent.sock (mode 0600). Binding the
// socket is the ownership lock: a second agent on the home is refused naming the first; a
// socket file left by a dead agent is detected (nothing answers) and replaced.

import { chmod, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { TidemarkError, errnoCode } from '../errors';
import { ensureHomeDir } from '../home';
import { RpcPeer } from '../transport';
import { tidemarkVersion } from '../version';
import { agentSession } from './agent-rpc';
import { LocalAgent, type LocalAgentOptions } from './local-agent';

/** Unix socket paths are limited (108 bytes on Linux, 104 on macOS). */
const socketPathBytesMax = 104;

export function agentSocketPath(homeDir: string): string {
  return join(homeDir, 'agent.sock');
}

function checkSocketPath(path: string): void {
  if (Buffer.byteLength(path) >= socketPathBytesMax) {
    throw new TidemarkError(
      'USAGE',
      `the agent socket path ${path} is too long for a Unix socket (${Buffer.byteLength(path)} bytes, limit ${socketPathBytesMax - 1})`,
      'use a Tidemark home with a shorter path (--home)',
    );
  }
}

/** Connects to a home's agent socket; rejects with the errno when nothing answers. */
export function connectAgentSocket(homeDir: string): Promise<Socket> {
  const path = agentSocketPath(homeDir);
  checkSocketPath(path);
  return new Promise((resolve, reject) => {
    const socket = createConnection(path, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

async function listenExclusive(server: Server, homeDir: string): Promise<void> {
  const path = agentSocketPath(homeDir);
  checkSocketPath(path);
  for (let attempt = 0; attempt < 2; attempt++) {
    const outcome = await new Promise<'ok' | 'in-use'>((resolve, reject) => {
      const onError = (error: Error) => (errnoCode(error) === 'EADDRINUSE' ? resolve('in-use') : reject(error));
      server.once('error', onError);
      // The socket is created 0600: only this user can talk to the agent.
      const umask = process.umask(0o177);
      server.listen(path, () => {
        server.off('error', onError);
        resolve('ok');
      });
      process.umask(umask);
    });
    if (outcome === 'ok') {
      await chmod(path, 0o600);
      return;
    }
    const alive = await connectAgentSocket(homeDir).then(
      (socket) => {
        socket.destroy();
        return true;
      },
      () => false,
    );
    if (alive) {
      throw new TidemarkError(
        'ALREADY_EXISTS',
        `an agent already serves Tidemark home ${homeDir} (socket ${path} answers)`,
        'use that agent (tidemark agent dial-stdio), or stop it first',
      );
    }
    await rm(path, { force: true }); // stale: left by an agent that died
  }
  throw new TidemarkError('IO', `cannot bind the agent socket ${path}`, 'another process keeps recreating it; stop other agents on this home');
}

export interface AgentDaemon {
  readonly socketPath: string;
  close(): Promise<void>;
}

/**
 * Serves a home's agent on <home>/agent.sock; binding it is the home's ownership lock. With
 * `agent` given (an owner that also uses it in-process, like the console's Engine) the caller
 * keeps it and disposes it; otherwise the daemon makes its own and disposes it on close.
 */
export async function startAgentDaemon(
  homeDir: string,
  log: (line: string) => void = () => undefined,
  shared?: LocalAgent,
  agentOptions: LocalAgentOptions = {},
): Promise<AgentDaemon> {
  await ensureHomeDir(homeDir);
  const agent = shared ?? new LocalAgent(homeDir, agentOptions);
  const peers = new Set<RpcPeer>();
  const server = createServer((socket) => {
    const session = agentSession(agent);
    const peer = new RpcPeer(socket, {
      role: 'server',
      handler: session.handler,
      peerInfo: { agentVersion: tidemarkVersion, nodeVersion: process.versions.node },
      log,
    });
    peers.add(peer);
    peer.onClose(() => {
      peers.delete(peer);
      void session.release();
    });
    void peer.handshake().catch((error: Error) => log(`agent: handshake failed: ${error.message}`));
  });
  await listenExclusive(server, homeDir);
  log(`agent: serving ${homeDir} on ${agentSocketPath(homeDir)} (pid ${process.pid})`);
  return {
    socketPath: agentSocketPath(homeDir),
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const peer of peers) peer.close();
      });
      if (!shared) await agent.dispose();
      log('agent: stopped');
    },
  };
}
