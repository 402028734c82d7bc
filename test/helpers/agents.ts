// Agents that tests start on homes (detached, through SSH or `agent ensure`): asked for their
// info through their own socket, and stopped at the end. Options for a RemoteHost against the
// test sshd.
import { join } from 'node:path';
import { RpcAgent, connectAgentSocket, type AgentInfo } from '../../src-engine/agent';
import type { RemoteHostOptions } from '../../src-engine/ssh';
import { RpcPeer } from '../../src-engine/transport';
import { agentBundle } from './cli';
import type { TestSshd } from './sshd';

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

/** RemoteHost options against the test sshd: host key trusted, no ssh-agent, files in `dir`. */
export function testRemoteHostOptions(sshd: TestSshd, dir: string, homeDir: string): RemoteHostOptions {
  return {
    tidemarkKnownHosts: join(dir, 'known_hosts'),
    userKnownHosts: join(dir, 'no-user-known-hosts'),
    sshConfigPath: sshd.sshConfigPath,
    agentSocket: '',
    approveHostKey: async () => true,
    bundlePath: agentBundle,
    homeDir,
  };
}
