// SSH sessions against real OpenSSH sshds on loopback: a connection killed mid-transfer is
// reported and the next operation reconnects; ProxyJump through a jump host; passphrase-
// protected keys (callback and $SSH_ASKPASS), ssh-agent, and password login only when a person
// can be asked.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError } from '../../src-engine/errors';
import { RemoteHost, backoffDelayMs, connectSsh, parseHostSpec, type RemoteHostOptions, type RemoteHostStatus, type SecretRequest } from '../../src-engine/ssh';
import { stopAgentOf, testRemoteHostOptions } from '../helpers/agents';
import { tidemark } from '../helpers/cli';
import { startSshd, type TestSshd } from '../helpers/sshd';
import { requireTool } from '../helpers/tools';
import { until } from '../helpers/engine';

let sshd: TestSshd;
let dir: string;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-ssh-sessions-'));
  // Agents started without a --home (the CLI's remote VOLREFs) stay in here, not in the machine's default home.
  sshd = await startSshd(join(dir, 'sshd'), { extraConfig: [`SetEnv TIDEMARK_HOME=${join(dir, 'remote-default-home')}`] });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await stopAgentOf(join(dir, 'remote-home'));
  await stopAgentOf(join(dir, 'remote-default-home'));
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

function baseOptions(extra: Partial<RemoteHostOptions> = {}): RemoteHostOptions {
  return { ...testRemoteHostOptions(sshd, dir, join(dir, 'remote-home')), ...extra };
}

function remoteHost(extra: Partial<ConstructorParameters<typeof RemoteHost>[1]> = {}, alias = sshd.alias): { host: RemoteHost; states: string[] } {
  const states: string[] = [];
  const host = new RemoteHost(alias, { ...baseOptions(extra), onStatus: (s: RemoteHostStatus) => states.at(-1) !== s.state && states.push(s.state) });
  cleanups.push(() => host.dispose());
  return { host, states };
}

const isError = (code: string, pattern: RegExp) => (e: unknown) => e instanceof TidemarkError && e.code === code && pattern.test(e.oneLine());

describe('reconnect', () => {
  it('backoff doubles from the initial delay and stops at its cap', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelayMs(a, 250, 8000))).toEqual([0, 250, 500, 1000, 2000, 4000, 8000, 8000]);
  });

  it('a connection killed mid-transfer is reported with how far it got, and the next operation reconnects', async () => {
    const { host, states } = remoteHost();
    const path = join(dir, 'transfer.img');
    const regionBytes = 1024 * 1024;
    await host.volumeCreate(path, 256 * regionBytes, regionBytes);
    const pattern = Buffer.alloc(regionBytes, 0xa7);
    for (let r = 0; r < 256; r += 1) await host.writeRegion(path, r, pattern);
    let received = 0;
    const reading = (async () => {
      for await (const region of host.readRegions(path, 0, 256)) {
        expect(Buffer.from(region.data).equals(pattern)).toBe(true);
        received += 1;
        if (received === 8) expect(sshd.dropConnections()).toBeGreaterThan(0);
      }
    })();
    await expect(reading).rejects.toSatisfy(
      isError(
        'DISCONNECTED',
        /^connection to \S+@127\.0\.0\.1:\d+ dropped while reading \S+transfer\.img \((\d+) of 256 regions received\) — .*resume from region \d+/,
      ),
    );
    expect(received).toBeGreaterThanOrEqual(8);
    expect(received).toBeLessThan(256);
    expect(host.status.state).toBe('disconnected');
    // The next operation reconnects by itself and sees the data whole.
    const info = await host.volumeInfo(path);
    expect(info).toMatchObject({ regions: 256, realizedRegions: 256 });
    expect(host.status).toMatchObject({ state: 'connected', connections: 2 });
    expect(states).toEqual(['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
  });

  it('an unreachable host is retried with backoff, then reported as given up', async () => {
    const config = join(dir, 'ssh_config_down');
    await writeFile(config, `Host down\n  HostName 127.0.0.1\n  Port 1\n`);
    const { host, states } = remoteHost({ sshConfigPath: config, reconnectAttempts: 3, reconnectDelayMsInitial: 20, reconnectDelayMsMax: 40 }, 'down');
    await expect(host.info()).rejects.toSatisfy(
      isError('DISCONNECTED', /cannot reach 127\.0\.0\.1:1 over SSH: .*\(gave up after 3 attempts\) — check the address/),
    );
    expect(host.status.state).toBe('failed');
    expect(states).toEqual(['connecting', 'failed']);
  });

  it('a refused host key is not retried', async () => {
    const { host } = remoteHost({ approveHostKey: undefined, tidemarkKnownHosts: join(dir, 'kh-empty'), reconnectAttempts: 5, reconnectDelayMsInitial: 5000 });
    const started = Date.now();
    await expect(host.info()).rejects.toSatisfy(isError('PERMISSION', /unknown host/));
    expect(Date.now() - started).toBeLessThan(5000); // no backoff wait happened
  });
});

