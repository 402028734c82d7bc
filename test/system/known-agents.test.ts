// The fast way in (src-engine/ssh/known-agents.ts, docs/hosts.md "Connecting") against a real
// OpenSSH sshd: the first connection takes the full way (node check, bundle, `agent ensure`) and
// records the agent's socket; the next goes straight to it. A killed agent, a corrupted cache
// file and a different agent bundle each fall back to the full way — the command still works —
// and the cache is rewritten.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteHost, knownAgentsFile } from '../../src-engine/ssh';
import { agentInfoOf, testRemoteHostOptions } from '../helpers/agents';
import { agentBundle } from '../helpers/cli';
import { until } from '../helpers/engine';
import { startSshd, type TestSshd } from '../helpers/sshd';

let dir: string;
let sshd: TestSshd;
const cachePath = () => join(dir, 'known-agents.json');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-known-agents-'));
  sshd = await startSshd(join(dir, 'sshd'));
}, 60_000);

afterAll(async () => {
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** One connection's agent info and whether it came the fast way. */
async function connectOnce(bundlePath = agentBundle): Promise<{ pid: number; knownSocket: boolean }> {
  const host = new RemoteHost(sshd.alias, {
    ...testRemoteHostOptions(sshd, dir, sshd.defaultHome),
    bundlePath,
    knownAgents: knownAgentsFile(cachePath(), bundlePath),
  });
  try {
    const info = await host.info();
    return { pid: info.pid, knownSocket: host.status.knownSocket };
  } finally {
    await host.dispose();
  }
}

describe('known agents: straight to the socket an earlier connection learnt', () => {
  it('records the socket on the full way, then goes straight to it', async () => {
    const first = await connectOnce();
    expect(first.knownSocket).toBe(false);
    const cached = JSON.parse(await readFile(cachePath(), 'utf8')) as { body: { entries: Record<string, { socketPath: string }> } };
    const entries = Object.values(cached.body.entries);
    expect(entries).toHaveLength(1);
    expect(entries[0]!.socketPath).toBe(join(sshd.defaultHome, 'agent.sock'));
    const second = await connectOnce();
    expect(second).toEqual({ pid: first.pid, knownSocket: true });
  }, 60_000);

  it('a killed agent: the known socket does not answer, the full way starts a new agent', async () => {
    const before = await agentInfoOf(sshd.defaultHome);
    process.kill(before!.pid, 'SIGKILL');
    await until(async () => (await agentInfoOf(sshd.defaultHome).catch(() => undefined)) === undefined, 10_000, 'the agent gone');
    const after = await connectOnce();
    expect(after.knownSocket).toBe(false);
    expect(after.pid).not.toBe(before!.pid);
    expect((await connectOnce()).knownSocket).toBe(true);
  }, 60_000);

  it('a corrupted cache file is ignored and rewritten; another agent bundle takes the full way', async () => {
    await writeFile(cachePath(), '{ not json');
    expect((await connectOnce()).knownSocket).toBe(false);
    expect((await connectOnce()).knownSocket).toBe(true);
    // A different bundle (an upgrade): what the cache learnt was for the old one.
    const other = join(dir, 'other-agent.cjs');
    await copyFile(agentBundle, other);
    await writeFile(other, `${await readFile(other, 'utf8')}\n// another build\n`);
    expect((await connectOnce(other)).knownSocket).toBe(false);
    expect((await connectOnce(other)).knownSocket).toBe(true);
  }, 60_000);
});
