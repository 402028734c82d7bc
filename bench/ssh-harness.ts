// The SSH benchmarks' loopback host: the test harness's real OpenSSH sshd, made to offer one
// cipher so Tidemark (ssh2) and OpenSSH's `ssh` are measured on the same one; Tidemark's
// connection and remote agents on homes in the temp dir; and an OpenSSH master connection for
// the `ssh` peer, so neither side pays a handshake inside a timed run. Everything started here
// is stopped afterwards, and also when the run is interrupted.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Client } from 'ssh2';
import { RemoteHost, connectSsh, openRemoteAgent, sha256Fingerprint, type RemoteAgent, type SshConnectOptions } from '../src-engine/ssh';
import { agentInfoOf } from '../test/helpers/agent-processes';
import { startSshd, type TestSshd } from '../test/helpers/sshd';
import { requireTool } from '../test/helpers/tools';
import { withTempDir } from './temp';
import { runCommand } from './timing';

/**
 * The cipher of the same-cipher runs. Tidemark's bundles leave out ssh2's native binding, so
 * ssh2 runs AES-GCM on Node's OpenSSL (AES-NI) but chacha20-poly1305 as OpenSSL chacha20 plus
 * Poly1305 in WebAssembly, which costs more per byte. OpenSSH prefers chacha20-poly1305 and
 * ssh2 prefers AES-GCM, so left alone (a stock sshd, each client's defaults — what a user
 * gets) the two negotiate different ciphers; offering only AES-GCM compares them on equal
 * terms, the cipher OpenSSH runs fastest.
 */
export const benchCipher = 'aes128-gcm@openssh.com';

const waitMsMax = 10_000;
const pollMs = 50;

export interface SshHarness {
  readonly dir: string;
  readonly sshd: TestSshd;
  /** The cipher OpenSSH's client reported negotiating (ssh -v of the master connection), once it ran. */
  readonly opensshCipher: string;
  /** The cipher ssh2 negotiated for Tidemark's connection, once openAgent ran. */
  readonly tidemarkCipher: string;
  /** Tidemark's side: the agent of `homeDir` on the host, over its own ssh2 connection. */
  openAgent(homeDir: string): Promise<RemoteAgent>;
  /** Tidemark's side as the CLI reaches a remote VOLREF: a RemoteHost on `homeDir`'s agent, connected. */
  openHost(homeDir: string): Promise<RemoteHost>;
  /** `ssh` and its options through the master connection, for tools that take an ssh command (rsync -e). */
  sshCommand(): Promise<string[]>;
  /** OpenSSH's side: `ssh host <command>` through the master connection, stdout to /dev/null. */
  sshToDevNull(command: string): Promise<void>;
  /** Like sshToDevNull but counts the bytes of stdout (for checks outside timed runs). */
  sshCountBytes(command: string): Promise<number>;
}

export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** dist/tidemark-agent.cjs beside the bench bundle (dist/bench.cjs) or under the repo (bench/run.ts). */
export function agentBundlePath(): string {
  const script = process.argv[1];
  const root = script ? resolve(dirname(script), '..') : resolve('.');
  const bundle = join(root, 'dist', 'tidemark-agent.cjs');
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run \`npm run build\` first (npm run bench does)`);
  return bundle;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGTERM'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function waitForExit(pid: number): Promise<void> {
  for (const deadline = Date.now() + waitMsMax; isAlive(pid); await delay(pollMs)) {
    if (Date.now() > deadline) return killQuietly(pid, 'SIGKILL');
  }
}

/** Stops the detached agent serving a home, if one does, and waits for it to exit. */
async function stopAgentOf(homeDir: string): Promise<void> {
  const info = await agentInfoOf(homeDir);
  if (!info) return;
  killQuietly(info.pid);
  await waitForExit(info.pid);
}

/**
 * Processes to kill if the run is interrupted: the signal handler in run.ts exits the process,
 * and these are killed on 'exit' (synchronously, as 'exit' requires).
 */
