// RemoteHost options against the test sshd, and (re-exported) the helpers for agents tests
// start on homes.
import { join } from 'node:path';
import type { RemoteHostOptions } from '../../src-engine/ssh';
import { agentBundle } from './cli';
import type { TestSshd } from './sshd';

export { agentInfoOf, stopAgentOf } from './agent-processes';

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
