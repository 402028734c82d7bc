// The AgentApi contract (test/helpers/agent-contract.ts), run against the in-process agent and
// against the same agent over RPC on a real Unix socket.
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { LocalAgent, RpcAgent, serveAgent, type AgentApi } from '../../src-engine/agent';
import { RpcPeer } from '../../src-engine/transport';
import { agentContract, type ContractAgent } from '../helpers/agent-contract';
import { tempDir } from '../helpers/tmp';

const disposers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const dispose of disposers.splice(0).reverse()) await dispose();
});

/** An in-process agent on `homeDir`, disposed after the test. */
function startLocal(homeDir: string): LocalAgent {
  const agent = new LocalAgent(homeDir);
  disposers.push(() => agent.dispose());
  return agent;
}

async function localAgent(): Promise<ContractAgent> {
  const dir = await tempDir();
  const homeDir = join(dir, 'home');
  let agent = startLocal(homeDir);
  const reopen = async () => {
    await agent.dispose();
    agent = startLocal(homeDir);
    return agent;
  };
  return { agent, dir, reopen };
}

/** `local` served on a Unix socket in `dir`, and a client for it; both closed by the returned function. */
async function serveOverSocket(local: AgentApi, dir: string): Promise<{ agent: RpcAgent; close: () => Promise<void> }> {
  const socketPath = join(dir, 'agent.sock');
  const peers: RpcPeer[] = [];
  const server = createServer((socket) => {
    const peer = new RpcPeer(socket, { role: 'server', handler: serveAgent(local), keepaliveMs: 0 });
    peers.push(peer);
    void peer.handshake().catch(() => undefined);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, () => resolve()));
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection(socketPath, () => resolve(s));
    s.once('error', reject);
  });
  const client = new RpcPeer(socket, { role: 'client', keepaliveMs: 0 });
  await client.handshake();
  const agent = new RpcAgent(client);
  const close = async () => {
    await agent.dispose();
    peers.forEach((p) => p.close());
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await local.dispose();
  };
  disposers.push(close);
  return { agent, close };
}

async function rpcAgent(): Promise<ContractAgent> {
  const dir = await tempDir();
  const homeDir = join(dir, 'home');
  let served = await serveOverSocket(startLocal(homeDir), dir);
  const reopen = async () => {
    await served.close();
    served = await serveOverSocket(startLocal(homeDir), dir);
    return served.agent;
  };
  return { agent: served.agent, dir, reopen };
}

const here = async () => ({ pid: process.pid, nodeVersion: process.versions.node });
agentContract({ name: 'in-process', make: localAgent, expectedInfo: here });
agentContract({ name: 'over RPC on a Unix socket', make: rpcAgent, expectedInfo: here });