const livePids = new Set<number>();
const killLive = () => livePids.forEach((pid) => killQuietly(pid));

class Harness implements SshHarness {
  opensshCipher = 'unknown';
  tidemarkCipher = 'unknown';
  private readonly clients: Client[] = [];
  private readonly hosts: RemoteHost[] = [];
  private readonly homes: string[] = [];
  private master: ChildProcess | undefined;
  private readonly controlPath: string;
  private readonly tidemarkKnownHosts: string;
  private readonly opensshKnownHosts: string;

  constructor(
    readonly dir: string,
    readonly sshd: TestSshd,
    /** The only cipher sshd offers and `ssh` asks for; null: stock sshd and each client's defaults. */
    private readonly cipher: string | null,
  ) {
    this.controlPath = join(dir, 'cm.sock');
    this.tidemarkKnownHosts = join(dir, 'tidemark_known_hosts');
    this.opensshKnownHosts = join(dir, 'openssh_known_hosts');
  }

  private async hostKey(): Promise<{ type: string; blob: Buffer }> {
    const [type, base64] = (await readFile(this.sshd.hostKeyPub, 'utf8')).trim().split(' ');
    if (!type || !base64) throw new Error(`cannot read the host key ${this.sshd.hostKeyPub}`);
    return { type, blob: Buffer.from(base64, 'base64') };
  }

