// The AgentApi contract (test/helpers/agent-contract.ts), run against the in-process agent and
// against the same agent over RPC on a real Unix socket.
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { LocalAgent, RpcAgent, serveAgent, type AgentApi } from '../../src-engine/agent';
import { RpcPeer } from '../../src-engine/transport';
import { agentContract } from '../helpers/agent-contract';
import { tempDir } from '../helpers/tmp';

const disposers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const dispose of disposers.splice(0).reverse()) await dispose();
});

async function localAgent(): Promise<{ agent: AgentApi; dir: string }> {
  const dir = await tempDir();
  const agent = new LocalAgent(join(dir, 'home'));
  disposers.push(() => agent.dispose());
  return { agent, dir };
}

async function rpcAgent(): Promise<{ agent: AgentApi; dir: string }> {
  const { agent: local, dir } = await localAgent();
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
  disposers.push(async () => {
    await agent.dispose();
    peers.forEach((p) => p.close());
    server.close();
  });
  return { agent, dir };
}

const here = async () => ({ pid: process.pid, nodeVersion: process.versions.node });
agentContract({ name: 'in-process', make: localAgent, expectedInfo: here });
agentContract({ name: 'over RPC on a Unix socket', make: rpcAgent, expectedInfo: here });
