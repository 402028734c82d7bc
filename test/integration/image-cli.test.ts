// `tidemark image export | verify | import` through the built CLI bundle (run `npm run build`
// first): a pair's primary exported, verified (clean, then damaged), imported into the secondary,
// then `sync` and `verify` of the pair; a plain volume exported and imported into a new path;
// an image of another pair, or of a generation before a role change, refused with the target
// untouched; `pair show` naming the reference and an unfinished import; a directory that cannot be created (under /proc) refused at once; usage errors exit
// 2 with one line, failures 1.
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalAgent } from '../../src-engine/agent';
import { importImage } from '../../src-engine/image';
import { PairStore } from '../../src-engine/replication';
import { cliBundle, tidemark } from '../helpers/cli';
import { copyImage, flipByte } from '../helpers/images';
import { recordingAgent, resolverFor, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { tempDir } from '../helpers/tmp';

const regionBytes = 64 * 1024;
const regionCount = 256;
const sizeBytes = regionCount * regionBytes;
const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261204);

function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tidemark: .+ — .+/);
  return lines[0]!;
}

async function setUp() {
  const dir = await tempDir();
  const home = join(dir, 'home');
  const cli = (...args: string[]) => tidemark(['--home', home, ...args]);
  const primary = join(dir, 'primary.img');
  const secondary = join(dir, 'secondary.img');
  for (const path of [primary, secondary]) expect(cli('volume', 'create', path, '--size', String(sizeBytes), '--region-size', '64KiB').status).toBe(0);
  const agent = new LocalAgent(home); // no agent runs: the CLI opens the home itself once this one is gone
  try {
    await writeRandomRegions(
      agent,
      primary,
      regionBytes,
      Array.from({ length: regionCount / 2 }, (_, i) => i * 2 + (i % 3 === 0 ? 1 : 0)),
      seed,
    );
  } finally {
    await agent.dispose();
  }
  return { dir, home, cli, primary, secondary };
}

