// SSH connections with the user's conventions: ~/.ssh/config (HostName, User, Port,
// IdentityFile), ssh-agent, and strict host-key checking against ~/.ssh/known_hosts plus
// Tidemark's own known_hosts. An unknown host is refused unless the caller approves its
// SHA256 fingerprint (then recorded, hashed, in Tidemark's file); a changed key is refused
// naming the file and line, with no way around it.

import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client, type ConnectConfig } from 'ssh2';
import { TidemarkError, errnoCode } from '../errors';
import { knownHostsLine, loadKnownHosts, verifyHostKey, type HostKeyVerdict } from './known-hosts';
import { loadSshConfig, resolveHost, type SshHostConfig } from './ssh-config';

export interface SshConnectOptions {
  /** Tidemark's own known_hosts (approved keys are written here). */
  readonly tidemarkKnownHosts: string;
  readonly userKnownHosts?: string;
  readonly sshConfigPath?: string;
  /** Asked for an unknown host; resolves true to trust and record the key. Absent: refuse. */
  readonly approveHostKey?: (host: string, fingerprint: string) => Promise<boolean>;
  readonly user?: string | null;
  readonly port?: number | null;
  readonly readyTimeoutMs?: number;
}

/** The key type named inside an SSH public key blob (its first wire string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString('latin1');
}

async function readIdentity(files: readonly string[]): Promise<Buffer | undefined> {
  for (const file of files) {
    try {
      return await readFile(file);
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
    }
  }
  return undefined;
}

function hostKeyError(host: SshHostConfig, verdict: HostKeyVerdict): TidemarkError {
  if (verdict.kind === 'mismatch') {
    return new TidemarkError(
      'PERMISSION',
      `the host key of ${host.hostName}:${host.port} (${verdict.fingerprint}) differs from the one recorded in ${verdict.entry.file} line ${verdict.entry.line} — possible man-in-the-middle, connection refused`,
      `if the host was really reinstalled, verify its new fingerprint out of band and remove line ${verdict.entry.line} of ${verdict.entry.file}`,
    );
  }
  if (verdict.kind === 'revoked') {
    return new TidemarkError(
      'PERMISSION',
      `the host key of ${host.hostName} is revoked in ${verdict.entry.file} line ${verdict.entry.line}`,
      'do not connect; ask the host owner for its new key',
    );
  }
  const fingerprint = verdict.kind === 'unknown' ? verdict.fingerprint : '';
  return new TidemarkError(
    'PERMISSION',
    `unknown host ${host.hostName}:${host.port}, key fingerprint ${fingerprint}`,
    'compare the fingerprint with the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and approve it (--accept-new-host-key)',
  );
}

/** Connects and authenticates; the returned client is ready for exec and SFTP. */
export async function connectSsh(alias: string, options: SshConnectOptions): Promise<{ client: Client; host: SshHostConfig }> {
  const host = resolveHost(await loadSshConfig(options.sshConfigPath), alias, { user: options.user, port: options.port });
  if (host.proxyJump) {
    throw new TidemarkError(
      'UNSUPPORTED',
      `${alias} is reached through ProxyJump ${host.proxyJump}, which Tidemark does not follow yet`,
      'connect directly, or run tidemark on the jump host',
    );
  }
  const knownFiles = [options.userKnownHosts ?? join(homedir(), '.ssh', 'known_hosts'), options.tidemarkKnownHosts];
  const entries = await loadKnownHosts(knownFiles);
  const privateKey = await readIdentity(host.identityFiles);
  let refusal: TidemarkError | undefined;
  const config: ConnectConfig = {
    host: host.hostName,
    port: host.port,
    username: host.user,
    readyTimeout: options.readyTimeoutMs ?? 20_000,
    ...(privateKey ? { privateKey } : {}),
    ...(process.env.SSH_AUTH_SOCK ? { agent: process.env.SSH_AUTH_SOCK } : {}),
    hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
      const verdict = verifyHostKey(entries, host.hostName, host.port, keyTypeOf(key), key);
      if (verdict.kind === 'match') return verify(true);
      if (verdict.kind !== 'unknown' || !options.approveHostKey) {
        refusal = hostKeyError(host, verdict);
        return verify(false);
      }
      void options.approveHostKey(`${host.hostName}:${host.port}`, verdict.fingerprint).then(
        async (approved) => {
          if (approved) {
            await mkdir(dirname(options.tidemarkKnownHosts), { recursive: true, mode: 0o700 });
            await appendFile(options.tidemarkKnownHosts, `${knownHostsLine(host.hostName, host.port, keyTypeOf(key), key, randomBytes(20))}\n`, {
              mode: 0o600,
            });
          } else {
            refusal = hostKeyError(host, verdict);
          }
          verify(approved);
        },
        () => verify(false),
      );
    },
  };
  const client = new Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', (error: Error & { level?: string }) => {
      if (refusal) return reject(refusal);
      if (error.level === 'client-authentication') {
        return reject(
          new TidemarkError(
            'PERMISSION',
            `${host.user}@${host.hostName}:${host.port} refused every key offered (${privateKey ? host.identityFiles.join(', ') : 'no key file found'}${process.env.SSH_AUTH_SOCK ? ', ssh-agent' : ''})`,
            'add your public key to the host’s authorized_keys, or set IdentityFile in ~/.ssh/config',
          ),
        );
      }
      reject(
        new TidemarkError(
          'IO',
          `cannot reach ${host.hostName}:${host.port} over SSH: ${error.message}`,
          'check the address, the port and that sshd runs there',
        ),
      );
    });
    client.connect(config);
  });
  return { client, host };
}
