// SSH against a real OpenSSH sshd on loopback: host-key approval and refusal, user-key
// refusal, agent deployment over SFTP, and the AgentApi over SSH; a host without Node gets
// the clear error.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError } from '../../src-engine/errors';
import { connectSsh, openRemoteAgent, sha256Fingerprint } from '../../src-engine/ssh';
import { stopAgentOf } from '../helpers/agents';
import { agentBundle, tidemark } from '../helpers/cli';
import { startSshd, type TestSshd } from '../helpers/sshd';

let sshd: TestSshd;
let dir: string;
const clients: Client[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-ssh-')); // one directory for the whole file: sshd lives in it
  // The host's default Tidemark home, so agents started by VOLREFs without a home stay in here.
  sshd = await startSshd(join(dir, 'sshd'), { extraConfig: [`SetEnv TIDEMARK_HOME=${join(dir, 'remote-default-home')}`] });
});

afterAll(async () => {
  clients.forEach((c) => c.end());
  await stopAgentOf(join(dir, 'remote-default-home'));
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function hostFingerprint(): Promise<string> {
  const [, base64] = (await readFile(sshd.hostKeyPub, 'utf8')).trim().split(' ');
  const fingerprint = sha256Fingerprint(Buffer.from(base64!, 'base64'));
  expect(execFileSync('ssh-keygen', ['-lf', sshd.hostKeyPub], { encoding: 'utf8' })).toContain(fingerprint);
  return fingerprint;
}

function options(knownHostsName: string, extra: Partial<Parameters<typeof connectSsh>[1]> = {}) {
  return { tidemarkKnownHosts: join(dir, knownHostsName), userKnownHosts: join(dir, 'no-user-known-hosts'), sshConfigPath: sshd.sshConfigPath, ...extra };
}

const refusedWith = (pattern: RegExp) => (e: unknown) => e instanceof TidemarkError && e.code === 'PERMISSION' && pattern.test(e.oneLine());

describe('ssh', () => {
  it('refuses an unknown host without approval, naming its SHA256 fingerprint', async () => {
    const fingerprint = await hostFingerprint();
    await expect(connectSsh(sshd.alias, options('kh-refuse'))).rejects.toSatisfy(
      refusedWith(new RegExp(`unknown host 127.0.0.1:${sshd.port}, key fingerprint ${fingerprint.replace(/[+/]/g, '\\$&')}`)),
    );
    expect(existsSync(join(dir, 'kh-refuse'))).toBe(false);
  });

  it('records an approved key (hashed) and trusts it next time without asking', async () => {
    const fingerprint = await hostFingerprint();
    const asked: string[] = [];
    const first = await connectSsh(sshd.alias, options('kh-approve', { approveHostKey: async (host, fp) => (asked.push(`${host} ${fp}`), true) }));
    clients.push(first.client);
    expect(asked).toEqual([`127.0.0.1:${sshd.port} ${fingerprint}`]);
    const recorded = await readFile(join(dir, 'kh-approve'), 'utf8');
    expect(recorded).toMatch(/^\|1\|/);
    expect(execFileSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', join(dir, 'kh-approve')], { encoding: 'utf8' })).toContain('found: line 1');
    const second = await connectSsh(sshd.alias, options('kh-approve'));
    clients.push(second.client);
  });

  it('refuses a changed host key naming the file and line, even with an approver', async () => {
    const other = join(dir, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const [type, base64] = (await readFile(`${other}.pub`, 'utf8')).trim().split(' ');
    await writeFile(join(dir, 'kh-changed'), `# recorded earlier\n[127.0.0.1]:${sshd.port} ${type} ${base64}\n`);
    await expect(connectSsh(sshd.alias, options('kh-changed', { approveHostKey: async () => true }))).rejects.toSatisfy(
      refusedWith(new RegExp(`differs from the one recorded in ${join(dir, 'kh-changed')} line 2 .*remove line 2`)),
    );
  });

  it('a user key the host does not accept is refused with the keys tried', async () => {
    const wrong = join(dir, 'wrong_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrong]);
    const config = join(dir, 'ssh_config_wrong');
    await writeFile(config, (await readFile(sshd.sshConfigPath, 'utf8')).replace(sshd.userKeyPath, wrong));
    const previousAgent = process.env.SSH_AUTH_SOCK;
    delete process.env.SSH_AUTH_SOCK;
    try {
      await expect(connectSsh(sshd.alias, options('kh-approve', { sshConfigPath: config }))).rejects.toSatisfy(
        refusedWith(/refused every credential offered \(.*wrong_key/),
      );
    } finally {
      if (previousAgent) process.env.SSH_AUTH_SOCK = previousAgent;
    }
  });

  it('deploys the agent over SFTP once and serves the AgentApi over SSH', async () => {
    const { client, host } = await connectSsh(sshd.alias, options('kh-approve'));
    clients.push(client);
    const remoteHome = join(dir, 'remote-home');
    const remote = await openRemoteAgent(client, host, { bundlePath: agentBundle, homeDir: remoteHome });
    expect(remote.via).toBe('streamlocal'); // sshd relays straight to the agent's socket
    expect(remote.nodeVersion).toMatch(/^v\d+/);
    expect(existsSync(join(homedir(), remote.agentPath))).toBe(true);
    const info = await remote.agent.info();
    expect(info.homeDir).toBe(remoteHome);
    const path = join(dir, 'remote.img');
    await remote.agent.volumeCreate(path, 4 * 2 ** 20, 2 ** 20);
    const data = Buffer.alloc(2 ** 20, 0x5a);
    await remote.agent.writeRegion(path, 3, data);
    const read: Uint8Array[] = [];
    for await (const region of remote.agent.readRegions(path, 3, 1)) read.push(region.data);
    expect(Buffer.from(read[0]!).equals(data)).toBe(true);
    expect((await remote.agent.volumeInfo(path)).realizedRegions).toBe(1);
    await remote.agent.dispose();
    // The second open finds the same bundle in place (same path, no second upload needed).
    const again = await openRemoteAgent(client, host, { bundlePath: agentBundle, homeDir: remoteHome });
    expect(again.agentPath).toBe(remote.agentPath);
    expect((await again.agent.info()).pid).toBe(info.pid); // the same detached agent serves the home
    await again.agent.dispose();
    process.kill(info.pid, 'SIGTERM');
  });

  it('where sshd forbids forwarding to sockets, the agent is reached through dial-stdio', async () => {
    const strict = await startSshd(join(dir, 'sshd-nostreamlocal'), { extraConfig: ['AllowStreamLocalForwarding no'] });
    const remoteHome = join(dir, 'remote-home-strict');
    try {
      const { client, host } = await connectSsh(strict.alias, {
        tidemarkKnownHosts: join(dir, 'kh-strict'),
        userKnownHosts: join(dir, 'none'),
        sshConfigPath: strict.sshConfigPath,
        approveHostKey: async () => true,
        agentSocket: '',
      });
      clients.push(client);
      const remote = await openRemoteAgent(client, host, { bundlePath: agentBundle, homeDir: remoteHome });
      expect(remote.via).toBe('dial-stdio');
      expect((await remote.agent.info()).homeDir).toBe(remoteHome);
      await remote.agent.dispose();
    } finally {
      await stopAgentOf(remoteHome);
      await strict.stop();
    }
  });

  it('a host without Node gets the clear error naming what to install', async () => {
    const noNode = await startSshd(join(dir, 'sshd-nonode'), { extraConfig: ['SetEnv PATH=/nonexistent'] });
    try {
      const { client, host } = await connectSsh(noNode.alias, {
        tidemarkKnownHosts: join(dir, 'kh-nonode'),
        userKnownHosts: join(dir, 'none'),
        sshConfigPath: noNode.sshConfigPath,
        approveHostKey: async () => true,
      });
      clients.push(client);
      await expect(openRemoteAgent(client, host, { bundlePath: agentBundle })).rejects.toSatisfy(
        (e: unknown) =>
          e instanceof TidemarkError && e.code === 'UNSUPPORTED' && /has no Node\.js .*install Node\.js 20 or newer on 127\.0\.0\.1/.test(e.oneLine()),
      );
    } finally {
      await noNode.stop();
    }
  });

  it('the CLI reaches a remote VOLREF: refused without approval off a terminal, then created and read with --accept-new-host-key', async () => {
    const userHome = join(dir, 'user-home');
    await mkdir(join(userHome, '.ssh'), { recursive: true });
    await writeFile(join(userHome, '.ssh', 'config'), await readFile(sshd.sshConfigPath, 'utf8'));
    const env = { HOME: userHome, SSH_AUTH_SOCK: '' };
    const tidemarkHome = join(dir, 'cli-home');
    const volref = `${sshd.alias}:${join(dir, 'cli-remote.img')}`;
    const refused = tidemark(['--home', tidemarkHome, 'volume', 'create', volref, '--size', '4MiB'], env);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^tidemark: unknown host 127\.0\.0\.1:\d+, key fingerprint SHA256:\S+ — compare the fingerprint/);
    const created = tidemark(['--home', tidemarkHome, '--accept-new-host-key', '--json', 'volume', 'create', volref, '--size', '4MiB'], env);
    expect(created.status, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ regions: 4 });
    const info = tidemark(['--home', tidemarkHome, '--json', 'volume', 'info', `ssh://${sshd.alias}${join(dir, 'cli-remote.img')}`], env);
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ regions: 4, realizedSource: 'tracked' });
    expect(await readFile(join(tidemarkHome, 'known_hosts'), 'utf8')).toMatch(/^\|1\|/);
  });
});
