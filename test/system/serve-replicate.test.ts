// `tidemark serve` with real NBD clients and `replicate --once` (docs/replication.md "Tests"):
// qemu-io random writes through the export end identical on the secondary; nbdinfo sees the
// allocation; qemu-img converts into the export and back byte-exact; and the crash test —
// SIGKILL the serving process during a random-write workload, 20 seeds — after each restart
// and catch-up the files are identical and the bytes resent are ≤ MOOS regions × region size.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cliBundle, tidemarkAsync } from '../helpers/cli';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';
import { runClient, runClientOk } from '../integration/nbd-clients';

const MiB = 1024 * 1024;
const regionBytes = 256 * 1024;
const volumeBytes = 32 * MiB;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function cli(env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  const result = await tidemarkAsync(args, env);
  if (result.status !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}

/** A synced pair of two sparse files in a fresh home. */
async function syncedPair(): Promise<{ dir: string; env: NodeJS.ProcessEnv; primary: string; secondary: string }> {
  const dir = await tempDir();
  const env = { TIDEMARK_HOME: join(dir, 'home') };
  const [primary, secondary] = [join(dir, 'primary.img'), join(dir, 'secondary.img')];
  await cli(env, ['volume', 'create', primary, '--size', String(volumeBytes), '--region-size', String(regionBytes)]);
  await cli(env, ['volume', 'create', secondary, '--size', String(volumeBytes), '--region-size', String(regionBytes)]);
  await cli(env, ['pair', 'create', 'p', '--primary', primary, '--secondary', secondary, '--region-size', String(regionBytes), '--predict', '3']);
  await cli(env, ['sync', 'p']);
  return { dir, env, primary, secondary };
}

/** Starts `serve` and resolves once the export answers. */
async function serve(env: NodeJS.ProcessEnv, port: number, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [cliBundle, 'serve', 'p', '--nbd', `127.0.0.1:${port}`, ...extra], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const deadline = Date.now() + 20_000;
  while (!stderr.includes('serving primary')) {
    if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`serve did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return child;
}

function stopped(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Seeded qemu-io writes: whole and partial regions, zeroes, some FUA. */
function writeCommands(random: () => number, count: number): string[] {
  const commands: string[] = [];
  for (let i = 0; i < count; i++) {
    const offset = Math.floor(random() * (volumeBytes / 4096 - 64)) * 4096;
    const length = (1 + Math.floor(random() * 64)) * 4096;
    const pattern = 1 + Math.floor(random() * 254);
    const roll = random();
    commands.push(
      roll < 0.1 ? `write -z ${offset} ${length}` : roll < 0.2 ? `write -f -P ${pattern} ${offset} ${length}` : `write -P ${pattern} ${offset} ${length}`,
    );
  }
  return commands;
}

describe('serve + replicate with real NBD clients', () => {
  it('qemu-io writes through serve → replicate --once → identical; nbdinfo maps allocation; qemu-img convert in and out byte-exact', async () => {
    const seed = baseSeed;
    console.log(`[serve-replicate] clients seed ${seed}`);
    const { dir, env, primary, secondary } = await syncedPair();
    const port = await freePort();
    const server = await serve(env, port, ['--no-replicate']);
    const uri = `nbd://127.0.0.1:${port}/p`;
    const commands = writeCommands(seededRandom(seed), 60);
    await runClientOk('qemu-io', ['-f', 'raw', uri, ...commands.flatMap((c) => ['-c', c])], 60_000);

    const map = JSON.parse(await runClientOk('nbdinfo', ['--json', '--map', uri])) as { offset: number; length: number; type: number }[];
    expect(map.reduce((sum, e) => sum + e.length, 0)).toBe(volumeBytes);
    expect(map.some((e) => (e.type & 1) === 0)).toBe(true); // data where qemu-io wrote
    expect(map.some((e) => (e.type & 1) === 1)).toBe(true); // holes elsewhere (sparse, never written)
    const dirty = JSON.parse(await runClientOk('nbdinfo', ['--json', '--map=qemu:dirty-bitmap:tidemark-oos', uri])) as { type: number }[];
    expect(dirty.some((e) => e.type === 1)).toBe(true); // not shipped yet: --no-replicate

    // qemu-img convert a seeded image into the export, and the export back out.
    const source = join(dir, 'source.raw');
    const sourceBytes = Buffer.alloc(volumeBytes);
    const random = seededRandom(seed + 1);
    for (let i = 0; i < 40; i++) sourceBytes.fill(1 + Math.floor(random() * 254), Math.floor(random() * (volumeBytes - MiB)), undefined);
    for (let i = 0; i < 8; i++) {
      const at = Math.floor(random() * (volumeBytes / MiB)) * MiB;
      sourceBytes.fill(0, at, at + MiB);
    }
    await writeFile(source, sourceBytes);
    await runClientOk('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', source, uri], 60_000);
    const back = join(dir, 'back.raw');
    await runClientOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, back], 60_000);
    expect((await readFile(back)).equals(sourceBytes)).toBe(true);
    expect((await readFile(primary)).equals(sourceBytes)).toBe(true);

    const shipped = JSON.parse(await cli(env, ['--json', 'replicate', 'p', '--once'])) as { regionsTransferred: number; inSync: boolean };
    expect(shipped.inSync).toBe(true);
    expect(shipped.regionsTransferred).toBeGreaterThan(0);
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);
    const verify = await tidemarkAsync(['verify', 'p'], env);
    expect(verify.status, verify.stdout + verify.stderr).toBe(0);
    server.kill('SIGTERM');
    expect(await stopped(server)).toBe(0);
  });

  it('SIGKILL of the serving process during random writes, 20 seeds: restart resends at most MOOS, files identical', async () => {
    const { env, primary, secondary } = await syncedPair();
    for (let round = 0; round < 20; round++) {
      const seed = baseSeed + 100 + round;
      const random = seededRandom(seed);
      const port = await freePort();
      const server = await serve(env, port);
      const writer = runClient('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${port}/p`, ...writeCommands(random, 200).flatMap((c) => ['-c', c])], 60_000);
      await new Promise((resolve) => setTimeout(resolve, 30 + Math.floor(random() * 300)));
      server.kill('SIGKILL');
      await stopped(server);
      await writer; // fails when the server goes: its unacknowledged writes may or may not have landed

      const moos = JSON.parse(await cli(env, ['--json', 'map', 'p', '--which', 'moos'])) as { setCount: number; regionBytes: number };
      const caughtUp = JSON.parse(await cli(env, ['--json', 'replicate', 'p', '--once'])) as {
        bytesTransferred: number;
        recoveredRegions: number;
        inSync: boolean;
      };
      console.log(`[serve-replicate] crash seed ${seed}: MOOS ${moos.setCount} regions, resent ${caughtUp.bytesTransferred / regionBytes}`);
      expect(caughtUp.inSync).toBe(true);
      expect(caughtUp.recoveredRegions).toBe(moos.setCount);
      expect(caughtUp.bytesTransferred).toBeLessThanOrEqual(moos.setCount * regionBytes);
      expect((await readFile(secondary)).equals(await readFile(primary)), `seed ${seed}: secondary equals primary`).toBe(true);
    }
  }, 300_000);
});