describe('handshake', () => {
  it('a host presenting a key type other than the recorded one is refused, never offered for approval', async () => {
    const rsa = join(dir, 'rsa_host_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', rsa]);
    const [type, base64] = (await readFile(`${rsa}.pub`, 'utf8')).trim().split(' ');
    const knownHosts = join(dir, 'kh-rsa-only');
    await writeFile(knownHosts, `[127.0.0.1]:${sshd.port} ${type} ${base64}\n`);
    let asked = 0;
    await expect(connectSsh(sshd.alias, { ...baseOptions(), tidemarkKnownHosts: knownHosts, approveHostKey: async () => (asked++, true) })).rejects.toSatisfy(
      isError('PERMISSION', new RegExp(`presented a ssh-ed25519 host key .*records a ssh-rsa key for it.*line 1`)),
    );
    expect(asked).toBe(0);
    expect((await readFile(knownHosts, 'utf8')).split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('the handshake deadline stops while a person decides', async () => {
    const { client } = await connectSsh(sshd.alias, {
      ...baseOptions(),
      tidemarkKnownHosts: join(dir, 'kh-slow'),
      readyTimeoutMs: 400,
      approveHostKey: () => new Promise((resolve) => setTimeout(() => resolve(true), 1000)),
    });
    client.end();
  });

  it('a host that never speaks SSH times out with a clear error', async () => {
    const silent = createServer(() => undefined); // accepts, says nothing
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    cleanups.push(() => void silent.close());
    const config = join(dir, 'ssh_config_silent');
    await writeFile(config, `Host silent\n  HostName 127.0.0.1\n  Port ${(silent.address() as AddressInfo).port}\n`);
    await expect(connectSsh('silent', { ...baseOptions({ sshConfigPath: config }), readyTimeoutMs: 300 })).rejects.toSatisfy(
      isError('DISCONNECTED', /no SSH handshake with 127\.0\.0\.1:\d+ within 0\.3 s — check the address/),
    );
  });

  it('an approved key that cannot be recorded fails with the file named, and the process lives on', async () => {
    const notADir = join(dir, 'plain-file');
    await writeFile(notADir, 'x');
    const knownHosts = join(notADir, 'known_hosts');
    await expect(connectSsh(sshd.alias, { ...baseOptions(), tidemarkKnownHosts: knownHosts })).rejects.toSatisfy(
      isError(
        'IO',
        new RegExp(`cannot record the approved host key of 127\\.0\\.0\\.1:\\d+ in ${knownHosts.replace(/[.]/g, '\\.')}.*make the Tidemark home writable`),
      ),
    );
  });
});

describe('ProxyJump', () => {
  it('parses the first hop in both forms', () => {
    expect(parseHostSpec('admin@bastion:2222')).toEqual({ alias: 'bastion', user: 'admin', port: 2222 });
    expect(parseHostSpec('ssh://bastion')).toEqual({ alias: 'bastion', user: null, port: null });
    expect(() => parseHostSpec('a b')).toThrow(/ProxyJump "a b" is not \[user@\]host\[:port\]/);
  });

  it('reaches a host through a jump host, approving both host keys', async () => {
    const target = await startSshd(join(dir, 'sshd-behind'));
    cleanups.push(() => target.stop());
    const config = join(dir, 'ssh_config_jump');
    const user = (await readFile(sshd.sshConfigPath, 'utf8')).match(/User (\S+)/)![1];
    await writeFile(
      config,
      [
        `Host bastion`,
        `  HostName 127.0.0.1`,
        `  Port ${sshd.port}`,
        `  IdentityFile ${sshd.userKeyPath}`,
        `Host behind`,
        `  HostName 127.0.0.1`,
        `  Port ${target.port}`,
        `  User ${user}`,
        `  IdentityFile ${target.userKeyPath}`,
        `  ProxyJump ${user}@bastion`,
        '',
      ].join('\n'),
    );
    const asked: string[] = [];
    const jumped = await connectSsh('behind', {
      tidemarkKnownHosts: join(dir, 'kh-jump'),
      userKnownHosts: join(dir, 'none'),
      sshConfigPath: config,
      agentSocket: '',
      approveHostKey: async (hostPort) => (asked.push(hostPort), true),
    });
    cleanups.push(() => void jumped.client.end());
    expect(asked).toEqual([`127.0.0.1:${sshd.port}`, `127.0.0.1:${target.port}`]);
    expect(sshd.sessions()).toBeGreaterThan(0); // the bastion carries the connection
    const output = await new Promise<string>((resolve, reject) =>
      jumped.client.exec('echo via-jump', (error, channel) => {
        if (error) return reject(error);
        let text = '';
        channel.on('data', (chunk: Buffer) => (text += chunk.toString()));
        channel.on('close', () => resolve(text.trim()));
      }),
    );
    expect(output).toBe('via-jump');
  });
});

describe('authentication', () => {
  let encryptedKey: string;
  let config: string;

  beforeAll(async () => {
    encryptedKey = join(dir, 'encrypted_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'correct horse', '-f', encryptedKey]);
    const authorized = join(sshd.dir, 'authorized_keys');
    await writeFile(authorized, `${await readFile(authorized, 'utf8')}${await readFile(`${encryptedKey}.pub`, 'utf8')}`);
    config = join(dir, 'ssh_config_encrypted');
    await writeFile(config, (await readFile(sshd.sshConfigPath, 'utf8')).replace(sshd.userKeyPath, encryptedKey));
  });

  it('a passphrase-protected key asks through the callback, again after a wrong answer', async () => {
    const asked: SecretRequest[] = [];
    const answers = ['wrong', 'correct horse'];
    const { client } = await connectSsh(sshd.alias, {
      ...baseOptions({ sshConfigPath: config }),
      askSecret: async (request) => (asked.push(request), answers.shift() ?? null),
    });
    client.end();
    expect(asked.map((r) => [r.kind, r.keyFile, r.echo])).toEqual([
      ['passphrase', encryptedKey, false],
      ['passphrase', encryptedKey, false],
    ]);
    expect(asked[1]!.prompt).toMatch(/^Wrong passphrase/);
  });

  it('without anyone to ask, the key is skipped and the refusal says how to load it', async () => {
    await expect(connectSsh(sshd.alias, baseOptions({ sshConfigPath: config }))).rejects.toSatisfy(
      isError('PERMISSION', /refused every credential offered \(skipped \S+encrypted_key \(passphrase-protected; load it with ssh-add/),
    );
  });

  it('the CLI takes the passphrase from $SSH_ASKPASS off a terminal', async () => {
    const askpass = join(dir, 'askpass.sh');
    await writeFile(askpass, `#!/bin/sh\necho "$1" >> ${join(dir, 'askpass.log')}\necho 'correct horse'\n`);
    await chmod(askpass, 0o755);
    const userHome = join(dir, 'askpass-home');
    await (await import('node:fs/promises')).mkdir(join(userHome, '.ssh'), { recursive: true });
    await writeFile(join(userHome, '.ssh', 'config'), await readFile(config, 'utf8'));
    const volref = `${sshd.alias}:${join(dir, 'askpass.img')}`;
    const env = { HOME: userHome, SSH_AUTH_SOCK: '', SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', TIDEMARK_HOME: join(dir, 'askpass-tm-home') };
    const created = tidemark(['--accept-new-host-key', '--json', 'volume', 'create', volref, '--size', '2MiB'], env);
    expect(created.status, created.stderr).toBe(0);
    expect(await readFile(join(dir, 'askpass.log'), 'utf8')).toMatch(/Passphrase for \S+encrypted_key/);
  });

  it('a key held by ssh-agent is used', async () => {
    requireTool('ssh-agent');
    const socket = join(dir, 'ssh-agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    cleanups.push(() => void agent.kill());
    await until(() => existsSync(socket), 5_000, 'the ssh-agent socket');
    execFileSync('ssh-add', [sshd.userKeyPath], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
    const noKeys = join(dir, 'ssh_config_agent');
    await writeFile(noKeys, (await readFile(sshd.sshConfigPath, 'utf8')).replace(sshd.userKeyPath, join(dir, 'no-such-key')));
    const { client } = await connectSsh(sshd.alias, { ...baseOptions({ sshConfigPath: noKeys }), agentSocket: socket });
    client.end();
  });

  it('password login is offered only when a person can be asked', async () => {
    const passwordSshd = await startSshd(join(dir, 'sshd-password'), {
      password: 'tide-pass',
      extraConfig: ['PasswordAuthentication yes', 'PermitRootLogin yes', 'PubkeyAuthentication no'],
    });
    cleanups.push(() => passwordSshd.stop());
    const options = { ...baseOptions({ sshConfigPath: passwordSshd.sshConfigPath }), tidemarkKnownHosts: join(dir, 'kh-password') };
    await expect(connectSsh(passwordSshd.alias, options)).rejects.toSatisfy(isError('PERMISSION', /refused every credential offered/));
    const asked: SecretRequest[] = [];
    const { client } = await connectSsh(passwordSshd.alias, { ...options, askSecret: async (request) => (asked.push(request), 'tide-pass') });
    client.end();
    expect(asked.map((r) => r.kind)).toEqual(['password']);
  });
});
