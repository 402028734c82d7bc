// The AgentApi contract (test/helpers/agent-contract.ts) over SSH: a RemoteHost against a real
// OpenSSH sshd on loopback, the agent deployed over SFTP and reached through `agent dial-stdio`.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { RemoteHost, type AgentChannelMode } from '../../src-engine/ssh';
import { agentInfoOf, stopAgentOf, testRemoteHostOptions } from '../helpers/agents';
import { agentContract } from '../helpers/agent-contract';
import { until } from '../helpers/engine';
import { startSshd, type TestSshd } from '../helpers/sshd';
import { tempDir } from '../helpers/tmp';

let sshd: TestSshd;
let dir: string;
const hosts: RemoteHost[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-contract-ssh-'));
  sshd = await startSshd(join(dir, 'sshd'));
});

afterEach(async () => {
  for (const host of hosts.splice(0)) await host.dispose();
});

afterAll(async () => {
  await stopAgentOf(remoteHome());
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

const remoteHome = () => join(dir, 'remote-home');

/** The remote agent as seen through its own socket: an independent witness of pid and Node. */
async function localViewOfRemoteAgent(): Promise<{ pid: number; nodeVersion: string }> {
  const info = await agentInfoOf(remoteHome());
  if (!info) throw new Error(`no agent answers on ${remoteHome()}`);
  return { pid: info.pid, nodeVersion: info.nodeVersion };
}

function remoteHost(agentChannel: AgentChannelMode): RemoteHost {
  const host = new RemoteHost(sshd.alias, { ...testRemoteHostOptions(sshd, dir, remoteHome()), agentChannel });
  hosts.push(host);
  return host;
}

/** True once `pid` has exited (a zombie left for its parent to reap counts as exited). */
async function exited(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat === undefined || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

const channels: [AgentChannelMode, 'streamlocal' | 'dial-stdio', string][] = [
  ['auto', 'streamlocal', 'over SSH, sshd relaying to the agent socket'],
  ['dial-stdio', 'dial-stdio', 'over SSH, through agent dial-stdio'],
];

for (const [mode, via, name] of channels) {
  agentContract({
    name,
    make: async () => {
      let host = remoteHost(mode);
      await host.connect();
      expect(host.status.via).toBe(via);
      // Stops the remote agent process itself (SIGTERM: it closes its volumes), so the next
      // connection starts a new one that reopens everything from the home.
      const reopen = async () => {
        const { pid } = await host.info();
        await host.dispose();
        process.kill(pid, 'SIGTERM');
        await until(() => exited(pid), 10_000, `remote agent ${pid} to exit`);
        host = remoteHost(mode);
        await host.connect();
        expect((await host.info()).pid).not.toBe(pid);
        return host;
      };
      return { agent: host, dir: await tempDir('tm-contract-vol-'), reopen };
    },
    expectedInfo: localViewOfRemoteAgent,
  });
}
