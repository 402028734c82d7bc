// SSH connections with the user's conventions: ~/.ssh/config (HostName, User, Port,
// IdentityFile, ProxyJump), ssh-agent, passphrase-protected keys (auth.ts), and strict host-key checking against ~/.ssh/known_hosts plus
// Tidemark's own known_hosts. An unknown host is refused unless the caller approves its
// SHA256 fingerprint (then recorded, hashed, in Tidemark's file); a changed key is refused
// naming the file and line, with no way around it.

import { randomBytes } from 'node:crypto';
import { appendFile, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { splitHostSpec } from '../agent';
import { TidemarkError } from '../errors';
import { planAuth, type AskSecret, type AuthLog } from './auth';
import { knownHostsLine, loadKnownHosts, recordedKeyTypes, verifyHostKey, type HostKeyVerdict } from './known-hosts';
import { loadSshConfig, resolveHost, targetOf, type SshHostConfig } from './ssh-config';

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
  readonly keepaliveIntervalMs?: number;
  /** Asks a person for a key passphrase or a password; absent: such methods are skipped. */
  readonly askSecret?: AskSecret;
  /** ssh-agent socket; undefined: $SSH_AUTH_SOCK; empty: no agent. */
  readonly agentSocket?: string;
  /** Aborts a connection in progress (CANCELLED). */
  readonly signal?: AbortSignal;
}

/** The key type named inside an SSH public key blob (its first wire string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString('latin1');
}

function hostKeyError(host: SshHostConfig, verdict: HostKeyVerdict): TidemarkError {
  if (verdict.kind === 'mismatch') {
    return new TidemarkError(
      'PERMISSION',
      `the host key of ${host.hostName}:${host.port} (${verdict.fingerprint}) differs from the one recorded in ${verdict.entry.file} line ${verdict.entry.line} — possible man-in-the-middle, connection refused`,
      `if the host was really reinstalled, verify its new fingerprint out of band and remove line ${verdict.entry.line} of ${verdict.entry.file}`,
    );
  }
  if (verdict.kind === 'other-type') {
    return new TidemarkError(
      'PERMISSION',
      `${host.hostName}:${host.port} presented a ${verdict.keyType} host key (${verdict.fingerprint}), but ${verdict.entry.file} line ${verdict.entry.line} records a ${verdict.entry.keyType} key for it — possible man-in-the-middle, connection refused`,
      `if the host really changed its keys, verify the new fingerprint out of band and remove line ${verdict.entry.line} of ${verdict.entry.file}`,
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

const jumpDepthMax = 4;

export interface SshConnection {
  readonly client: Client;
  readonly host: SshHostConfig;
  /** The cipher negotiated for data from the host (server → client). */
  readonly cipher: string;
  /** The host key verified (or approved) for this connection: `type base64`. */
  readonly hostKey: string;
}

/**
 * `[user@]host[:port]` or `ssh://[user@]host[:port]`: a ProxyJump hop, or a host typed on the
 * Hosts screen. `what` names it in the error, `fix` says where to correct it.
 */
export function parseHostSpec(
  value: string,
  what = 'ProxyJump',
  fix = 'fix ProxyJump in ~/.ssh/config',
): { alias: string; user: string | null; port: number | null } {
  const spec = splitHostSpec(value);
  if (!spec) throw new TidemarkError('USAGE', `${what} "${value}" is not [user@]host[:port]`, fix);
  return spec;
}

/** A channel to host:port through an already connected jump host. */
function forwardThrough(jump: Client, jumpHost: SshHostConfig, host: SshHostConfig): Promise<ClientChannel> {
  return new Promise((resolve, reject) =>
    jump.forwardOut('127.0.0.1', 0, host.hostName, host.port, (error, channel) => {
      if (!error) return resolve(channel);
      reject(
        new TidemarkError(
          'IO',
          `jump host ${jumpHost.hostName} could not open a connection to ${host.hostName}:${host.port}: ${error.message}`,
          `check that ${host.hostName}:${host.port} is reachable from ${jumpHost.hostName} and that its sshd allows TCP forwarding (AllowTcpForwarding)`,
        ),
      );
    }),
  );
}

