// The console's hosts (HostManager) against a real OpenSSH sshd: adding a host parks a host-key
// question until a person approves the full fingerprint; a passphrase is asked, re-asked when
// wrong, remembered only through a keychain cipher and never in plain text; a changed host key
// fails with no question to click through; removing forgets the host and its secrets.
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from '../../src-engine/events';
import { HostManager, SecretVault, type HostView, type SecretCipher } from '../../src-engine/hosts';
import { sha256Fingerprint } from '../../src-engine/ssh';
import { stopAgentOf } from '../helpers/agents';
import { agentBundle } from '../helpers/cli';
import { startSshd, type TestSshd } from '../helpers/sshd';

let sshd: TestSshd;
let dir: string;
const managers: HostManager[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-hosts-'));
  sshd = await startSshd(join(dir, 'sshd'), { extraConfig: [`SetEnv TIDEMARK_HOME=${join(dir, 'remote-home')}`] });
});

afterEach(async () => {
  for (const manager of managers.splice(0)) await manager.dispose();
});

afterAll(async () => {
  await stopAgentOf(join(dir, 'remote-home'));
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A real AES-256-GCM cipher standing in for Electron's safeStorage (which needs a desktop session). */
function testKeychain(): SecretCipher {
  const key = randomBytes(32);
  return {
    backend: 'test keychain',
    encrypt: (plain) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const sealed = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), sealed]);
    },
    decrypt: (sealed) => {
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
      decipher.setAuthTag(sealed.subarray(12, 28));
      return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString('utf8');
    },
  };
}

function manager(home: string, options: { sshConfigPath?: string; cipher?: SecretCipher | null; events?: EventLog } = {}): HostManager {
  const made = new HostManager(home, {
    bundlePath: agentBundle,
    vault: new SecretVault(home, options.cipher ?? null),
    events: options.events,
    sshConfigPath: options.sshConfigPath ?? sshd.sshConfigPath,
    userKnownHosts: join(dir, 'no-user-known-hosts'),
    agentSocket: '',
  });
  managers.push(made);
  return made;
}

