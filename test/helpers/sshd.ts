// A real OpenSSH sshd for tests: generated host and user keys, loopback only, a free port,
// public-key auth only. Started and stopped by the test; nothing outside its temp dir.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { requireTool } from './tools';

export interface TestSshd {
  readonly dir: string;
  readonly port: number;
  readonly alias: string;
  /** An ssh config naming the host alias with its port, user and key. */
  readonly sshConfigPath: string;
  readonly hostKeyPub: string;
  readonly userKeyPath: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startSshd(dir: string, options: { extraConfig?: string[] } = {}): Promise<TestSshd> {
  requireTool('sshd');
  requireTool('ssh-keygen');
  if (process.getuid?.() !== 0) throw new Error('the sshd harness logs in as the current user with a generated key; it needs root here (CI runs as root)');
  await mkdir(dir, { recursive: true });
  await mkdir('/run/sshd', { recursive: true });
  for (const key of ['host_key', 'user_key']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, key)]);
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'user_key.pub')), { mode: 0o600 });
  const port = await freePort();
  const sshdConfig = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
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
    ...(options.extraConfig ?? []),
  ];
  await writeFile(join(dir, 'sshd_config'), `${sshdConfig.join('\n')}\n`);
  const alias = 'tidemark-test-host';
  const sshConfigPath = join(dir, 'ssh_config');
  await writeFile(
    sshConfigPath,
    `Host ${alias}\n  HostName 127.0.0.1\n  Port ${port}\n  User ${process.env.USER ?? 'root'}\n  IdentityFile ${join(dir, 'user_key')}\n`,
  );
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  sshd.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  await waitForPort(port, sshd, () => log);
  return {
    dir,
    port,
    alias,
    sshConfigPath,
    hostKeyPub: join(dir, 'host_key.pub'),
    userKeyPath: join(dir, 'user_key'),
    stop: () => stop(sshd),
  };
}

async function waitForPort(port: number, sshd: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (sshd.exitCode !== null) throw new Error(`sshd exited: ${log()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection(port, '127.0.0.1');
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

function stop(sshd: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (sshd.exitCode !== null) return resolve();
    sshd.once('exit', () => resolve());
    sshd.kill('SIGTERM');
  });
}
