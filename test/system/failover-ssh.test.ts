// Failover with the primary's agent killed, and easy failback, across two real OpenSSH sshd
// "hosts" (docs/failover.md), continuous and periodic, driven by the built CLI:
//  1. a remote→remote pair host-a → host-b, synced; writes W1 replicated; writes W2 left unshipped;
//  2. the primary's site is lost: its agent process is SIGKILLed (no clean close: the MOOS or
//     change maps on disk are all that is left) and host-a becomes unreachable for the
//     orchestrator (its ssh config points at a closed port);
//  3. `failover --force`; writes W3 on the new primary over SSH;
//  4. host-a is back (its agent starts again, recovering from the kill); `failback --dry-run`
//     reports exactly |W2 ∪ W3| regions, and `failback` copies exactly |W2 ∪ W3| × region size
//     bytes — W2 and W3 are the test's own write log, computed independently of the engine;
//  5. both files identical, `verify` exits 0, and the old primary is the locked secondary.
// `--predict 0` keeps a continuous primary's MOOS exactly its unshipped regions, so the map is
// the write log's (with prediction it would be a superset by design: seed 003).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteHost } from '../../src-engine/ssh';
import { agentInfoOf, testRemoteHostOptions } from '../helpers/agents';
import { until } from '../helpers/engine';
import { tidemark } from '../helpers/cli';
import { sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { startSshd, type TestSshd } from '../helpers/sshd';
import { requireTool } from '../helpers/tools';

const regionBytes = 64 * 1024;
const regionCount = 128;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

let dir: string;
let hostA: TestSshd;
let hostB: TestSshd;
let env: NodeJS.ProcessEnv;
let sshConfig: string;
let closedPort: number;

function cli(args: string[]) {
  const result = tidemark(args, env);
  return { ...result, json: () => JSON.parse(result.stdout) as Record<string, unknown> };
}

function ok(args: string[]): Record<string, unknown> {
  const result = cli(['--json', ...args]);
  expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.json();
}

const hostEntry = (alias: string, port: number, keyPath: string) =>
  `Host ${alias}\n  HostName 127.0.0.1\n  Port ${port}\n  User root\n  IdentityFile ${keyPath}\n`;

/** host-a as the orchestrator reaches it: up, or lost (a closed port — connection refused). */
async function setHostA(up: boolean): Promise<void> {
  await writeFile(sshConfig, hostEntry('host-a', up ? hostA.port : closedPort, hostA.userKeyPath) + hostEntry('host-b', hostB.port, hostB.userKeyPath));
}

async function portNobodyListensOn(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function remoteHost(alias: 'host-a' | 'host-b', host: TestSshd, name: string): RemoteHost {
  return new RemoteHost(alias, { ...testRemoteHostOptions(host, join(dir, name), host.defaultHome), sshConfigPath: sshConfig });
}

/** `count` distinct regions drawn from `random`, sorted. */
function regionsFrom(random: () => number, count: number): number[] {
  const set = new Set<number>();
  while (set.size < count) set.add(Math.floor(random() * regionCount));
  return [...set].sort((a, b) => a - b);
}

beforeAll(async () => {
  requireTool('ssh');
  dir = await mkdtemp(join(tmpdir(), 'tm-failover-ssh-'));
  hostA = await startSshd(join(dir, 'host-a'));
  hostB = await startSshd(join(dir, 'host-b'));
  const userHome = join(dir, 'user');
  await mkdir(join(userHome, '.ssh'), { recursive: true });
  sshConfig = join(userHome, '.ssh', 'config');
  closedPort = await portNobodyListensOn();
  await setHostA(true);
  env = { HOME: userHome, SSH_AUTH_SOCK: '', TIDEMARK_HOME: join(dir, 'orchestrator') };
  await mkdir(join(dir, 'data'));
}, 60_000);

afterAll(async () => {
  for (const host of [hostA, hostB]) await host?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('failover with the primary’s agent killed, then failback, over SSH', () => {
  for (const [i, mode] of (['continuous', 'periodic'] as const).entries()) {
    it(`${mode}: failback copies exactly the regions unshipped at the kill ∪ written on the new primary`, async () => {
      const seed = baseSeed + i;
      const random = seededRandom(seed);
      console.log(`[failover-ssh] ${mode} seed ${seed} (TIDEMARK_TEST_SEED=${baseSeed})`);
      const name = `f-${mode}`;
      const [a, b] = [join(dir, 'data', `${mode}-a.img`), join(dir, 'data', `${mode}-b.img`)];
      await writeFile(a, Buffer.alloc(0));
      await writeFile(b, Buffer.alloc(0));
      execFileSync('truncate', ['-s', String(sizeBytes), a, b]);
      await setHostA(true);
      ok([
        '--accept-new-host-key',
        'pair',
        'create',
        name,
        '--primary',
        `host-a:${a}`,
        '--secondary',
        `host-b:${b}`,
        '--region-size',
        '64KiB',
        '--mode',
        mode,
        '--interval',
        '1h',
        '--predict',
        '0',
      ]);
      ok(['sync', name]);

      const writerA = remoteHost('host-a', hostA, `writer-a-${mode}`);
      const w1 = regionsFrom(random, 20);
      await writeRandomRegions(writerA, a, regionBytes, w1, seed + 1);
      expect(ok(['replicate', name, '--once'])).toMatchObject({ regionsTransferred: w1.length });
      const w2 = regionsFrom(random, 12); // acknowledged on the primary, never shipped
      await writeRandomRegions(writerA, a, regionBytes, w2, seed + 2);
      await writerA.dispose();

      // The site is lost: the agent dies without closing anything, and the host drops off the network.
      const agent = await agentInfoOf(hostA.defaultHome);
      expect(agent, 'the agent on host-a runs').toBeDefined();
      process.kill(agent!.pid, 'SIGKILL');
      await until(async () => (await agentInfoOf(hostA.defaultHome).catch(() => undefined)) === undefined, 10_000, 'the killed agent gone');
      await setHostA(false);

      const refused = cli(['failover', name]);
      expect(refused.status).toBe(2);
      expect(refused.stderr).toMatch(/is unreachable/);
      expect(ok(['failover', name, '--force'])).toMatchObject({ oldPrimaryReachable: false, newPrimary: `ssh://host-b${b}`, generation: 2 });

      const writerB = remoteHost('host-b', hostB, `writer-b-${mode}`);
      const w3 = regionsFrom(random, 15);
      await writeRandomRegions(writerB, b, regionBytes, w3, seed + 3);
      await writerB.dispose();
      const failback = cli(['failback', name]);
      expect(failback.status).not.toBe(0); // the old primary is still unreachable
      expect(failback.stderr).toMatch(/old primary .* is unreachable/);

      await setHostA(true); // back: its agent starts again and recovers from the kill
      const expected = new Set([...w2, ...w3]).size;
      const dry = ok(['failback', name, '--dry-run']);
      expect(dry).toMatchObject({ dryRun: true, resyncRegions: expected, resyncBytes: expected * regionBytes, splitBrain: null });
      const back = ok(['failback', name]);
      expect(back).toMatchObject({ dryRun: false, resyncRegions: expected, regionsTransferred: expected, bytesTransferred: expected * regionBytes });

      expect(await sameBytes(a, b, sizeBytes)).toBe(true);
      expect(cli(['verify', name]).status).toBe(0);
      const shown = ok(['pair', 'show', name]) as {
        record: { primary: { volref: string }; failover: unknown };
        secondary: { member: { role: string; generation: number } };
      };
      expect(shown.record.primary.volref).toBe(`ssh://host-b${b}`);
      expect(shown.record.failover).toBeNull();
      expect(shown.secondary.member).toMatchObject({ role: 'secondary', generation: 2 });
      ok(['pair', 'delete', name]);
    }, 180_000);
  }
});
