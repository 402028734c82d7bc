// `tidemark agent serve` (the built CLI) on a home as a real process, for tests that kill it,
// and a client of it through the home's socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { RpcAgent, connectAgentSocket } from '../../src-engine/agent';
import { RpcPeer } from '../../src-engine/transport';
import { cliBundle } from './cli';
import { until } from './engine';

/** Starts the agent on `home` with `env` added, once it serves; `children` collects it for the test's clean-up. */
export async function serveAgent(home: string, env: NodeJS.ProcessEnv, children: ChildProcess[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [cliBundle, '--home', home, 'agent', 'serve'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await until(() => stderr.includes('agent: serving') || child.exitCode !== null, 10_000, `the agent on ${home}`);
  if (!stderr.includes('agent: serving')) throw new Error(`the agent on ${home} exited: ${stderr}`);
  return child;
}

/** A client of the agent serving `home`; `clients` collects it for the test's clean-up. */
export async function connectAgent(home: string, clients: { dispose(): Promise<void> }[]): Promise<RpcAgent> {
  const peer = new RpcPeer(await connectAgentSocket(home), { role: 'client', keepaliveMs: 0 });
  await peer.handshake();
  const agent = new RpcAgent(peer);
  clients.push(agent);
  return agent;
}

/** SIGKILL, and its exit seen. */
export async function killAgent(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}
