// The agent as a real process: `agent serve` owns <home>/agent.sock (0600), a second agent
// on the home is refused, a dead agent's socket is taken over, SIGTERM is clean, and
// `agent dial-stdio` bridges stdio to the agent, starting a detached one when none runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcAgent, connectAgentSocket } from '../../src-engine/agent';
import { RpcPeer } from '../../src-engine/transport';
import { cliBundle, tidemark } from '../helpers/cli';
import { until } from '../helpers/engine';
import { tempDir } from '../helpers/tmp';

const children: ChildProcess[] = [];
const pids: number[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function startAgent(homeDir: string): ChildProcess {
  const child = spawn(process.execPath, [cliBundle, '--home', homeDir, 'agent', 'serve'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  return child;
}

async function rpcOver(duplex: Duplex): Promise<RpcAgent> {
  const peer = new RpcPeer(duplex, { role: 'client', keepaliveMs: 0 });
  await peer.handshake();
  return new RpcAgent(peer);
}

async function home(): Promise<string> {
  return join(await tempDir('tm-'), 'h'); // short: Unix socket paths are limited
}

describe('agent daemon', () => {
  it('serves on a 0600 socket; a second agent on the home is refused with the reason', async () => {
    const homeDir = await home();
    startAgent(homeDir);
    const socketPath = join(homeDir, 'agent.sock');
    await until(() => existsSync(socketPath), 10_000, 'the agent socket');
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    const agent = await rpcOver(await connectAgentSocket(homeDir));
    expect((await agent.info()).homeDir).toBe(homeDir);
    await agent.dispose();
    const second = tidemark(['--home', homeDir, 'agent', 'serve']);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(/^tidemark: an agent already serves Tidemark home .* — use that agent/m);
  });

  it('takes over the socket of an agent that died, and stops cleanly on SIGTERM', async () => {
    const homeDir = await home();
    const first = startAgent(homeDir);
    const socketPath = join(homeDir, 'agent.sock');
    await until(() => existsSync(socketPath), 10_000, 'the first agent socket');
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    expect(existsSync(socketPath)).toBe(true); // stale
    const second = startAgent(homeDir);
    let stderr = '';
    second.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await until(() => stderr.includes('agent: serving'), 10_000, 'the second agent');
    const agent = await rpcOver(await connectAgentSocket(homeDir));
    expect((await agent.info()).pid).toBe(second.pid);
    await agent.dispose();
    const exited = new Promise<number | null>((resolve) => second.once('exit', (code) => resolve(code)));
    second.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/agent: stopped/);
  });

  it('dial-stdio starts a detached agent when none runs and bridges the RPC', async () => {
    const homeDir = await home();
    const dial = spawn(process.execPath, [cliBundle, '--home', homeDir, 'agent', 'dial-stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(dial);
    const agent = await rpcOver(Duplex.from({ readable: dial.stdout!, writable: dial.stdin! }));
    const info = await agent.info();
    pids.push(info.pid);
    expect(info.pid).not.toBe(dial.pid); // the detached agent, not the bridge
    const path = join(homeDir, 'v.img');
    await agent.volumeCreate(path, 1024 * 1024, 65536);
    expect((await agent.volumeInfo(path)).regions).toBe(16);
    const exited = new Promise<number | null>((resolve) => dial.once('exit', (code) => resolve(code)));
    dial.stdin!.end();
    expect(await exited).toBe(0);
    // The agent keeps running for the next connection.
    const again = await rpcOver(await connectAgentSocket(homeDir));
    expect((await again.info()).pid).toBe(info.pid);
    await again.dispose();
  });

  it('CLI volume commands use the running agent, with paths resolved before they cross', async () => {
    const homeDir = await home();
    startAgent(homeDir);
    await until(() => existsSync(join(homeDir, 'agent.sock')), 10_000, 'the agent socket');
    const dir = await tempDir('tm-');
    const created = tidemark(['--home', homeDir, '--json', 'volume', 'create', join(dir, 'w.img'), '--size', '4MiB']);
    expect(created.status, created.stderr).toBe(0);
    const agent = await rpcOver(await connectAgentSocket(homeDir));
    await agent.writeRegion(join(dir, 'w.img'), 2, new Uint8Array(2 ** 20).fill(9));
    await agent.dispose();
    const info = tidemark(['--home', homeDir, '--json', 'volume', 'info', join(dir, 'w.img')]);
    expect(JSON.parse(info.stdout)).toMatchObject({ regions: 4, realizedRegions: 1, realizedSource: 'tracked' });
  });

  it('refuses a malformed VOLREF as a usage error', async () => {
    const bad = tidemark(['--home', await home(), 'volume', 'info', 'site-b:relative']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/must be absolute/);
  });
});
