// `tidemark agent serve | dial-stdio | ensure`: the host agent in the foreground, the stdio
// bridge SSH can run, and `ensure`, which starts a detached agent when none runs and prints
// its socket for an SSH client to forward to (sshd then relays, no Node process in between).

import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { Command } from 'commander';
import { RpcAgent, agentSocketPath, connectAgentSocket, pairRestrictedHandler, serveAgent, startAgentDaemon } from '../agent';
import { sshPeerLinks } from '../ssh';
import { RpcPeer } from '../transport';
import { tidemarkVersion } from '../version';
import { TidemarkError } from '../errors';
import { resolveHomeDir } from '../home';
import type { GlobalOptions, Io } from './output';

const agentStartWaitMs = 10_000;

async function serve(io: Io, global: GlobalOptions): Promise<void> {
  const homeDir = resolveHomeDir(global.home, io.env);
  const log = (line: string) => {
    if (!global.quiet) io.stderr.write(`${line}\n`);
  };
  const daemon = await startAgentDaemon(homeDir, log, undefined, { peerLinks: sshPeerLinks });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await daemon.close();
}

/** Connects to the home's agent, starting a detached one if nothing answers. */
async function connectOrStart(homeDir: string): Promise<Socket> {
  const first = await connectAgentSocket(homeDir).catch(() => undefined);
  if (first) return first;
  const script = process.argv[1];
  if (!script) throw new TidemarkError('IO', 'cannot find the Tidemark program to start an agent with', 'start one with `tidemark agent serve`');
  const child = spawn(process.execPath, [script, '--home', homeDir, '--quiet', 'agent', 'serve'], { detached: true, stdio: 'ignore' });
  child.unref();
  const deadline = Date.now() + agentStartWaitMs;
  for (;;) {
    const socket = await connectAgentSocket(homeDir).catch(() => undefined);
    if (socket) return socket;
    if (Date.now() > deadline)
      throw new TidemarkError(
        'IO',
        `the agent for ${homeDir} did not start within ${agentStartWaitMs / 1000} s`,
        'run `tidemark agent serve` in the foreground to see why',
      );
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function dialStdio(io: Io, global: GlobalOptions, pairId: string | undefined): Promise<void> {
  const homeDir = resolveHomeDir(global.home, io.env);
  const socket = await connectOrStart(homeDir);
  if (pairId !== undefined) return servePairRestricted(socket, homeDir, pairId);
  process.stdin.pipe(socket);
  socket.pipe(process.stdout);
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    process.stdin.once('end', () => socket.end());
  });
}

/**
 * A per-pair key's forced command: the far side speaks the agent RPC to this process, which
 * serves only the pair's shipping into its secondary (agent/peer-session.ts) and relays that
 * to the home's agent. Nothing the far side sends reaches the agent unchecked.
 */
async function servePairRestricted(socket: Socket, homeDir: string, pairId: string): Promise<void> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(pairId))
    throw new TidemarkError(
      'USAGE',
      `--pair ${pairId} is not a pair id`,
      "the authorized_keys line names the pair's id; provision it again with `tidemark pair link`",
    );
  const upstream = new RpcPeer(socket, { role: 'client' });
  await upstream.handshake();
  const agent = new RpcAgent(upstream);
  const stdio = Duplex.from({ readable: process.stdin, writable: process.stdout });
  const downstream = new RpcPeer(stdio, {
    role: 'server',
    handler: pairRestrictedHandler(serveAgent(agent), homeDir, pairId),
    peerInfo: { agentVersion: tidemarkVersion, nodeVersion: process.versions.node, restrictedTo: pairId },
  });
  await new Promise<void>((resolve) => {
    downstream.onClose(() => resolve());
    upstream.onClose(() => resolve());
    void downstream.handshake().catch(() => resolve());
  });
  downstream.close();
  upstream.close();
}

/** Starts the home's agent if none runs and prints its socket path (SSH clients then forward to it). */
async function ensure(io: Io, global: GlobalOptions): Promise<void> {
  const homeDir = resolveHomeDir(global.home, io.env);
  const socket = await connectOrStart(homeDir);
  socket.destroy();
  io.stdout.write(`${agentSocketPath(homeDir)}\n`);
}

export function registerAgentCommands(program: Command, io: Io, globals: () => GlobalOptions): void {
  const agent = program.command('agent').description("the host agent that owns a home's volumes");
  agent
    .command('serve')
    .description('run the agent in the foreground on <home>/agent.sock (SIGTERM stops it cleanly)')
    .action(() => serve(io, globals()));
  agent
    .command('dial-stdio')
    .description("bridge stdin/stdout to the home's agent, starting one if none runs (what SSH executes)")
    .option('--pair <id>', "serve only this pair's shipping into its secondary (a per-pair key's forced command)")
    .action((options: { pair?: string }) => dialStdio(io, globals(), options.pair));
  agent
    .command('ensure')
    .description("start the home's agent if none runs, and print its socket path")
    .action(() => ensure(io, globals()));
}