describe('tidemark image (CLI)', () => {
  it('export a pair, verify, import into the secondary, then sync and verify the pair', async () => {
    console.log(`[image-cli] seed ${seed}`);
    const { dir, home, cli, primary, secondary } = await setUp();
    expect(cli('pair', 'create', 'p', '--primary', primary, '--secondary', secondary).status).toBe(0);
    const image = join(dir, 'media', 'p-image');

    const exported = cli('--json', 'image', 'export', 'p', image, '--split', '1MiB');
    expect(exported.status, exported.stderr).toBe(0);
    const summary = JSON.parse(exported.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({
      regions: regionCount,
      storedRegions: regionCount / 2,
      regionsTransferred: regionCount / 2,
      bytesTransferred: (sizeBytes / 2) as number,
      files: 8,
    });
    expect(summary.durationMs).toEqual(expect.any(Number));
    const record = JSON.parse(await readFile(join(home, 'pairs', 'p', 'pair.json'), 'utf8')) as { body: { reference: unknown } };
    expect(record.body.reference).toEqual({
      imageId: summary.imageId,
      manifestSha256: summary.manifestSha256,
      generation: 1,
      pointInTime: summary.pointInTime,
    });

    const verified = cli('image', 'verify', image);
    expect(verified.status, verified.stderr).toBe(0);
    expect(verified.stdout).toContain('OK');
    expect(verified.stdout).toContain(summary.manifestSha256 as string);
    const verifiedJson = JSON.parse(cli('--json', 'image', 'verify', image).stdout) as Record<string, unknown>;
    expect(verifiedJson).toMatchObject({
      ok: true,
      problems: [],
      regions: regionCount,
      regionsTransferred: 0,
      bytesTransferred: 0,
      manifestSha256: summary.manifestSha256,
    });

    const damaged = join(dir, 'damaged');
    await copyImage(image, damaged);
    await flipByte(join(damaged, 'data-000006.bin'), 70_000);
    await writeFile(join(damaged, 'notes.txt'), 'not part of an image');
    const bad = cli('image', 'verify', damaged);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/data-000006\.bin: altered: region \d+ \(at byte 65536 of the file\)/);
    expect(bad.stdout).toMatch(/notes\.txt: extra/);
    const badJson = JSON.parse(cli('--json', 'image', 'verify', damaged).stdout) as { ok: boolean; problems: { file: string; kind: string }[] };
    expect(badJson.ok).toBe(false);
    expect(badJson.problems.map((p) => [p.file, p.kind])).toEqual([
      ['notes.txt', 'extra'],
      ['data-000006.bin', 'altered'],
    ]);

    const imported = cli('--json', 'image', 'import', image, secondary);
    expect(imported.status, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ imageId: summary.imageId, pair: { name: 'p' }, regionsTransferred: regionCount / 2, resumed: false });
    expect(await sameBytes(primary, secondary, sizeBytes)).toBe(true);

    const synced = cli('--json', 'sync', 'p');
    expect(synced.status, synced.stderr).toBe(0);
    expect(JSON.parse(synced.stdout)).toMatchObject({ regionsTransferred: 0, pendingRegions: 0 });
    expect(cli('verify', 'p').status).toBe(0);
  });

  it('a plain volume exports (pair null) and imports into a new path created from the manifest', async () => {
    const { dir, cli, primary } = await setUp();
    const image = join(dir, 'plain-image');
    const exported = cli('--json', 'image', 'export', primary, image, '--split', '4MiB', '--hash', 'sha256');
    expect(exported.status, exported.stderr).toBe(0);
    expect(JSON.parse(exported.stdout)).toMatchObject({ pair: null, hash: 'sha256', files: 2 });
    const copy = join(dir, 'copy.img');
    const imported = cli('image', 'import', image, copy);
    expect(imported.status, imported.stderr).toBe(0);
    expect(imported.stdout).toContain('imported image');
    expect(await sameBytes(primary, copy, sizeBytes)).toBe(true);
    // The copy is now a registered volume of the image's geometry.
    expect(cli('--json', 'volume', 'info', copy).stdout).toContain('"regionBytes": 65536');
  });

  it('pair show names the export reference and an unfinished import on the secondary until the import is finished', async () => {
    const { dir, home, cli, primary, secondary } = await setUp();
    expect(cli('pair', 'create', 'p', '--primary', primary, '--secondary', secondary).status).toBe(0);
    expect(cli('pair', 'show', 'p').stdout).not.toMatch(/reference:|import incomplete/);
    const image = join(dir, 'image');
    const exported = JSON.parse(cli('--json', 'image', 'export', 'p', image, '--split', '1MiB').stdout) as { imageId: string; pointInTime: string };
    // The import cancelled after 40 region writes (as Ctrl-C does): what it wrote is committed, the marker stays.
    const agent = new LocalAgent(home);
    try {
      const controller = new AbortController();
      let writes = 0;
      const target = recordingAgent(agent, { onWrite: () => void (++writes === 40 && controller.abort()) });
      const run = importImage({
        dir: image,
        target: secondary,
        resolver: resolverFor(target),
        pairs: new PairStore(home),
        commitBytes: 8 * regionBytes,
        signal: controller.signal,
      });
      await expect(run).rejects.toThrow(/cancelled/);
    } finally {
      await agent.dispose();
    }
    const refused = cli('sync', 'p');
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/unfinished image import/);

    const shown = JSON.parse(cli('--json', 'pair', 'show', 'p').stdout) as {
      state: string;
      secondary: { importing: { imageId: string; nextRegion: number } | null };
    };
    expect(shown.state).toBe('new');
    const { nextRegion } = shown.secondary.importing!;
    expect(shown.secondary.importing).toMatchObject({ imageId: exported.imageId });
    expect(nextRegion).toBeGreaterThan(0);
    expect(nextRegion).toBeLessThan(regionCount);
    const text = cli('pair', 'show', 'p').stdout;
    expect(text).toContain(`  reference: image ${exported.imageId} of generation 1, point in time ${exported.pointInTime}\n`);
    expect(text).toContain(
      `  import incomplete: image ${exported.imageId}, ${nextRegion} of ${regionCount} regions — run \`tidemark image import DIR ${secondary}\` again with that image's directory to finish\n`,
    );

    expect(cli('image', 'import', image, secondary).status).toBe(0);
    expect(JSON.parse(cli('--json', 'pair', 'show', 'p').stdout)).toMatchObject({ secondary: { importing: null } });
    expect(cli('pair', 'show', 'p').stdout).not.toContain('import incomplete');
  });

  it("refuses an image of another pair: one line naming both pairs, exit 1, the target's bytes unchanged", async () => {
    const { dir, cli, primary, secondary } = await setUp();
    const [otherPrimary, otherSecondary] = [join(dir, 'b-primary.img'), join(dir, 'b-secondary.img')];
    for (const path of [otherPrimary, otherSecondary])
      expect(cli('volume', 'create', path, '--size', String(sizeBytes), '--region-size', '64KiB').status).toBe(0);
    expect(cli('pair', 'create', 'a', '--primary', primary, '--secondary', secondary).status).toBe(0);
    expect(cli('pair', 'create', 'b', '--primary', otherPrimary, '--secondary', otherSecondary).status).toBe(0);
    const image = join(dir, 'a-image');
    expect(cli('image', 'export', 'a', image).status).toBe(0);
    const before = await readFile(otherSecondary);

    const refused = cli('image', 'import', image, otherSecondary);
    expect(refused.status).toBe(1);
    const line = oneLine(refused.stderr);
    expect(line).toContain('is of pair "a"');
    expect(line).toContain('secondary of pair "b"');
    expect((await readFile(otherSecondary)).equals(before)).toBe(true);
  });

  it('refuses an image older than the pair: two migrates later it names both generations, exit 1, bytes unchanged', async () => {
    const { dir, cli, primary, secondary } = await setUp();
    expect(cli('pair', 'create', 'p', '--primary', primary, '--secondary', secondary).status).toBe(0);
    const image = join(dir, 'p-image');
    expect(cli('image', 'export', 'p', image).status).toBe(0);
    expect(cli('sync', 'p').status).toBe(0);
    for (const _ of [1, 2]) {
      const migrated = cli('migrate', 'p');
      expect(migrated.status, migrated.stderr).toBe(0);
    }
    const shown = JSON.parse(cli('--json', 'pair', 'show', 'p').stdout) as { record: { generation: number; secondary: { volref: string } } };
    expect(shown.record.secondary.volref).toBe(secondary);
    const generation = shown.record.generation;
    expect(generation).toBeGreaterThan(1);
    const before = await readFile(secondary);

    const refused = cli('image', 'import', image, secondary);
    expect(refused.status).toBe(1);
    const line = oneLine(refused.stderr);
    expect(line).toContain(`generation 1 of pair "p"`);
    expect(line).toContain(`at generation ${generation}`);
    expect((await readFile(secondary)).equals(before)).toBe(true);
  });

  it('a directory that cannot be created (under /proc) fails at once with one line naming it and the errno, for export and import', async () => {
    const { dir, home, primary } = await setUp();
    // Node 20's recursive mkdir loops forever on ENOENT under /proc, ignoring SIGTERM: SIGKILL after a timeout so a regression fails.
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [cliBundle, '--home', home, ...args], { encoding: 'utf8', input: '', timeout: 10_000, killSignal: 'SIGKILL' });
    const exported = run('image', 'export', primary, '/proc/tidemark-test-x/image');
    expect(exported.signal, 'export hung').toBeNull();
    expect(exported.status).toBe(1);
    expect(oneLine(exported.stderr)).toBe('tidemark: cannot create /proc/tidemark-test-x: ENOENT — choose a directory on writable media');

    const image = join(dir, 'image');
    expect(run('image', 'export', primary, image).status).toBe(0);
    const imported = run('image', 'import', image, '/proc/tidemark-test-x/copy.img');
    expect(imported.signal, 'import hung').toBeNull();
    expect(imported.status).toBe(1);
    expect(oneLine(imported.stderr)).toContain('cannot create /proc/tidemark-test-x: ENOENT');
  });

  it('usage errors exit 2, refusals 1, each one line naming what to do', async () => {
    const { dir, cli, primary } = await setUp();
    expect(cli('image', 'export').status).toBe(2);
    const split = cli('image', 'export', primary, join(dir, 'a'), '--split', '4KiB');
    expect(split.status).toBe(2);
    expect(oneLine(split.stderr)).toContain('--split');
    const hash = cli('image', 'export', primary, join(dir, 'a'), '--hash', 'md5');
    expect(hash.status).toBe(2);
    oneLine(hash.stderr);

    const occupied = join(dir, 'occupied');
    await mkdir(occupied);
    await writeFile(join(occupied, 'something.bin'), 'other files');
    const notEmpty = cli('image', 'export', primary, occupied);
    expect(notEmpty.status).toBe(1);
    expect(oneLine(notEmpty.stderr)).toContain('is not empty');

    const missing = cli('image', 'import', join(dir, 'no-such-image'), join(dir, 'target.img'));
    expect(missing.status).toBe(1);
    expect(oneLine(missing.stderr)).toContain('no-such-image');

    const none = cli('image', 'export', primary, join(dir, 'nothing'), '--abandon');
    expect(none.status).toBe(0);
    expect(none.stdout).toContain('holds no unfinished export');

    const help = cli('image', 'import', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--restart');
  });
});
