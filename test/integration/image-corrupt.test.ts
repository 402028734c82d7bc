// Damaged and hostile images (docs/image-format.md "Import"; docs/sync.md "Tests" 3): each is
// refused by `tidemark image import` (the built CLI) with exit 1 and one line naming the file,
// before anything is written — the target's bytes, realization map, member record and import
// marker unchanged — and `image verify` lists a problem naming the same file. Last, the pristine
// image imports, so the harness can tell success from refusal.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalAgent } from '../../src-engine/agent';
import { exportImage, verifyImage } from '../../src-engine/image';
import { PairStore, createPair } from '../../src-engine/replication';
import { signBytes } from '../../src-engine/signature';
import { tidemark } from '../helpers/cli';
import { copyImage, flipByte, forgeManifest, targetFingerprint } from '../helpers/images';
import { randomRegion, resolverFor, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';

const regionBytes = 64 * 1024;
const regionCount = 256; // 16 MiB
const sizeBytes = regionCount * regionBytes;
const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261202);

let root: string;
let home: string;
let pristine: string;
let primaryPath: string;
let secondaryPath: string;
let before: Awaited<ReturnType<typeof targetFingerprint>>;

async function withAgent<T>(work: (agent: LocalAgent) => Promise<T>): Promise<T> {
  const agent = new LocalAgent(home);
  try {
    return await work(agent);
  } finally {
    await agent.dispose();
  }
}

