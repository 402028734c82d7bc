// Public surface of ssh/: OpenSSH conventions (known_hosts now; config and the ssh2 client next).

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
export { parseSshConfig, resolveHost, loadSshConfig, type SshHostConfig } from './ssh-config';
export { connectSsh, keyTypeOf, type SshConnectOptions } from './connect';
export { deployAgent, openRemoteAgent, type RemoteAgent } from './remote-agent';