  /** Options of every OpenSSH client run: the harness config, a known_hosts holding the host key, no agent. */
  private sshOptions(): string[] {
    return [
      ...['-F', this.sshd.sshConfigPath, '-S', this.controlPath, ...(this.cipher ? ['-c', this.cipher] : [])],
      ...['-o', `UserKnownHostsFile=${this.opensshKnownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes'],
      ...['-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'Compression=no'],
    ];
  }

  private masterStarted: Promise<void> | undefined;

  /** The master connection, started on first use: only the `ssh` peer needs it. */
  private ensureMaster(): Promise<void> {
    this.masterStarted ??= this.startMaster();
    return this.masterStarted;
  }

  /** Starts `ssh -M -N` (the master connection) and waits until it accepts sessions. */
  private async startMaster(): Promise<void> {
    const { type, blob } = await this.hostKey();
    await writeFile(this.opensshKnownHosts, `[127.0.0.1]:${this.sshd.port} ${type} ${blob.toString('base64')}\n`);
    const master = spawn('ssh', [...this.sshOptions(), '-v', '-M', '-N', '-o', 'ControlMaster=yes', this.sshd.alias], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.master = master;
    if (master.pid !== undefined) livePids.add(master.pid);
    let log = '';
    let failure: Error | undefined;
    master.once('error', (error) => (failure = error));
    master.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-64 * 1024)));
    for (const deadline = Date.now() + waitMsMax; ; await delay(pollMs)) {
      if (failure) throw new Error(`cannot start the ssh master connection: ${failure.message}`);
      if (master.exitCode !== null) throw new Error(`ssh master connection exited: ${log.trim()}`);
      const ready = await runCommand('ssh', [...this.sshOptions(), '-O', 'check', this.sshd.alias]).then(
        () => true,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`ssh master connection not ready after ${waitMsMax} ms: ${log.trim()}`);
    }
    this.opensshCipher = /kex: server->client cipher: (\S+)/.exec(log)?.[1] ?? 'unknown';
  }

  /** How Tidemark's connections reach the host: the harness config, the host key approved by its fingerprint, no ssh-agent. */
  private async connectOptions(): Promise<SshConnectOptions> {
    const { blob } = await this.hostKey();
    const expected = sha256Fingerprint(blob);
    return {
      tidemarkKnownHosts: this.tidemarkKnownHosts,
      userKnownHosts: join(this.dir, 'no-user-known-hosts'),
      sshConfigPath: this.sshd.sshConfigPath,
      agentSocket: '',
      approveHostKey: async (_host, fingerprint) => fingerprint === expected,
    };
  }

  async openAgent(homeDir: string): Promise<RemoteAgent> {
    const { client, host, cipher } = await connectSsh(this.sshd.alias, await this.connectOptions());
    this.tidemarkCipher = cipher;
    this.clients.push(client);
    this.homes.push(homeDir);
    const remote = await openRemoteAgent(client, host, { bundlePath: agentBundlePath(), homeDir });
    livePids.add((await remote.agent.info()).pid);
    return remote;
  }

  async openHost(homeDir: string): Promise<RemoteHost> {
    const host = new RemoteHost(this.sshd.alias, { ...(await this.connectOptions()), bundlePath: agentBundlePath(), homeDir, reconnectAttempts: 1 });
    this.hosts.push(host);
    if (!this.homes.includes(homeDir)) this.homes.push(homeDir);
    await host.connect();
    livePids.add((await host.info()).pid);
    return host;
  }

  async sshCommand(): Promise<string[]> {
    await this.ensureMaster();
    return ['ssh', ...this.sshOptions(), '-o', 'ControlMaster=no'];
  }

  private async ssh(command: string, stdout: 'devnull' | 'count'): Promise<number> {
    await this.ensureMaster();
    return new Promise((resolve, reject) => {
      const args = [...this.sshOptions(), '-o', 'ControlMaster=no', this.sshd.alias, command];
      const run = (stdoutFd: number | 'pipe', onClose: () => void) => {
        const child = spawn('ssh', args, { stdio: ['ignore', stdoutFd, 'pipe'] });
        let counted = 0;
        let stderr = '';
        child.stdout?.on('data', (chunk: Buffer) => (counted += chunk.length));
        child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.once('error', reject);
        child.once('close', (code, signal) => {
          onClose();
          if (code === 0) return resolve(counted);
          reject(new Error(`ssh ${this.sshd.alias} ${command} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
        });
      };
      if (stdout === 'count') return run('pipe', () => undefined);
      open('/dev/null', 'w').then(
        (devNull) => run(devNull.fd, () => void devNull.close()),
        (error: unknown) => reject(error instanceof Error ? error : new Error(String(error))),
      );
    });
  }

  async sshToDevNull(command: string): Promise<void> {
    await this.ssh(command, 'devnull');
  }

  sshCountBytes(command: string): Promise<number> {
    return this.ssh(command, 'count');
  }

  /** Ends every connection, stops the agents and the master; sshd is the caller's. */
  async close(): Promise<void> {
    await Promise.all(this.hosts.splice(0).map((host) => host.dispose().catch(() => undefined)));
    for (const client of this.clients.splice(0)) client.end();
    await Promise.all(this.homes.splice(0).map((home) => stopAgentOf(home).catch(() => undefined)));
    const master = this.master;
    if (master?.pid !== undefined && master.exitCode === null && master.signalCode === null) {
      const exited = new Promise((resolve) => master.once('exit', resolve));
      master.kill('SIGTERM');
      await exited;
    }
  }
}

/** Reads sshd's pid file (written by `sshd -D` too), so an interrupted run can still stop it. */
function sshdPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, 'sshd.pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Runs `work` with a loopback sshd (offering only `cipher` when given), then stops everything it started. */
export async function withSshHarness<T>(prefix: string, cipher: string | null, work: (harness: SshHarness) => Promise<T>): Promise<T> {
  requireTool('ssh');
  return withTempDir(prefix, async (dir) => {
    process.once('exit', killLive);
    try {
      const sshd = await startSshd(join(dir, 'sshd'), { extraConfig: cipher ? [`Ciphers ${cipher}`] : [] });
      const pid = sshdPid(sshd.dir);
      if (pid !== undefined) livePids.add(pid);
      const harness = new Harness(dir, sshd, cipher);
      try {
        return await work(harness);
      } finally {
        await harness.close();
        await delay(pollMs); // let sshd's per-connection processes see their clients go
        sshd.dropConnections();
        await sshd.stop();
      }
    } finally {
      livePids.clear();
      process.off('exit', killLive);
    }
  });
}
