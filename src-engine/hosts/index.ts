// Public surface of hosts/: the hosts a home knows (hosts.json), their live connections and
// the questions those connections ask a person, and remembered secrets (keychain opt-in).

export { HostStore, sshConfigAliases, hostNamePattern, hostsRecordKind, type HostRecord } from './host-store';
export { HostManager, type HostView, type HostQuestion, type HostAnswer, type HostManagerOptions } from './host-manager';
export { SecretVault, type SecretCipher } from './secret-vault';
