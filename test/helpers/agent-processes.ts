// Agents that tests (and the sshd harness) start on homes, detached: asked for their info
// through their own socket, and stopped at the end. No import of the CLI helpers, so the
// benchmark bundle can use it too.
import { RpcAgent, connectAgentSocket, type AgentInfo } from '../../src-engine/agent';
import { RpcPeer } from '../../src-engine/transport';

/** The info of the agent serving `homeDir`, asked through its socket; undefined when none answers. */
export async function agentInfoOf(homeDir: string): Promise<AgentInfo | undefined> {
  const socket = await connectAgentSocket(homeDir).catch(() => undefined);
  if (!socket) return undefined;
  const peer = new RpcPeer(socket, { role: 'client', keepaliveMs: 0 });
  try {
    await peer.handshake();
    return await new RpcAgent(peer).info();
  } finally {
    peer.close();
  }
}

/** Stops (SIGTERM) the agent serving `homeDir`, if one does. */
export async function stopAgentOf(homeDir: string): Promise<void> {
  const info = await agentInfoOf(homeDir);
  if (info) process.kill(info.pid, 'SIGTERM');
}