/** Connects and authenticates, through ProxyJump hops when the config names them. */
export async function connectSsh(alias: string, options: SshConnectOptions, depth = 0): Promise<SshConnection> {
  const host = resolveHost(await loadSshConfig(options.sshConfigPath), alias, { user: options.user, port: options.port });
  if (!host.proxyJump) return { ...(await connectTo(host, options)), host };
  if (depth >= jumpDepthMax) {
    throw new TidemarkError('USAGE', `more than ${jumpDepthMax} ProxyJump hops to reach ${alias}`, 'check ~/.ssh/config for a ProxyJump loop');
  }
  const hop = parseHostSpec(host.proxyJump);
  const jump = await connectSsh(hop.alias, { ...options, user: hop.user, port: hop.port }, depth + 1);
  try {
    const sock = await forwardThrough(jump.client, jump.host, host);
    const connected = await connectTo(host, options, sock);
    connected.client.once('close', () => jump.client.end());
    return { ...connected, host };
  } catch (error) {
    jump.client.end();
    throw error;
  }
}

function refusedError(host: SshHostConfig, log: AuthLog): TidemarkError {
  return new TidemarkError(
    'PERMISSION',
    `${targetOf(host)} refused every credential offered (${log.describe()})`,
    'add your public key to the host’s authorized_keys, load your key with ssh-add, or set IdentityFile in ~/.ssh/config',
  );
}

/**
 * The handshake deadline, stopped while a person is being asked (a host-key approval or a
 * passphrase can take minutes) and restarted in full once they answer.
 */
class HandshakeClock {
  private timer: NodeJS.Timeout | undefined;
  private asking = 0;
  constructor(
    private readonly timeoutMs: number,
    private readonly expired: () => void,
  ) {}
  start(): void {
    clearTimeout(this.timer);
    if (this.asking === 0 && this.timeoutMs > 0) this.timer = setTimeout(this.expired, this.timeoutMs);
  }
  stop(): void {
    clearTimeout(this.timer);
  }
  /** Runs `question` with the clock stopped. */
  async whileAsking<T>(question: () => Promise<T>): Promise<T> {
    this.asking += 1;
    this.stop();
    try {
      return await question();
    } finally {
      this.asking -= 1;
      this.start();
    }
  }
}

/** Host-key algorithms ssh2 speaks (its SUPPORTED_SERVER_HOST_KEY). */
const ssh2HostKeyAlgorithms = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
  'ssh-dss',
]);

const cancelled = (host: SshHostConfig) => new TidemarkError('CANCELLED', `connecting to ${host.hostName}:${host.port} was cancelled`, '');

/** ssh2 names RSA host-key algorithms by signature; known_hosts by key type. */
function hostKeyAlgorithmsFor(keyTypes: readonly string[]): string[] {
  const algorithms = keyTypes.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t]));
  return [...new Set(algorithms.filter((a) => ssh2HostKeyAlgorithms.has(a)))];
}

