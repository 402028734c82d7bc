// Public surface of ssh/: OpenSSH conventions (config, known_hosts, authentication), the ssh2
// client, agent deployment and RemoteHost (an AgentApi that reconnects).

export {
  parseKnownHosts,
  verifyHostKey,
  loadKnownHosts,
  knownHostsLine,
  hostKeyName,
  patternsMatch,
  sha256Fingerprint,
  type KnownHostEntry,
  type HostKeyVerdict,
} from './known-hosts';
export { parseSshConfig, resolveHost, loadSshConfig, targetOf, type SshHostConfig } from './ssh-config';
export { connectSsh, keyTypeOf, parseHostSpec, type SshConnectOptions, type SshConnection } from './connect';
export { planAuth, type AskSecret, type SecretRequest, type SecretKind } from './auth';
export { RemoteHost, backoffDelayMs, type ConnectionState, type RemoteHostStatus, type RemoteHostOptions } from './remote-host';
export { sshPeerLinks } from './peer-link';
export { deployAgent, openRemoteAgent, type RemoteAgent, type AgentChannelMode } from './remote-agent';
export { knownAgentsFile, knownAgentKey, type KnownAgents } from './known-agents';
