// Seed images over SSH through the built CLI, against a real OpenSSH sshd on loopback
// (docs/sync.md "Tests"): a local primary exported, verified and imported into its `host:/path`
// secondary; a remote primary exported from its host and imported into a local secondary. After
// each import a few primary regions change through the primary's agent, then `sync` picks
// realized and sends exactly those regions, the files are identical and `verify` exits 0.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi } from '../../src-engine/agent';
import { RemoteHost } from '../../src-engine/ssh';
import { testRemoteHostOptions } from '../helpers/agents';
import { tidemark } from '../helpers/cli';
import { sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { startSshd, type TestSshd } from '../helpers/sshd';

const regionBytes = 256 * 1024;
const regionCount = 32;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261205);

let sshd: TestSshd;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-image-ssh-'));
  sshd = await startSshd(join(dir, 'sshd'));
  const userHome = join(dir, 'user-home');
  await mkdir(join(userHome, '.ssh'), { recursive: true });
  await writeFile(join(userHome, '.ssh', 'config'), await readFile(sshd.sshConfigPath, 'utf8'));
  env = { HOME: userHome, SSH_AUTH_SOCK: '', TIDEMARK_HOME: join(dir, 'cli-home') };
});

afterAll(async () => {
  await sshd?.stop(); // stops the remote agent (the host's default home) too
  await rm(dir, { recursive: true, force: true });
});

function ok(args: string[]): Record<string, unknown> {
  const result = tidemark(['--accept-new-host-key', '--json', ...args], env);
  expect(result.status, `tidemark ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

type Side = 'local' | 'remote';

/** The agent the CLI uses for `side`: this machine's CLI home, or the host's default home over SSH. */
function agentOf(side: Side): AgentApi {
  if (side === 'local') return new LocalAgent(env.TIDEMARK_HOME!);
  return new RemoteHost(sshd.alias, { ...testRemoteHostOptions(sshd, join(dir, 'remote-host'), sshd.defaultHome), homeDir: null });
}

/** Runs `work` with the side's agent, then closes it (the CLI opens a local home only when nobody holds it). */
async function withAgent(side: Side, work: (agent: AgentApi) => Promise<void>): Promise<void> {
  const agent = agentOf(side);
  try {
    await work(agent);
  } finally {
    await agent.dispose();
  }
}

const volrefOf = (side: Side, path: string) => (side === 'local' ? path : `${sshd.alias}:${path}`);

const cases: [Side, Side][] = [
  ['local', 'remote'],
  ['remote', 'local'],
];

describe('seed images over SSH (CLI)', () => {
  for (const [index, [from, to]] of cases.entries()) {
    it(`${from} primary → ${to} secondary: export, verify, import, change 3 regions, sync (realized), verify`, async () => {
      const seed = baseSeed + index;
      console.log(`[image-ssh] ${from} → ${to} seed ${seed}`);
      const random = seededRandom(seed);
      const name = `${from}-to-${to}`;
      const [primary, secondary, image] = [join(dir, `${name}-p.img`), join(dir, `${name}-s.img`), join(dir, `${name}-media`)];
      const stored = Array.from({ length: regionCount }, (_, r) => r).filter(() => random() < 0.5);
      await withAgent(from, async (agent) => {
        await agent.volumeCreate(primary, sizeBytes, regionBytes);
        await writeRandomRegions(agent, primary, regionBytes, stored, seed);
      });
      await withAgent(to, (agent) => agent.volumeCreate(secondary, sizeBytes, regionBytes).then(() => undefined));
      ok(['pair', 'create', name, '--primary', volrefOf(from, primary), '--secondary', volrefOf(to, secondary)]);

      const exported = ok(['image', 'export', name, image, '--split', '1MiB']);
      expect(exported).toMatchObject({ regions: regionCount, storedRegions: stored.length, bytesTransferred: stored.length * regionBytes });
      expect(ok(['image', 'verify', image])).toMatchObject({ ok: true, problems: [] });
      const imported = ok(['image', 'import', image, volrefOf(to, secondary)]);
      expect(imported).toMatchObject({ imageId: exported.imageId, pair: { name }, regionsTransferred: stored.length });
      expect(await sameBytes(primary, secondary, sizeBytes)).toBe(true);

      const changed = new Set<number>();
      while (changed.size < 3) changed.add(Math.floor(random() * regionCount));
      await withAgent(from, (agent) => writeRandomRegions(agent, primary, regionBytes, changed, seed + 1));
      const synced = ok(['sync', name]);
      expect(synced).toMatchObject({ method: 'realized', regionsTransferred: changed.size, bytesTransferred: changed.size * regionBytes, pendingRegions: 0 });
      expect(await sameBytes(primary, secondary, sizeBytes)).toBe(true);
      const verified = tidemark(['verify', name], env);
      expect(verified.status, verified.stderr).toBe(0);
    }, 120_000);
  }
});
