// A real OpenSSH sshd for tests: generated host and user keys, loopback only, a free port,
// public-key auth only (password auth when asked, in a private mount namespace). Started and stopped by the test; nothing outside its temp dir.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { stopAgentOf } from './agent-processes';
import { requireTool } from './tools';

export interface TestSshd {
  readonly dir: string;
  readonly port: number;
  readonly alias: string;
  /** The address sshd listens on: 127.0.0.1, or the namespace's address (`netns`). */
  readonly address: string;
  /** An ssh config naming the host alias with its port, user and key. */
  readonly sshConfigPath: string;
  readonly hostKeyPub: string;
  readonly userKeyPath: string;
  /** The Tidemark home agents started without --home use on this host. */
  readonly defaultHome: string;
  /** The file sshd reads authorized keys from (per-pair keys land here too). */
  readonly authorizedKeysPath: string;
  /** Kills every per-connection sshd process: each client sees its connection drop mid-flight. */
  dropConnections(): number;
  /** How many connections sshd is serving now (its per-connection processes). */
  sessions(): number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface SshdOptions {
  /** sshd_config lines; they come first, so they win over the defaults (sshd takes the first value). */
  readonly extraConfig?: string[];
  /**
   * Password login for the current user: sshd runs in its own mount namespace where
   * /etc/shadow is a copy giving the user this password (the machine's file is untouched).
   */
  readonly password?: string;
  /**
   * Run sshd inside an existing network namespace (`ip netns exec NAME`), listening on
   * `address` there; the ssh config's alias points at that address. The caller creates and
   * removes the namespace and its links (e.g. a veth pair shaped with `tc`).
   */
  readonly netns?: { readonly name: string; readonly address: string };
}

export async function startSshd(dir: string, options: SshdOptions = {}): Promise<TestSshd> {
  requireTool('sshd');
  requireTool('ssh-keygen');
  if (process.getuid?.() !== 0) throw new Error('the sshd harness logs in as the current user with a generated key; it needs root here (CI runs as root)');
  if (options.netns && options.password) throw new Error('the sshd harness runs either in a network namespace or with a password, not both');
  if (options.netns) requireTool('ip');
  const address = options.netns?.address ?? '127.0.0.1';
  await mkdir(dir, { recursive: true });
  await mkdir('/run/sshd', { recursive: true });
  for (const key of ['host_key', 'user_key']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, key)]);
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'user_key.pub')), { mode: 0o600 });
  const port = await freePort();
  // Agents started without --home land in the host's default Tidemark home: keep that inside
  // this harness (stopped with it), never the machine's own ~/.local/share/tidemark.
  const defaultHome = join(dir, 'default-tidemark-home');
  const ownHome = (options.extraConfig ?? []).some((line) => /^SetEnv .*TIDEMARK_HOME=/.test(line));
  const sshdConfig = [
    ...(options.extraConfig ?? []),
    // Per-pair keys go into the harness's authorized_keys, never the machine's ~/.ssh.
    ...(ownHome ? [] : [`SetEnv TIDEMARK_HOME=${defaultHome} TIDEMARK_AUTHORIZED_KEYS=${join(dir, 'authorized_keys')}`]),
    `Port ${port}`,
    `ListenAddress ${address}`,
    `HostKey ${join(dir, 'host_key')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    'StrictModes no',
    'UsePAM no',
    'Subsystem sftp internal-sftp',
  ];
  await writeFile(join(dir, 'sshd_config'), `${sshdConfig.join('\n')}\n`);
  const alias = 'tidemark-test-host';
  const sshConfigPath = join(dir, 'ssh_config');
  await writeFile(
    sshConfigPath,
    `Host ${alias}\n  HostName ${address}\n  Port ${port}\n  User ${process.env.USER ?? 'root'}\n  IdentityFile ${join(dir, 'user_key')}\n`,
  );
  const sshdArgs = ['-D', '-e', '-f', join(dir, 'sshd_config')];
  const sshd = options.password
    ? spawn(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount --bind "$0" /etc/shadow && exec /usr/sbin/sshd "$@"',
          await shadowWithPassword(dir, options.password),
          ...sshdArgs,
        ],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      )
    : options.netns
      ? // `ip netns exec` execs sshd in place (no fork), so the child's pid is the listener's.
        spawn('ip', ['netns', 'exec', options.netns.name, '/usr/sbin/sshd', ...sshdArgs], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('/usr/sbin/sshd', sshdArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  sshd.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  await waitForPort(address, port, sshd, () => log);
  return {
    dir,
    port,
    alias,
    address,
    sshConfigPath,
    hostKeyPub: join(dir, 'host_key.pub'),
    userKeyPath: join(dir, 'user_key'),
    defaultHome,
    authorizedKeysPath: join(dir, 'authorized_keys'),
    dropConnections: () => dropConnections(sshd.pid!),
    sessions: () => sessionPids(sshd.pid!).length,
    stop: async () => {
      await stopAgentOf(defaultHome);
      await stop(sshd);
    },
  };
}

/** A copy of /etc/shadow where the current user's password is `password`. */
async function shadowWithPassword(dir: string, password: string): Promise<string> {
  requireTool('openssl');
  const hash = execFileSync('openssl', ['passwd', '-6', '-salt', 'tidemarktest', password], { encoding: 'utf8' }).trim();
  const user = userInfo().username;
  const lines = (await readFile('/etc/shadow', 'utf8')).split('\n').map((line) => {
    const fields = line.split(':');
    if (fields[0] !== user) return line;
    fields[1] = hash;
    return fields.join(':');
  });
  const path = join(dir, 'shadow');
  await writeFile(path, lines.join('\n'), { mode: 0o600 });
  return path;
}

async function waitForPort(address: string, port: number, sshd: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (sshd.exitCode !== null) throw new Error(`sshd exited: ${log()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection(port, address);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`sshd did not listen on ${port}: ${log()}`);
}

function sessionPids(listenerPid: number): number[] {
  const found = spawnSync('pgrep', ['-P', String(listenerPid)], { encoding: 'utf8' });
  return found.stdout.split('\n').filter(Boolean).map(Number);
}

function dropConnections(listenerPid: number): number {
  const pids = sessionPids(listenerPid);
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  return pids.length;
}

function stop(sshd: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (sshd.exitCode !== null) return resolve();
    sshd.once('exit', () => resolve());
    sshd.kill('SIGTERM');
  });
}
