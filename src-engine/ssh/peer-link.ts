// The SSH side of direct shipping: the primary's agent opens the link a pair's key leads to
// (src-engine/agent/peer-links.ts) as a RemoteHost — reconnects with backoff, strict host
// keys from the pair's own known_hosts, the pair's key only (no ssh-agent, no default keys),
// and the agent the key's forced command runs on the secondary's host.

import { peerAlias, type PeerFiles, type PeerLink, type PeerLinkOpener } from '../agent';
import { RemoteHost } from './remote-host';

export const sshPeerLinks: PeerLinkOpener = (files: PeerFiles): PeerLink => {
  const host = new RemoteHost(peerAlias, {
    sshConfigPath: files.sshConfigPath,
    tidemarkKnownHosts: files.knownHostsPath,
    userKnownHosts: files.knownHostsPath,
    agentSocket: '',
    bundlePath: '',
    agentChannel: 'forced-command',
  });
  return {
    agent: host,
    status: () => {
      const status = host.status;
      return { connected: status.state === 'connected', connections: status.connections, lastError: status.lastError?.message ?? null };
    },
    close: () => host.dispose(),
  };
};