async function connectTo(host: SshHostConfig, options: SshConnectOptions, sock?: ClientChannel): Promise<{ client: Client; cipher: string; hostKey: string }> {
  const knownFiles = [options.userKnownHosts ?? join(homedir(), '.ssh', 'known_hosts'), options.tidemarkKnownHosts];
  const entries = await loadKnownHosts(knownFiles);
  const target = targetOf(host);
  const agentSocket = options.agentSocket === undefined ? process.env.SSH_AUTH_SOCK || undefined : options.agentSocket || undefined;
  const client = new Client();
  let fail: (error: TidemarkError) => void = () => undefined;
  let refusal: TidemarkError | undefined;
  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const clock = new HandshakeClock(timeoutMs, () =>
    fail(
      new TidemarkError(
        'DISCONNECTED',
        `no SSH handshake with ${host.hostName}:${host.port} within ${timeoutMs / 1000} s`,
        'check the address, the port and that sshd runs there (a firewall may be dropping packets)',
      ),
    ),
  );
  const askSecret = options.askSecret;
  const auth = await planAuth({
    user: host.user,
    target,
    identityFiles: host.identityFiles,
    agentSocket,
    askSecret: askSecret && ((request) => clock.whileAsking(() => askSecret(request))),
  });
  const approve = async (key: Buffer, fingerprint: string, verdict: HostKeyVerdict): Promise<boolean> => {
    const approved = await clock.whileAsking(() => options.approveHostKey!(`${host.hostName}:${host.port}`, fingerprint));
    if (!approved) {
      refusal = hostKeyError(host, verdict);
      return false;
    }
    try {
      await recordHostKey(options.tidemarkKnownHosts, host, key);
    } catch (error) {
      refusal = new TidemarkError(
        'IO',
        `cannot record the approved host key of ${host.hostName}:${host.port} in ${options.tidemarkKnownHosts}: ${error instanceof Error ? error.message : String(error)}`,
        'make the Tidemark home writable (and not full), then connect again',
      );
      return false;
    }
    return true;
  };
  let hostKey = '';
  const recordedTypes = recordedKeyTypes(entries, host.hostName, host.port);
  const config: ConnectConfig = {
    host: host.hostName,
    port: host.port,
    username: host.user,
    readyTimeout: 0, // the HandshakeClock keeps time, stopped while a person answers
    keepaliveInterval: options.keepaliveIntervalMs ?? 15_000,
    keepaliveCountMax: 3,
    authHandler: auth.handler,
    // A host with several key types presents the one recorded, as OpenSSH arranges.
    ...(hostKeyAlgorithmsFor(recordedTypes).length > 0 ? { algorithms: { serverHostKey: { prepend: hostKeyAlgorithmsFor(recordedTypes) } as never } } : {}),
    ...(sock ? { sock } : {}),
    hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
      hostKey = `${keyTypeOf(key)} ${key.toString('base64')}`;
      const verdict = verifyHostKey(entries, host.hostName, host.port, keyTypeOf(key), key);
      if (verdict.kind === 'match') return verify(true);
      if (verdict.kind !== 'unknown' || !options.approveHostKey) {
        refusal = hostKeyError(host, verdict);
        return verify(false);
      }
      approve(key, verdict.fingerprint, verdict).then(verify, () => verify(false));
    },
  };
  let cipher = 'unknown';
  client.once('handshake', (negotiated: { sc?: { cipher?: string } }) => (cipher = negotiated.sc?.cipher ?? cipher));
  try {
    await new Promise<void>((resolve, reject) => {
      fail = (error) => {
        clock.stop();
        reject(error);
        client.end();
      };
      client.once('ready', () => {
        clock.stop();
        resolve();
      });
      client.on('error', (error: Error & { level?: string }) => {
        if (refusal) return fail(refusal);
        if (error.level === 'client-authentication') return fail(refusedError(host, auth.log));
        fail(
          new TidemarkError(
            'DISCONNECTED',
            `cannot reach ${host.hostName}:${host.port} over SSH: ${error.message}`,
            'check the address, the port and that sshd runs there',
          ),
        );
      });
      client.once('close', () =>
        fail(
          refusal ??
            new TidemarkError('DISCONNECTED', `${host.hostName}:${host.port} closed the SSH connection during the handshake`, 'check the host’s sshd log'),
        ),
      );
      const signal = options.signal;
      if (signal?.aborted) return fail(cancelled(host));
      signal?.addEventListener('abort', () => fail(cancelled(host)), { once: true });
      clock.start();
      client.connect(config);
      // ssh2 writes a packet in several pieces; with Nagle on, each small request waits for
      // the peer's delayed ACK (~40 ms per agent call). Off, as OpenSSH does for sessions.
      client.setNoDelay(true);
    });
  } finally {
    clock.stop();
  }
  // After ready, a dropped link surfaces as 'close' (and through every channel); the
  // 'error' listener above stays so an error never crashes the process.
  return { client, cipher, hostKey };
}

async function recordHostKey(file: string, host: SshHostConfig, key: Buffer): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await appendFile(file, `${knownHostsLine(host.hostName, host.port, keyTypeOf(key), key, randomBytes(20))}\n`, { mode: 0o600 });
}
