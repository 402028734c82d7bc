// Direct shipping over a per-pair key (docs/replication.md "Direct shipping"), with two real
// OpenSSH sshd "hosts" on loopback, each with its own Tidemark home and authorized_keys, and
// the built CLI as the orchestrator: `pair create` of a remote→remote pair provisions the
// key; `replicate --once` then ships host to host (the orchestrator's RPC carries control
// only); the key cannot do anything but ship that pair (checked with OpenSSH's own client
// and with the agent RPC); a revoked key falls back to relaying; `pair delete` removes it.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalAgent, peerAlias } from '../../src-engine/agent';
import { PairOperations } from '../../src-engine/engine';
import { EventLog } from '../../src-engine/events';
import { HostManager, SecretVault } from '../../src-engine/hosts';
import { TidemarkError } from '../../src-engine/errors';
import { PairStore, shipContinuous } from '../../src-engine/replication';
import { RemoteHost, sshPeerLinks } from '../../src-engine/ssh';
import { testRemoteHostOptions } from '../helpers/agents';
import { agentBundle, tidemark } from '../helpers/cli';
import { sameBytes, writeRandomRegions } from '../helpers/pairs';
import { startSshd, type TestSshd } from '../helpers/sshd';
import { requireTool } from '../helpers/tools';

const regionBytes = 64 * 1024;
const regionCount = 512;
const sizeBytes = regionBytes * regionCount;
const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

let dir: string;
let hostA: TestSshd;
let hostB: TestSshd;
let env: NodeJS.ProcessEnv;
let writer: RemoteHost;
const primary = () => join(dir, 'data', 'primary.img');
const secondary = () => join(dir, 'data', 'secondary.img');

function cli(args: string[]) {
  const result = tidemark(args, env);
  return { ...result, json: () => JSON.parse(result.stdout) as Record<string, unknown> };
}

/** A loopback port that was free a moment ago: connections to it are refused. */
async function portNobodyListensOn(): Promise<number> {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
  const port = (closed.address() as { port: number }).port;
  await new Promise((resolve) => closed.close(resolve));
  return port;
}