async function until(hosts: HostManager, name: string, done: (view: HostView) => boolean): Promise<HostView> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const view = (await hosts.list()).find((h) => h.name === name)!;
    if (done(view)) return view;
    if (Date.now() > deadline) throw new Error(`host ${name} stuck: ${JSON.stringify(view)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function hostFingerprint(): Promise<string> {
  const [, base64] = (await readFile(sshd.hostKeyPub, 'utf8')).trim().split(' ');
  return sha256Fingerprint(Buffer.from(base64!, 'base64'));
}

describe('hosts', () => {
  it('offers ~/.ssh/config aliases, asks to approve the full fingerprint, then shows Node, agent and free space', async () => {
    const home = join(dir, 'home-approve');
    const events = new EventLog();
    const hosts = manager(home, { events });
    expect(await hosts.candidates()).toEqual([sshd.alias]);
    await hosts.add(sshd.alias);
    expect(await hosts.candidates()).toEqual([]);
    const asking = await until(hosts, sshd.alias, (h) => h.question !== null);
    expect(asking.question).toMatchObject({ kind: 'host-key', hostPort: `127.0.0.1:${sshd.port}`, fingerprint: await hostFingerprint() });
    expect(asking.state).toBe('connecting');
    await hosts.answer(sshd.alias, asking.question!.id, { approve: true });
    const connected = await until(hosts, sshd.alias, (h) => h.state === 'connected' && h.homeFreeBytes !== null);
    expect(connected.nodeVersion).toMatch(/^v\d+\./);
    expect(connected.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(connected.homeDir).toBe(join(dir, 'remote-home'));
    expect(connected.homeFreeBytes).toBeGreaterThan(0);
    expect(events.list(0).map((e) => e.kind)).toEqual(expect.arrayContaining(['host.added', 'host.connected']));
    expect(await readFile(join(home, 'known_hosts'), 'utf8')).toMatch(/^\|1\|/);
    // Persisted: a new manager on the same home lists it and connects without a question.
    const again = manager(home);
    await again.connect(sshd.alias);
    expect((await until(again, sshd.alias, (h) => h.state === 'connected')).question).toBeNull();
  });

  it('a rejected host key leaves the host failed with the fingerprint named, and nothing recorded', async () => {
    const home = join(dir, 'home-reject');
    const hosts = manager(home);
    await hosts.add(sshd.alias);
    const asking = await until(hosts, sshd.alias, (h) => h.question !== null);
    await hosts.answer(sshd.alias, asking.question!.id, { approve: false });
    const failed = await until(hosts, sshd.alias, (h) => h.state === 'failed');
    expect(failed.lastError).toMatchObject({ code: 'PERMISSION', message: expect.stringContaining(await hostFingerprint()) });
    expect(existsSync(join(home, 'known_hosts'))).toBe(false);
  });

  it('a changed host key fails with the file and line, and asks nothing', async () => {
    const home = join(dir, 'home-changed');
    const other = join(dir, 'other_host_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const [type, base64] = (await readFile(`${other}.pub`, 'utf8')).trim().split(' ');
    await (await import('node:fs/promises')).mkdir(home, { recursive: true });
    await writeFile(join(home, 'known_hosts'), `[127.0.0.1]:${sshd.port} ${type} ${base64}\n`);
    const hosts = manager(home);
    await hosts.add(sshd.alias);
    const failed = await until(hosts, sshd.alias, (h) => h.state === 'failed' || h.question !== null);
    expect(failed.question).toBeNull();
    expect(failed.lastError?.message).toMatch(new RegExp(`recorded in ${join(home, 'known_hosts')} line 1`));
  });

  it('asks for a passphrase, again when wrong, remembers it only through the keychain cipher, and forgets it with the host', async () => {
    const home = join(dir, 'home-passphrase');
    const key = join(dir, 'encrypted_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'sea salt', '-f', key]);
    const authorized = join(sshd.dir, 'authorized_keys');
    await writeFile(authorized, `${await readFile(authorized, 'utf8')}${await readFile(`${key}.pub`, 'utf8')}`);
    const config = join(dir, 'ssh_config_encrypted');
    await writeFile(config, (await readFile(sshd.sshConfigPath, 'utf8')).replace(sshd.userKeyPath, key));
    await (await import('node:fs/promises')).mkdir(home, { recursive: true });
    await writeFile(join(home, 'known_hosts'), await readFile(join(dir, 'home-approve', 'known_hosts')));
    const keychain = testKeychain();
    const hosts = manager(home, { sshConfigPath: config, cipher: keychain });
    await hosts.add(sshd.alias);
    const first = await until(hosts, sshd.alias, (h) => h.question !== null);
    expect(first.question).toMatchObject({ kind: 'passphrase', keyFile: key, echo: false, keychain: 'test keychain' });
    await hosts.answer(sshd.alias, first.question!.id, { secret: 'wrong', remember: true });
    const second = await until(hosts, sshd.alias, (h) => h.question !== null && h.question.id !== first.question!.id);
    expect(second.question).toMatchObject({ kind: 'passphrase', prompt: expect.stringMatching(/^Wrong passphrase/) });
    await hosts.answer(sshd.alias, second.question!.id, { secret: 'sea salt', remember: true });
    await until(hosts, sshd.alias, (h) => h.state === 'connected');
    const secrets = await readdir(join(home, 'secrets'));
    expect(secrets).toHaveLength(1);
    const sealed = await readFile(join(home, 'secrets', secrets[0]!));
    expect(sealed.includes(Buffer.from('sea salt'))).toBe(false);
    expect(keychain.decrypt(sealed)).toBe('sea salt');
    // A fresh process with the same keychain connects without asking.
    const later = manager(home, { sshConfigPath: config, cipher: keychain });
    await later.connect(sshd.alias);
    expect((await until(later, sshd.alias, (h) => h.state === 'connected' || h.question !== null)).question).toBeNull();
    await later.remove(sshd.alias);
    expect(await readdir(join(home, 'secrets'))).toEqual([]);
    expect(await later.list()).toEqual([]);
  });

  it('without a keychain a passphrase stays in memory only', async () => {
    const home = join(dir, 'home-memory');
    await (await import('node:fs/promises')).mkdir(home, { recursive: true });
    await writeFile(join(home, 'known_hosts'), await readFile(join(dir, 'home-approve', 'known_hosts')));
    const hosts = manager(home, { sshConfigPath: join(dir, 'ssh_config_encrypted') });
    await hosts.add(sshd.alias);
    const asking = await until(hosts, sshd.alias, (h) => h.question !== null);
    expect(asking.question).toMatchObject({ kind: 'passphrase', keychain: null });
    await hosts.answer(sshd.alias, asking.question!.id, { secret: 'sea salt', remember: true });
    await until(hosts, sshd.alias, (h) => h.state === 'connected');
    expect(existsSync(join(home, 'secrets'))).toBe(false);
  });

  it('refuses a bad host name and a duplicate with clear errors', async () => {
    const config = join(dir, 'ssh_config_closed');
    await writeFile(config, 'Host closed-port\n  HostName 127.0.0.1\n  Port 1\n');
    const hosts = manager(join(dir, 'home-bad'), { sshConfigPath: config });
    await expect(hosts.add('not a host')).rejects.toThrow(/is not a host name or address/);
    await hosts.add('closed-port');
    await expect(hosts.add('closed-port')).rejects.toThrow(/already added/);
  });

  it('removing a host while it waits for an answer returns at once and asks nothing more', async () => {
    const home = join(dir, 'home-remove-asking');
    const hosts = manager(home);
    await hosts.add(sshd.alias);
    await until(hosts, sshd.alias, (h) => h.question !== null);
    const started = Date.now();
    await hosts.remove(sshd.alias);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await hosts.list()).toEqual([]);
  });

  it('a wrong password is forgotten, never replayed: the next connect asks again', async () => {
    const passwordSshd = await startSshd(join(dir, 'sshd-password'), {
      password: 'right horse',
      extraConfig: ['PasswordAuthentication yes', 'PermitRootLogin yes', 'PubkeyAuthentication no'],
    });
    try {
      const hosts = manager(join(dir, 'home-password'), { sshConfigPath: passwordSshd.sshConfigPath });
      await hosts.add(passwordSshd.alias);
      const key = await until(hosts, passwordSshd.alias, (h) => h.question?.kind === 'host-key');
      await hosts.answer(passwordSshd.alias, key.question!.id, { approve: true });
      const first = await until(hosts, passwordSshd.alias, (h) => h.question?.kind === 'password');
      await hosts.answer(passwordSshd.alias, first.question!.id, { secret: 'wrong horse', remember: true });
      const failed = await until(hosts, passwordSshd.alias, (h) => h.state === 'failed');
      expect(failed.lastError?.message).toMatch(/refused every credential offered \(password\)/);
      await hosts.connect(passwordSshd.alias);
      const again = await until(hosts, passwordSshd.alias, (h) => h.question?.kind === 'password' || h.state === 'failed');
      expect(again.question?.kind).toBe('password'); // asked again, not replayed
      await hosts.answer(passwordSshd.alias, again.question!.id, { secret: 'right horse' });
      await until(hosts, passwordSshd.alias, (h) => h.state === 'connected');
    } finally {
      await passwordSshd.stop();
    }
  });
});
