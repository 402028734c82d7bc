// A migrate killed in its pause (docs/failover.md "Migrate"), with real processes: `tidemark
// migrate` (the built CLI, agents in its process) is SIGKILLed at two points of the pause —
// after the final copy (both sides secondaries, nothing promoted) and right after the promotion
// (before the record's swap). Each time `pair show` reports the unfinished migrate, and running
// `tidemark migrate` again finishes it: the roles are swapped, every region the old primary had
// unshipped reached the new primary, `verify` exits 0 and the files are identical. The test's
// own writes go through the primary's tracker (an in-process agent on the same home, closed
// before the CLI runs: its MOOS carries them), with `--drain-timeout 0` so all of them are
// copied in the pause.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalAgent } from '../../src-engine/agent';
import { testMigrateStopEnv } from '../../src-engine/replication';
import { cliBundle, tidemark } from '../helpers/cli';
import { randomRegion, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 64 * 1024;
const regionCount = 32;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

/** Runs the CLI until it announces the test stop point, then SIGKILLs it. */
async function migrateKilledAt(point: 'copied' | 'promoted', args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const child = spawn(process.execPath, [cliBundle, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, [testMigrateStopEnv]: point },
  });
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes(`migrate stopped at ${point}`)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`migrate exited (${code}) before ${point}: ${stderr}`)));
  });
  child.kill('SIGKILL');
  await exited;
  expect(child.signalCode).toBe('SIGKILL');
}

interface Shown {
  state: string;
  record: { generation: number; primary: { volref: string } };
  primary: { member: { role: string; generation: number } };
  secondary: { member: { role: string; generation: number } };
  migrateInterrupted: { newPrimary: string } | null;
}

describe('tidemark migrate, killed in its pause', () => {
  for (const [i, point] of (['copied', 'promoted'] as const).entries()) {
    it(`finishes on the next run after a SIGKILL at "${point}"`, async () => {
      const seed = baseSeed + i;
      console.log(`migrate-crash seed ${seed} (TIDEMARK_TEST_SEED=${baseSeed})`);
      const dir = await tempDir();
      const home = join(dir, 'home');
      const env = { TIDEMARK_HOME: home };
      const [a, b] = [join(dir, 'a.img'), join(dir, 'b.img')];
      await writeFile(a, randomRegion(seed, sizeBytes));
      await writeFile(b, Buffer.alloc(sizeBytes));
      const run = (...args: string[]) => tidemark(args, env);
      const ok = (...args: string[]) => {
        const result = run(...args);
        expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(0);
        return result.stdout;
      };
      ok('pair', 'create', 'p', '--primary', a, '--secondary', b, '--region-size', '64KiB');
      ok('sync', 'p');

      // Writes through the primary's tracker, never shipped: the pause must copy exactly these.
      const random = seededRandom(seed);
      const written = [...new Set(Array.from({ length: 9 }, () => Math.floor(random() * regionCount)))].sort((x, y) => x - y);
      const agent = new LocalAgent(home);
      await writeRandomRegions(agent, a, regionBytes, written, seed + 100);
      await agent.dispose();
      expect(await sameBytes(a, b, sizeBytes)).toBe(false);

      await migrateKilledAt(point, ['migrate', 'p', '--drain-timeout', '0'], env);
      const mid = JSON.parse(ok('--json', 'pair', 'show', 'p')) as Shown;
      expect(mid.migrateInterrupted?.newPrimary).toBe(b);
      expect(mid.state).toBe('interrupted');
      expect(mid.record.primary.volref).toBe(a); // the swap is the last step
      expect(mid.primary.member).toMatchObject({ role: 'secondary', generation: 2 }); // demoted: writes stopped
      expect(mid.secondary.member).toMatchObject(point === 'copied' ? { role: 'secondary', generation: 1 } : { role: 'primary', generation: 2 });
      expect(ok('pair', 'show', 'p')).toMatch(/unfinished migrate to .* run `tidemark migrate p` to finish it/);

      const finished = JSON.parse(ok('--json', 'migrate', 'p')) as { resumed: boolean; finalRegions: number; generation: number; newPrimary: string };
      expect(finished).toMatchObject({ resumed: true, generation: 2, newPrimary: b });
      // The old primary's unshipped regions were durable on it across the kill: all of them, and only them.
      expect(finished.finalRegions).toBe(written.length);
      expect(await sameBytes(a, b, sizeBytes)).toBe(true);
      ok('verify', 'p');
      const after = JSON.parse(ok('--json', 'pair', 'show', 'p')) as Shown;
      expect(after.migrateInterrupted).toBeNull();
      expect(after.record).toMatchObject({ generation: 2, primary: { volref: b } });
      expect(after.primary.member).toMatchObject({ role: 'primary', generation: 2 });
      expect(after.secondary.member).toMatchObject({ role: 'secondary', generation: 2 });
      // The old primary kept nothing of its time as primary: a map left there would record replication's writes.
      const inspect = new LocalAgent(home);
      const maps = await inspect.bitmapList(a);
      await inspect.dispose();
      expect(maps.filter((m) => /^p[0-9a-f]{12}-(un|since|current)$/.test(m.name))).toEqual([]);
      // And the pair migrates back, uninterrupted.
      ok('migrate', 'p');
      expect((JSON.parse(ok('--json', 'pair', 'show', 'p')) as Shown).record).toMatchObject({ generation: 3, primary: { volref: a } });
    }, 60_000);
  }
});
