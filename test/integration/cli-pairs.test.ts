// `tidemark pair create | list | show | delete`, `sync`, `verify` through the built CLI, as a
// field engineer runs them: plain files (adopted on pair create), --json documents with the
// contract's fields, exit codes, one-line errors, a sync killed with SIGKILL resuming, and the
// progress bar on a terminal.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { syncWindowRegions } from '../../src-engine/replication';
import { cliBundle, tidemark } from '../helpers/cli';
import { randomRegion } from '../helpers/pairs';
import { tempDir } from '../helpers/tmp';
import { requireTool } from '../helpers/tools';

const MiB = 2 ** 20;

function oneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^tidemark: .+ — .+/);
  expect(lines[0]).toMatch(pattern);
}

async function fieldSetup(primaryBytes: number, secondaryBytes = primaryBytes, seed = 4242) {
  const dir = await tempDir();
  const env = { TIDEMARK_HOME: join(dir, 'home') };
  const primary = join(dir, 'site-a.img');
  const secondary = join(dir, 'site-b.img');
  await writeFile(primary, randomRegion(seed, primaryBytes));
  await writeFile(secondary, '');
  await truncate(secondary, secondaryBytes);
  return { dir, env, primary, secondary };
}

describe('tidemark pair and sync', () => {
  it('create, list, show, sync --json, verify, delete: the whole field workflow on plain files', async () => {
    const { env, primary, secondary } = await fieldSetup(16 * MiB);
    const created = tidemark(['--json', 'pair', 'create', 'site', '--primary', primary, '--secondary', secondary, '--region-size', '256KiB'], env);
    expect(created.status, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'site', regionBytes: 256 * 1024, generation: 1, mode: 'continuous' });
    expect(tidemark(['pair', 'list'], env).stdout).toMatch(/^site\tcontinuous\t.*site-a\.img → .*site-b\.img\tnever synced$/m);
    expect(JSON.parse(tidemark(['--json', 'pair', 'show', 'site'], env).stdout)).toMatchObject({ state: 'new', regions: 64 });

    const before = tidemark(['verify', 'site'], env);
    expect(before.status).toBe(1);
    expect(before.stdout).toMatch(/pair site: 64 of 64 regions differ, first: 0, 1, 2/);

    const synced = tidemark(['--json', 'sync', 'site'], env);
    expect(synced.status, synced.stderr).toBe(0);
    const summary = JSON.parse(synced.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ pair: 'site', method: 'tardy', regions: 64, regionsTransferred: 64, bytesTransferred: 16 * MiB, pendingRegions: 0 });
    expect(typeof summary.durationMs).toBe('number');
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);

    const verified = tidemark(['--json', 'verify', 'site'], env);
    expect(verified.status).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ regions: 64, regionsDiffering: 0, regionsTransferred: 0 });
    expect(JSON.parse(tidemark(['--json', 'pair', 'show', 'site'], env).stdout)).toMatchObject({ state: 'in-sync', pendingRegions: 0 });

    // Damage one byte of the secondary outside Tidemark: verify names it, a resync repairs only it.
    const bytes = await readFile(secondary);
    bytes[5 * 256 * 1024 + 7]! ^= 0xff;
    await writeFile(secondary, bytes);
    const damaged = tidemark(['verify', 'site'], env);
    expect(damaged.status).toBe(1);
    expect(damaged.stdout).toMatch(/1 of 64 regions differ, first: 5$/m);
    const repaired = JSON.parse(tidemark(['--json', 'sync', 'site', '--method', 'signature'], env).stdout) as Record<string, unknown>;
    expect(repaired).toMatchObject({ method: 'signature', regionsTransferred: 1, bytesTransferred: 256 * 1024 });
    expect(tidemark(['verify', 'site'], env).status).toBe(0);

    const deleted = tidemark(['pair', 'delete', 'site'], env);
    expect(deleted.status, deleted.stderr).toBe(0);
    expect(deleted.stdout).toMatch(/data is untouched/);
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);
    expect(tidemark(['pair', 'list'], env).stdout).toMatch(/no pairs/);
    // The secondary is free again: it can be the secondary of a new pair.
    expect(tidemark(['pair', 'create', 'again', '--primary', primary, '--secondary', secondary, '--region-size', '256KiB'], env).status).toBe(0);
  });

  it('refuses bad pairs with one-line errors: smaller secondary, same volume, taken secondary, existing name, bad method', async () => {
    const { env, primary, secondary, dir } = await fieldSetup(4 * MiB, 2 * MiB);
    const small = tidemark(['pair', 'create', 'p', '--primary', primary, '--secondary', secondary], env);
    expect(small.status).toBe(1);
    oneLineError(small.stderr, /secondary .*site-b\.img \(2097152 bytes\) is smaller than the primary .*site-a\.img \(4194304 bytes\)/);
    const same = tidemark(['pair', 'create', 'p', '--primary', primary, '--secondary', primary], env);
    expect(same.status).toBe(2);
    oneLineError(same.stderr, /the primary and the secondary are the same volume/);

    const third = join(dir, 'third.img');
    await writeFile(third, '');
    await truncate(third, 4 * MiB);
    expect(tidemark(['pair', 'create', 'p', '--primary', primary, '--secondary', third], env).status).toBe(0);
    const taken = tidemark(['pair', 'create', 'q', '--primary', secondary, '--secondary', third], env);
    expect(taken.status).toBe(1);
    oneLineError(taken.stderr, /already the secondary of pair "p"/);
    const exists = tidemark(['pair', 'create', 'p', '--primary', primary, '--secondary', third], env);
    expect(exists.status).toBe(1);
    oneLineError(exists.stderr, /pair "p" already exists/);
    const badMethod = tidemark(['sync', 'p', '--method', 'magic'], env);
    expect(badMethod.status).toBe(2);
    oneLineError(badMethod.stderr, /unknown sync method "magic"/);
    const badRate = tidemark(['sync', 'p', '--limit-rate', 'fast'], env);
    expect(badRate.status).toBe(2);
    const missing = tidemark(['sync', 'nope'], env);
    expect(missing.status).toBe(1);
    oneLineError(missing.stderr, /no pair named "nope"/);
  });

  it('a sync killed with SIGKILL resumes from its cursor: identical, and at most W regions sent again', async () => {
    const regionBytes = 256 * 1024;
    const { env, primary, secondary, dir } = await fieldSetup(96 * MiB);
    expect(tidemark(['pair', 'create', 'k', '--primary', primary, '--secondary', secondary, '--region-size', '256KiB'], env).status).toBe(0);
    const cursorPath = join(dir, 'home', 'pairs', 'k', 'sync.json');
    const child = spawn(process.execPath, [cliBundle, 'sync', 'k', '--limit-rate', '24MiB/s'], { env: { PATH: process.env.PATH, ...env }, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Kill once the cursor has recorded progress (a commit happened), well before the end.
    let committed = 0;
    for (let i = 0; i < 400 && committed === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (existsSync(cursorPath)) committed = (JSON.parse(await readFile(cursorPath, 'utf8')) as { body: { nextRegion: number } }).body.nextRegion;
    }
    child.kill('SIGKILL');
    await exited;
    expect(committed).toBeGreaterThan(0);
    const shown = JSON.parse(tidemark(['--json', 'pair', 'show', 'k'], env).stdout) as { state: string; syncInProgress: { nextRegion: number } };
    expect(shown.state).toBe('interrupted');
    const resumedAt = shown.syncInProgress.nextRegion;
    expect(resumedAt).toBeGreaterThanOrEqual(committed);

    const resumed = tidemark(['--json', 'sync', 'k'], env);
    expect(resumed.status, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout) as { resumed: boolean; regionsTransferred: number; regions: number };
    expect(summary.resumed).toBe(true);
    expect(summary.regionsTransferred).toBeLessThanOrEqual(summary.regions - resumedAt + syncWindowRegions(regionBytes));
    expect(summary.regionsTransferred).toBeGreaterThanOrEqual(summary.regions - resumedAt);
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);
  });

  it('sync on a terminal draws its bar to a "finishing" line with no count beyond its total', async () => {
    requireTool('script');
    const { env, primary, secondary } = await fieldSetup(8 * MiB);
    expect(tidemark(['pair', 'create', 't', '--primary', primary, '--secondary', secondary, '--region-size', '256KiB'], env).status).toBe(0);
    // script(1) gives the CLI a real pseudo-terminal, so stderr.isTTY holds and the bar is drawn.
    const command = [process.execPath, cliBundle, 'sync', 't'].map((a) => `'${a}'`).join(' ');
    const run = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 60_000 });
    expect(run.status, run.stdout).toBe(0);
    const drawn = run.stdout.split(/[\r\n]+/).filter((l) => l.startsWith('sync t '));
    expect(drawn.length).toBeGreaterThan(0);
    expect(drawn.at(-1)).toMatch(/^sync t tardy r\d+ finishing \[#{24}\] 100%, sent 8 MiB/);
    for (const line of drawn) {
      const [, done, total] = /(\d+)\/(\d+) regions/.exec(line) ?? [];
      if (done !== undefined) expect(Number(done), line).toBeLessThanOrEqual(Number(total));
    }
    expect(run.stdout).toContain('synced t (tardy): 32 of 32 regions sent');
  });

  it('replicate --once of a periodic pair draws its cycle on a terminal', async () => {
    requireTool('script');
    const { env, primary, secondary } = await fieldSetup(8 * MiB);
    const created = tidemark(['pair', 'create', 't', '--primary', primary, '--secondary', secondary, '--region-size', '256KiB', '--mode', 'periodic'], env);
    expect(created.status).toBe(0);
    const command = [process.execPath, cliBundle, 'replicate', 't', '--once'].map((a) => `'${a}'`).join(' ');
    const run = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 60_000 });
    expect(run.status, run.stdout).toBe(0);
    const drawn = run.stdout.split(/[\r\n]+/).filter((l) => l.startsWith('replicate t cycle '));
    expect(drawn.length, run.stdout).toBeGreaterThan(0);
    expect(drawn.at(-1)).toMatch(/^replicate t cycle \d+ done \[#{24}\] (\d+)\/\1 regions, sent /);
  });
});