beforeAll(async () => {
  console.log(`[image-corrupt] seed ${seed}`);
  root = await mkdtemp(join(tmpdir(), 'tidemark-image-corrupt-'));
  home = join(root, 'home');
  pristine = join(root, 'pristine');
  primaryPath = join(root, 'primary.img');
  secondaryPath = join(root, 'secondary.img');
  const random = seededRandom(seed);
  const dataRegions = Array.from({ length: regionCount }, (_, r) => r).filter(() => random() < 0.5);
  await withAgent(async (agent) => {
    await agent.volumeCreate(primaryPath, sizeBytes, regionBytes);
    await agent.volumeCreate(secondaryPath, sizeBytes, regionBytes);
    await writeRandomRegions(agent, primaryPath, regionBytes, dataRegions, seed);
    await writeRandomRegions(agent, secondaryPath, regionBytes, [1, 2, 3, 100, 200], seed + 1); // the target holds data of its own
    await createPair(new PairStore(home), resolverFor(agent), { name: 'p', primary: primaryPath, secondary: secondaryPath });
    const exported = await exportImage({ source: 'p', dir: pristine, resolver: resolverFor(agent), pairs: new PairStore(home), splitBytes: 1024 * 1024 });
    expect(exported.files).toBeGreaterThanOrEqual(6);
    before = await targetFingerprint(agent, secondaryPath);
  });
  expect(before.members).toHaveLength(1);
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

type Json = Record<string, unknown>;
const files = (body: Json) => body.files as Json[];
const volume = (body: Json) => body.volume as Json;

interface Case {
  readonly name: string;
  /** What the error and a verify problem must name. */
  readonly names: string;
  readonly damage: (dir: string) => Promise<void>;
}

const cases: readonly Case[] = [
  { name: 'a byte flipped in a data file', names: 'data-000003.bin', damage: (dir) => flipByte(join(dir, 'data-000003.bin'), 5 * regionBytes + 17) },
  { name: 'a byte flipped at the start of a data file', names: 'data-000005.bin', damage: (dir) => flipByte(join(dir, 'data-000005.bin'), 3) },
  { name: 'a byte flipped in manifest.json', names: 'manifest.json', damage: (dir) => flipByte(join(dir, 'manifest.json'), 200) },
  { name: 'a byte flipped in index.bin', names: 'index.bin', damage: (dir) => flipByte(join(dir, 'index.bin'), 40) },
  { name: 'index.bin truncated', names: 'index.bin', damage: (dir) => truncate(join(dir, 'index.bin'), 100) },
  { name: 'a data file truncated', names: 'data-000002.bin', damage: (dir) => truncate(join(dir, 'data-000002.bin'), 1024 * 1024 - 1000) },
  { name: 'a data file renamed', names: 'data-000001.bin', damage: (dir) => rename(join(dir, 'data-000001.bin'), join(dir, 'data-000001.bin.bak')) },
  {
    name: 'a data file replaced by a symlink (to an intact copy)',
    names: 'data-000004.bin',
    damage: async (dir) => {
      await rename(join(dir, 'data-000004.bin'), join(root, `outside-${dir.slice(-2)}.bin`));
      await symlink(join(root, `outside-${dir.slice(-2)}.bin`), join(dir, 'data-000004.bin'));
    },
  },
  {
    name: 'a data file replaced by a FIFO',
    names: 'data-000000.bin',
    damage: async (dir) => {
      await rm(join(dir, 'data-000000.bin'));
      execFileSync('mkfifo', [join(dir, 'data-000000.bin')]);
    },
  },
  {
    name: 'two data files swapped',
    names: 'data-000001.bin',
    damage: async (dir) => {
      await rename(join(dir, 'data-000001.bin'), join(dir, 'swap'));
      await rename(join(dir, 'data-000002.bin'), join(dir, 'data-000001.bin'));
      await rename(join(dir, 'swap'), join(dir, 'data-000002.bin'));
    },
  },
  {
    name: '"../x" as a file name in the manifest (with a consistent checksum)',
    names: 'files[0].name',
    damage: async (dir) => {
      await copyImage(join(dir, 'data-000000.bin'), join(dir, '..', 'x')); // a valid file there, so only the name refuses it
      await forgeManifest(dir, (body) => void (files(body)[0]!.name = '../x'));
    },
  },
  {
    name: 'an absolute file name in the manifest',
    names: 'files[1].name',
    damage: (dir) => forgeManifest(dir, (body) => void (files(body)[1]!.name = join(dir, 'data-000001.bin'))),
  },
  { name: 'an absurd volume size', names: 'volume.sizeBytes', damage: (dir) => forgeManifest(dir, (body) => void (volume(body).sizeBytes = 2 ** 53 - 1)) },
  { name: 'an absurd region count', names: 'volume.regionCount', damage: (dir) => forgeManifest(dir, (body) => void (volume(body).regionCount = 2 ** 31)) },
  {
    name: 'an absurd file count',
    names: 'manifest.json (files)',
    damage: (dir) =>
      forgeManifest(dir, (body) => {
        Object.assign(volume(body), { sizeBytes: 2 ** 41, regionBytes: 2 ** 20, regionCount: 2 ** 21 });
        Object.assign(body, { storedRegions: 2 ** 21, splitBytes: 2 ** 20, regionsPerFile: 1 });
      }),
  },
  { name: 'an absurdly large manifest', names: 'manifest.json', damage: (dir) => truncate(join(dir, 'manifest.json'), 65 * 1024 * 1024) },
  {
    name: 'a manifest of a newer format version',
    names: 'manifest.json',
    damage: async (dir) => {
      const path = join(dir, 'manifest.json');
      const envelope = JSON.parse(await readFile(path, 'utf8')) as Json;
      await writeFile(path, JSON.stringify({ ...envelope, version: 2 }));
    },
  },
];

describe('damaged and hostile images are refused before anything is written', () => {
  for (const [index, c] of cases.entries()) {
    it(c.name, async () => {
      const dir = join(root, `case-${String(index).padStart(2, '0')}`);
      await copyImage(pristine, dir);
      await c.damage(dir);

      const result = tidemark(['--home', home, 'image', 'import', dir, secondaryPath]);
      expect(result.status, result.stderr).toBe(1);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^tidemark: .+ — .+/);
      expect(lines[0]).toContain(c.names);
      expect(result.stdout).toBe('');

      const verified = await verifyImage(dir);
      expect(verified.ok).toBe(false);
      expect(
        verified.problems.some((p) => p.file.includes(c.names) || `${p.file} ${p.detail}`.includes(c.names)),
        JSON.stringify(verified.problems),
      ).toBe(true);

      expect(await withAgent((agent) => targetFingerprint(agent, secondaryPath))).toEqual(before);
    });
  }

  it('a region altered in memory-consistent ways is still caught by its file checksum (index.bin and data agree, manifest does not)', async () => {
    // Rewrite a region in a data file AND its signature in index.bin (index.bin's SHA-256 in the
    // manifest updated too): only the per-file checksum in the manifest still names the file.
    const dir = join(root, 'case-forged-region');
    await copyImage(pristine, dir);
    const data = randomRegion(seed + 9, regionBytes);
    const dataPath = join(dir, 'data-000002.bin');
    const bytes = await readFile(dataPath);
    data.copy(bytes, 0);
    await writeFile(dataPath, bytes);
    const indexPath = join(dir, 'index.bin');
    const index = await readFile(indexPath);
    const signaturesOffset = 32 + 4 * Math.ceil(regionCount / 32);
    Buffer.from(await signBytes('xxh3-128', data)).copy(index, signaturesOffset + 2 * 16 * 16); // ordinal 32: file 2's first region
    await writeFile(indexPath, index);
    await forgeManifest(dir, (body) => void ((body.index as Json).sha256 = createHash('sha256').update(index).digest('hex')));

    const result = tidemark(['--home', home, 'image', 'import', dir, secondaryPath]);
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toContain('data-000002.bin');
    expect(result.stderr).toContain('checksum');
    expect(await withAgent((agent) => targetFingerprint(agent, secondaryPath))).toEqual(before);
  });

  it('verify names an altered data file by its checksum even when index.bin is damaged too', async () => {
    const dir = join(root, 'case-two-problems');
    await copyImage(pristine, dir);
    await flipByte(join(dir, 'index.bin'), 40);
    await flipByte(join(dir, 'data-000002.bin'), 1000);
    const verified = await verifyImage(dir);
    expect(verified.problems.map((p) => [p.file, p.kind])).toEqual([
      ['index.bin', 'checksum'],
      ['data-000002.bin', 'altered'],
    ]);
    expect(verified.problems[1]!.detail).toMatch(/its checksum [0-9a-f]{32} does not match the manifest's/);
  });

  it('the pristine image imports (the refusals above are not the harness failing)', async () => {
    const result = tidemark(['--home', home, 'image', 'import', pristine, secondaryPath]);
    expect(result.status, result.stderr).toBe(0);
    expect(await sameBytes(primaryPath, secondaryPath, sizeBytes)).toBe(true);
    const after = await withAgent((agent) => targetFingerprint(agent, secondaryPath));
    expect(after.sha256).not.toBe(before.sha256);
    expect(after.importing).toBeNull();
  });
});