async function until(done: () => boolean, what: string | (() => string), timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const isPermission = (e: unknown) => e instanceof TidemarkError && e.code === 'PERMISSION';

beforeAll(async () => {
  requireTool('ssh');
  dir = await mkdtemp(join(tmpdir(), 'tm-direct-'));
  hostA = await startSshd(join(dir, 'host-a'));
  hostB = await startSshd(join(dir, 'host-b'));
  const userHome = join(dir, 'user');
  await mkdir(join(userHome, '.ssh'), { recursive: true });
  const config = (alias: string, host: TestSshd) =>
    `Host ${alias}\n  HostName 127.0.0.1\n  Port ${host.port}\n  User root\n  IdentityFile ${host.userKeyPath}\n`;
  await writeFile(join(userHome, '.ssh', 'config'), config('host-a', hostA) + config('host-b', hostB));
  env = { HOME: userHome, SSH_AUTH_SOCK: '', TIDEMARK_HOME: join(dir, 'orchestrator') };
  await mkdir(join(dir, 'data'));
  await writeFile(primary(), Buffer.alloc(0));
  await writeFile(secondary(), Buffer.alloc(0));
  execFileSync('truncate', ['-s', String(sizeBytes), primary(), secondary()]);
  console.log(`[direct-shipping] seed ${seed}`);
}, 60_000);

afterAll(async () => {
  await writer?.dispose();
  for (const host of [hostA, hostB]) await host?.stop(); // stops the agent of its default home too
  await rm(dir, { recursive: true, force: true });
});

describe('direct shipping over a per-pair key', () => {
  let pairId = '';

  it('pair create provisions the key: restricted in the secondary host’s authorized_keys, private half on the primary’s host', async () => {
    const created = cli([
      '--json',
      '--accept-new-host-key',
      'pair',
      'create',
      'd',
      '--primary',
      `host-a:${primary()}`,
      '--secondary',
      `host-b:${secondary()}`,
      '--region-size',
      '64KiB',
    ]);
    expect(created.status, created.stderr).toBe(0);
    expect(created.json()).toMatchObject({ shipPath: 'direct' });
    pairId = created.json().pairId as string;
    const line = (await readFile(hostB.authorizedKeysPath, 'utf8')).split('\n').find((l) => l.endsWith(`tidemark-pair:${pairId}`));
    expect(line).toMatch(/^restrict,command="[^"]* 'agent' 'dial-stdio' '--pair' '[0-9a-f-]{36}'" ssh-ed25519 \S+ tidemark-pair:/);
    const keyPath = join(hostA.defaultHome, 'peers', pairId, 'id_ed25519');
    expect(execFileSync('stat', ['-c', '%a', keyPath], { encoding: 'utf8' }).trim()).toBe('600');
    // The user's own key is still there, untouched.
    expect(await readFile(hostB.authorizedKeysPath, 'utf8')).toContain((await readFile(`${hostB.userKeyPath}.pub`, 'utf8')).trim());
    const shown = cli(['--json', 'pair', 'show', 'd']).json();
    expect(shown).toMatchObject({ shipPath: 'direct', peer: { configured: true, target: `root@127.0.0.1:${hostB.port}` } });
  }, 60_000);

  it('replicate ships host to host: identical volumes, and the orchestrator’s wire carries control only', async () => {
    expect(cli(['sync', 'd']).status).toBe(0);
    writer = new RemoteHost('host-a', {
      ...testRemoteHostOptions(hostA, join(dir, 'writer'), hostA.defaultHome),
      sshConfigPath: join(env.HOME!, '.ssh', 'config'),
    });
    const written = new Set<number>();
    for (let i = 0; i < 96; i++) written.add((i * 37 + (seed % 11)) % regionCount);
    await writeRandomRegions(writer, primary(), regionBytes, written, seed);
    const replicated = cli(['--json', 'replicate', 'd', '--once']);
    expect(replicated.status, replicated.stderr).toBe(0);
    const summary = replicated.json();
    expect(summary).toMatchObject({
      path: 'direct',
      directFallbacks: 0,
      regionsTransferred: written.size,
      bytesTransferred: written.size * regionBytes,
      inSync: true,
    });
    // Relayed, every byte would cross the orchestrator's wire twice (in from A, out to B).
    expect(summary.wireBytes as number).toBeLessThan((written.size * regionBytes) / 8);
    expect(await sameBytes(primary(), secondary(), sizeBytes)).toBe(true);
    expect(cli(['verify', 'd']).status).toBe(0);
  }, 120_000);

  it('the key opens nothing but the pair’s shipping: no shell, no forwarding, no other volume, no other verb', async () => {
    const keyPath = join(hostA.defaultHome, 'peers', pairId, 'id_ed25519');
    const knownHosts = join(hostA.defaultHome, 'peers', pairId, 'known_hosts');
    const ssh = (...args: string[]) =>
      spawnSync(
        'ssh',
        ['-i', keyPath, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'BatchMode=yes', '-p', String(hostB.port), ...args],
        {
          encoding: 'utf8',
          input: '',
          timeout: 20_000,
          env: { PATH: process.env.PATH, HOME: env.HOME, SSH_AUTH_SOCK: '' },
        },
      );
    // Whatever command is asked for, sshd runs the forced one: the agent RPC's hello, not a shell.
    const shell = ssh('root@127.0.0.1', 'echo shell-ran-$((6*7))');
    expect(shell.status).not.toBe(255); // logged in (255: ssh could not)
    expect(shell.stdout).not.toContain('shell-ran-42');
    // `restrict`: no port forwarding.
    // (a remote forward is asked of sshd at once; `restrict` refuses it)
    const forward = ssh('-o', 'ExitOnForwardFailure=yes', '-N', '-R', '127.0.0.1:0:127.0.0.1:22', 'root@127.0.0.1');
    expect(forward.status).toBe(255);
    expect(forward.stderr).toMatch(/prohibited|forwarding failed/i);

    const link = sshPeerLinks(
      { dir: '', keyPath, knownHostsPath: knownHosts, sshConfigPath: join(hostA.defaultHome, 'peers', pairId, 'ssh_config') },
      {
        host: '127.0.0.1',
        port: hostB.port,
        user: 'root',
        secondaryPath: secondary(),
        hostKeys: [],
      },
    );
    try {
      const peer = link.agent;
      expect(peerAlias).toBe('tidemark-peer');
      const data = Buffer.alloc(regionBytes, 7);
      const other = join(dir, 'data', 'other.img');
      await writeFile(other, Buffer.alloc(sizeBytes));
      const auth = { pairId, generation: 1 };
      await expect(peer.writeRegion(other, 0, data, { auth })).rejects.toSatisfy(isPermission);
      await expect(peer.volumeState(other)).rejects.toSatisfy(isPermission);
      await expect(peer.snapshotList(secondary())).rejects.toSatisfy(isPermission);
      await expect(peer.pairLeave(secondary(), pairId)).rejects.toSatisfy(isPermission);
      await expect(peer.writeRegion(secondary(), 0, data)).rejects.toSatisfy(isPermission);
      await expect(peer.volumeCreate(join(dir, 'data', 'new.img'), sizeBytes, regionBytes)).rejects.toSatisfy(isPermission);
      await expect(peer.volumeState(secondary())).rejects.toSatisfy(isPermission); // not a shipping verb
      await expect(peer.writeRegion(secondary(), 0, data, { auth: { pairId, generation: 7 } })).rejects.toSatisfy(isPermission); // another generation
      await peer.flush(secondary()); // what shipping needs passes
    } finally {
      await link.close();
    }
    expect(cli(['verify', 'd']).status).toBe(0); // nothing the refused calls asked for happened
  }, 60_000);

  it('an address the primary’s host can no longer reach falls back to relaying instead of retrying', async () => {
    // The route from host-a to host-b is lost: the pair's key re-targeted at a port nobody listens on.
    const closedPort = await portNobodyListensOn();
    const hostKey = (await readFile(hostB.hostKeyPub, 'utf8')).split(' ').slice(0, 2).join(' ');
    await writer.peerKeyCreate(pairId, { host: '127.0.0.1', port: closedPort, user: 'root', secondaryPath: secondary(), hostKeys: [hostKey] });
    await writeRandomRegions(writer, primary(), regionBytes, [7, 8, 9], seed + 2);
    const replicated = cli(['--json', 'replicate', 'd', '--once']);
    expect(replicated.status, replicated.stderr).toBe(0);
    expect(replicated.json()).toMatchObject({ path: 'relayed', directFallbacks: 1, inSync: true, regionsTransferred: 3 });
    expect(replicated.stderr).toMatch(/direct shipping of d failed .*relaying through this process, direct again in .* — fix it with `tidemark pair link d`/);
    expect(await sameBytes(primary(), secondary(), sizeBytes)).toBe(true);
    // Linked again at the address the orchestrator sees, shipping is direct again.
    expect(cli(['pair', 'link', 'd']).status).toBe(0);
    await writeRandomRegions(writer, primary(), regionBytes, [10], seed + 3);
    expect(cli(['--json', 'replicate', 'd', '--once']).json()).toMatchObject({ path: 'direct', directFallbacks: 0, inSync: true });
  }, 120_000);

  it('a shipper that fell back to relaying goes direct again once the path works, warning once while it does not', async () => {
    const closedPort = await portNobodyListensOn();
    const hostKey = (await readFile(hostB.hostKeyPub, 'utf8')).split(' ').slice(0, 2).join(' ');
    const target = { host: '127.0.0.1', user: 'root', secondaryPath: secondary(), hostKeys: [hostKey] };
    await writer.peerKeyCreate(pairId, { ...target, port: closedPort });
    const secondaryHost = new RemoteHost('host-b', {
      ...testRemoteHostOptions(hostB, join(dir, 'secondary-client'), hostB.defaultHome),
      sshConfigPath: join(env.HOME!, '.ssh', 'config'),
    });
    const pair = await new PairStore(env.TIDEMARK_HOME!).require('d');
    const endpoints = {
      primary: { volref: pair.primary.volref, agent: writer, path: primary(), where: 'host-a', sshTarget: () => writer.sshTarget() },
      secondary: { volref: pair.secondary.volref, agent: secondaryHost, path: secondary(), where: 'host-b', sshTarget: () => secondaryHost.sshTarget() },
    };
    const paths: string[] = [];
    const warnings: string[] = [];
    const controller = new AbortController();
    const shipping = shipContinuous({
      pair,
      endpoints,
      once: false,
      signal: controller.signal,
      directRetryMs: 200,
      onProgress: (progress) => paths.push(`${progress.path}:${progress.state}`),
      onWarning: (message) => warnings.push(message),
    });
    let failure: unknown;
    shipping.catch((error: unknown) => (failure = error));
    try {
      await writeRandomRegions(writer, primary(), regionBytes, [20, 21], seed + 4);
      await until(
        () => paths.includes('relayed:in-sync'),
        () => `relayed and in sync (${paths.slice(-3).join(' ')}; ${warnings.join(' ')}; ${String(failure)})`,
      );
      // Broken for a few retries (200, 400, 800 ms): each batch falls back again, one warning in all.
      for (const [i, r] of [30, 31, 32].entries()) {
        await writeRandomRegions(writer, primary(), regionBytes, [r], seed + 5 + i);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await until(() => paths.at(-1) === 'relayed:in-sync', 'in sync again, relayed');
      await writer.peerKeyCreate(pairId, { ...target, port: hostB.port });
      // The retry is due by time (the delay doubles with each failed retry), not after so many batches:
      // keep writing until a batch goes direct, for up to 20 s.
      const shippedBefore = paths.length;
      const deadlineMs = Date.now() + 20_000;
      for (let i = 0; !paths.slice(shippedBefore).some((p) => p.startsWith('direct:')); i++) {
        await writeRandomRegions(writer, primary(), regionBytes, [40 + (i % 20)], seed + 10 + i);
        await until(() => paths.at(-1)?.endsWith(':in-sync') === true, 'in sync after a write');
        if (Date.now() > deadlineMs) throw new Error(`shipping never went direct again in 20 s (${i + 1} batches): ${paths.slice(-5).join(' ')}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      controller.abort();
      await expect(shipping).rejects.toThrow(/stopped/);
      await secondaryHost.dispose();
    }
    console.log(
      `[direct-shipping] paths at the end: ${paths
        .filter((p, i) => p !== paths[i - 1])
        .slice(-8)
        .join(' ')}`,
    );
    expect(warnings, warnings.join('\n')).toHaveLength(1);
    expect(warnings[0]).toMatch(/direct shipping of d failed .*relaying through this process, direct again in 0s — fix it/);
    expect(await sameBytes(primary(), secondary(), sizeBytes)).toBe(true);
  }, 120_000);

  it('a revoked key falls back to relaying, converging all the same; pair delete removes the key from both hosts', async () => {
    const text = await readFile(hostB.authorizedKeysPath, 'utf8');
    await writeFile(hostB.authorizedKeysPath, text.replace(/^.*tidemark-pair:.*\n/m, ''));
    // An established SSH session outlives its key (as in OpenSSH): drop the primary's link so it must log in again.
    expect(hostB.dropConnections()).toBeGreaterThan(0);
    await writeRandomRegions(writer, primary(), regionBytes, [1, 2, 3, 500], seed + 1);
    const replicated = cli(['--json', 'replicate', 'd', '--once']);
    expect(replicated.status, replicated.stderr).toBe(0);
    expect(replicated.json()).toMatchObject({ path: 'relayed', directFallbacks: 1, inSync: true });
    expect(replicated.stderr).toMatch(/direct shipping of d failed .*relaying/);
    expect(await sameBytes(primary(), secondary(), sizeBytes)).toBe(true);

    const relinked = cli(['--json', 'pair', 'link', 'd']);
    expect(relinked.status, relinked.stderr).toBe(0);
    expect(await readFile(hostB.authorizedKeysPath, 'utf8')).toContain(`tidemark-pair:${pairId}`);

    expect(cli(['pair', 'delete', 'd']).status).toBe(0);
    expect(await readFile(hostB.authorizedKeysPath, 'utf8')).not.toContain(`tidemark-pair:${pairId}`);
    await expect(readFile(join(hostA.defaultHome, 'peers', pairId, 'id_ed25519'))).rejects.toThrow(/ENOENT/);
  }, 120_000);

  it('the console links a remote→remote pair its wizard creates, as pair create does, and unlinks it on delete', async () => {
    const consoleHome = join(dir, 'console');
    const events = new EventLog();
    const hosts = new HostManager(consoleHome, {
      bundlePath: agentBundle,
      vault: new SecretVault(consoleHome, null),
      events,
      sshConfigPath: join(env.HOME!, '.ssh', 'config'),
      userKnownHosts: join(dir, 'no-user-known-hosts'),
      agentSocket: '',
    });
    const local = new LocalAgent(consoleHome, { purpose: 'test', peerLinks: sshPeerLinks });
    try {
      for (const name of ['host-a', 'host-b']) {
        await hosts.add(name);
        for (const deadline = Date.now() + 30_000; ;) {
          const view = (await hosts.list()).find((h) => h.name === name)!;
          if (view.question) await hosts.answer(name, view.question.id, { approve: true });
          if (view.state === 'connected') break;
          if (Date.now() > deadline) throw new Error(`host ${name} did not connect: ${JSON.stringify(view)}`);
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      }
      const [p2, s2] = [join(dir, 'data', 'console-primary.img'), join(dir, 'data', 'console-secondary.img')];
      execFileSync('truncate', ['-s', String(sizeBytes), p2, s2]);
      const ops = new PairOperations(new PairStore(consoleHome), local, hosts, events);
      const record = await ops.create({ name: 'c', primary: `host-a:${p2}`, secondary: `host-b:${s2}`, regionBytes });
      const keyLine = async () => (await readFile(hostB.authorizedKeysPath, 'utf8')).split('\n').find((l) => l.endsWith(`tidemark-pair:${record.pairId}`));
      expect(await keyLine()).toMatch(/^restrict,command="[^"]* 'agent' 'dial-stdio' '--pair' '[0-9a-f-]{36}'" ssh-ed25519 /);
      expect(events.list().find((e) => e.kind === 'pair.linked')).toMatchObject({
        severity: 'info',
        pair: 'c',
        message: expect.stringMatching(/ships directly/),
      });
      await ops.delete('c');
      expect(await keyLine()).toBeUndefined();
    } finally {
      await hosts.dispose();
      await local.dispose();
    }
  }, 120_000);
});
