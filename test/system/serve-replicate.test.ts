// `tidemark serve` with real NBD clients and `replicate --once` (docs/replication.md "Tests"):
// qemu-io random writes through the export end identical on the secondary; nbdinfo sees the
// allocation; qemu-img converts into the export and back byte-exact; and the crash test —
// SIGKILL the serving process during a random-write workload, 20 seeds — after each restart
// and catch-up the files are identical and the bytes resent are ≤ MOOS regions × region size.
import { spawn, type ChildProcess } from 'node:child_process';
import { open, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcAgent, connectAgentSocket, type NbdExportInfo } from '../../src-engine/agent';
import { RpcPeer } from '../../src-engine/transport';
import { agentInfoOf } from '../helpers/agent-processes';
import { cliBundle, tidemarkAsync } from '../helpers/cli';
import { until } from '../helpers/engine';
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
async function syncedPair(periodic: string[] = []): Promise<{ dir: string; env: NodeJS.ProcessEnv; primary: string; secondary: string }> {
  const dir = await tempDir();
  const env = { TIDEMARK_HOME: join(dir, 'home') };
  const [primary, secondary] = [join(dir, 'primary.img'), join(dir, 'secondary.img')];
  await cli(env, ['volume', 'create', primary, '--size', String(volumeBytes), '--region-size', String(regionBytes)]);
  await cli(env, ['volume', 'create', secondary, '--size', String(volumeBytes), '--region-size', String(regionBytes)]);
  await cli(env, ['pair', 'create', 'p', '--primary', primary, '--secondary', secondary, '--region-size', String(regionBytes), '--predict', '3', ...periodic]);
  await cli(env, ['sync', 'p']);
  return { dir, env, primary, secondary };
}

/** A running `serve`, with what it has logged so far. */
type Served = ChildProcess & { readonly log: () => string };

async function serve(env: NodeJS.ProcessEnv, port: number | null, extra: string[] = []): Promise<Served> {
  const listen = port === null ? [] : ['--nbd', `127.0.0.1:${port}`];
  const child = spawn(process.execPath, [cliBundle, 'serve', 'p', ...listen, ...extra], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const deadline = Date.now() + 20_000;
  while (!/serving (primary|secondary)/.test(stderr)) {
    if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`serve did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return Object.assign(child, { log: () => stderr });
}

function stopped(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** The 4 KiB at `offset` of the file all hold `pattern`. */
async function markerLanded(path: string, marker: { offset: number; pattern: number }): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const bytes = Buffer.alloc(4096);
    await handle.read(bytes, 0, 4096, marker.offset);
    return bytes.every((b) => b === marker.pattern);
  } finally {
    await handle.close();
  }
}

/** The regions the qemu-io commands of writeCommands touch. */
function regionsWrittenBy(commands: readonly string[]): Set<number> {
  const regions = new Set<number>();
  for (const command of commands) {
    const [offset, length] = command.split(' ').slice(-2).map(Number) as [number, number];
    for (let r = Math.floor(offset / regionBytes); r <= Math.floor((offset + length - 1) / regionBytes); r++) regions.add(r);
  }
  return regions;
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

/** The NBD exports of the agent serving `homeDir`, asked through its socket. */
async function exportsOf(homeDir: string): Promise<NbdExportInfo[]> {
  const peer = new RpcPeer(await connectAgentSocket(homeDir), { role: 'client', keepaliveMs: 0 });
  try {
    await peer.handshake();
    return await new RpcAgent(peer).nbdExportList();
  } finally {
    peer.close();
  }
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
    const oosAfterQemuIo = JSON.parse(await cli(env, ['--json', 'map', 'p', '--which', 'oos'])) as { setCount: number };
    expect(oosAfterQemuIo.setCount).toBe(regionsWrittenBy(commands).size); // every kind of write tracked: plain, FUA, zeroes

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
    for (let i = 0; i < 40; i++) {
      const at = Math.floor(random() * (volumeBytes - MiB));
      sourceBytes.fill(1 + Math.floor(random() * 254), at, at + 1 + Math.floor(random() * MiB));
    }
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

  it('pair wait --in-sync and replicate --once wait for the running serve to ship; a second shipper is refused BUSY; wait times out exit 1', async () => {
    const seed = baseSeed + 50;
    console.log(`[serve-replicate] wait seed ${seed}`);
    const { env, primary, secondary } = await syncedPair();
    const port = await freePort();
    const uri = `nbd://127.0.0.1:${port}/p`;

    // Nothing ships: the wait gives up after its timeout, one line saying why, exit 1.
    const idle = await serve(env, port, ['--no-replicate']);
    await runClientOk('qemu-io', ['-f', 'raw', uri, ...writeCommands(seededRandom(seed), 20).flatMap((c) => ['-c', c])], 60_000);
    const timedOut = await tidemarkAsync(['pair', 'wait', 'p', '--in-sync', '--timeout', '1s'], env);
    expect(timedOut.status).toBe(1);
    expect(timedOut.stderr.trim().split('\n')).toHaveLength(1);
    expect(timedOut.stderr).toMatch(/not in sync after 1 s/);
    idle.kill('SIGTERM');
    expect(await stopped(idle)).toBe(0);

    // serve ships what it finds unshipped, and what is written meanwhile.
    const shipping = await serve(env, port);
    await runClientOk('qemu-io', ['-f', 'raw', uri, ...writeCommands(seededRandom(seed + 1), 20).flatMap((c) => ['-c', c])], 60_000);
    const second = await tidemarkAsync(['replicate', 'p'], env);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`already replicated by process ${shipping.pid}`));
    const waited = await tidemarkAsync(['--json', 'pair', 'wait', 'p', '--in-sync', '--timeout', '60s'], env);
    expect(waited.status, waited.stderr).toBe(0);
    expect(JSON.parse(waited.stdout)).toMatchObject({ pair: 'p', inSync: true, tracking: { oosRegions: 0, inFlightRegions: 0 } });
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);
    const once = JSON.parse(await cli(env, ['--json', 'replicate', 'p', '--once'])) as { inSync: boolean; waitedFor: { pid: number } | null };
    expect(once).toMatchObject({ inSync: true, waitedFor: { pid: shipping.pid } });
    shipping.kill('SIGTERM');
    expect(await stopped(shipping)).toBe(0);
  });

  it('serve on a Unix socket with --predict; serve --secondary exports the secondary read-only', async () => {
    const { dir, env, secondary } = await syncedPair();
    const socket = join(dir, 'nbd.sock');
    const server = await serve(env, null, ['--nbd-socket', socket, '--predict', '5', '--no-replicate']);
    expect(server.log()).toMatch(/tracking writes \(MOOS, predict 5\)/);
    const unixUri = `nbd+unix:///p?socket=${socket}`;
    await runClientOk('qemu-io', ['-f', 'raw', unixUri, '-c', 'write -P 7 0 4096', '-c', 'read -P 7 0 4096'], 60_000);
    const moos = JSON.parse(await cli(env, ['--json', 'map', 'p', '--which', 'moos'])) as { setCount: number };
    expect(moos.setCount).toBeGreaterThanOrEqual(6); // region 0 and the 5 predicted after it
    server.kill('SIGTERM');
    expect(await stopped(server)).toBe(0);

    const port = await freePort();
    const inspect = await serve(env, port, ['--secondary']);
    expect(inspect.log()).toMatch(/serving secondary \(read-only\)/);
    const uri = `nbd://127.0.0.1:${port}/p`;
    expect(JSON.parse(await runClientOk('nbdinfo', ['--json', uri]))).toMatchObject({ exports: [{ is_read_only: true }] });
    const refused = await runClient('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 9 0 4096'], 60_000);
    expect(refused.stdout + refused.stderr).toMatch(/read-only|permission|not permitted/i);
    await runClientOk('qemu-io', ['-f', 'raw', '-r', uri, '-c', 'read -P 0 0 4096'], 60_000); // the write not shipped: the secondary has zeros there
    expect((await readFile(secondary)).subarray(0, 4096).equals(Buffer.alloc(4096))).toBe(true);
    inspect.kill('SIGTERM');
    expect(await stopped(inspect)).toBe(0);
  });

  it('serve of a periodic pair runs its cycles: replicate --once waits for the next one, and the secondary is the primary', async () => {
    const seed = baseSeed + 60;
    console.log(`[serve-replicate] periodic seed ${seed}`);
    const { env, primary, secondary } = await syncedPair(['--mode', 'periodic', '--interval', '1s']);
    const port = await freePort();
    const server = await serve(env, port);
    await runClientOk('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${port}/p`, ...writeCommands(seededRandom(seed), 30).flatMap((c) => ['-c', c])], 60_000);
    const calledAtMs = Date.now();
    const waited = JSON.parse(await cli(env, ['--json', 'replicate', 'p', '--once'])) as { waitedFor: { pid: number } | null; pointInTime?: string };
    expect(waited.waitedFor?.pid).toBe(server.pid);
    expect(Date.parse(waited.pointInTime ?? '')).toBeGreaterThanOrEqual(calledAtMs); // a cycle frozen after the call
    // qemu-io had finished before that cycle froze: the secondary holds every write.
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);
    const shown = JSON.parse(await cli(env, ['--json', 'pair', 'show', 'p'])) as { cycles?: unknown[] };
    expect(JSON.stringify(shown)).toMatch(/"cycle":\s*[1-9]/);
    server.kill('SIGTERM');
    expect(await stopped(server)).toBe(0);
  });

  it('asks the running agent of the home: the export lives in that agent and ends with serve, on SIGTERM and on SIGKILL', async () => {
    const { env, primary } = await syncedPair();
    const homeDir = env.TIDEMARK_HOME!;
    const agent = spawn(process.execPath, [cliBundle, 'agent', 'serve'], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: 'ignore' });
    children.push(agent);
    await until(async () => (await agentInfoOf(homeDir))?.pid === agent.pid, 10_000, 'the home agent');
    const markers = [
      { signal: 'SIGTERM', offset: 0, pattern: 0x31 },
      { signal: 'SIGKILL', offset: 5 * regionBytes + 8192, pattern: 0x32 },
    ] as const;
    for (const { signal, offset, pattern } of markers) {
      const port = await freePort();
      const uri = `nbd://127.0.0.1:${port}/p`;
      const server = await serve(env, port, ['--no-replicate']);
      expect(server.log()).toContain(`using the running agent of ${homeDir} (pid ${agent.pid}`);
      expect((await exportsOf(homeDir)).map((e) => e.uri)).toEqual([uri]); // served by the agent, not by serve
      await runClientOk('qemu-io', ['-f', 'raw', uri, '-c', `write -P ${pattern} ${offset} 4096`]);
      server.kill(signal);
      await stopped(server);
      // SIGTERM: serve stops its export; SIGKILL: the agent stops it when serve's connection drops.
      await until(async () => (await exportsOf(homeDir)).length === 0, 10_000, `the export to end after ${signal}`);
      expect((await runClient('nbdinfo', [uri])).code).not.toBe(0);
      expect(await markerLanded(primary, { offset, pattern })).toBe(true);
    }
    expect(agent.exitCode).toBeNull(); // the agent outlives both
    const oos = JSON.parse(await cli(env, ['--json', 'map', 'p', '--which', 'oos'])) as { setCount: number };
    expect(oos.setCount).toBe(2); // the agent tracked the writes of both exports: regions 0 and 5
  });

  it('SIGKILL of the serving process during random writes, 20 seeds: restart resends at most MOOS, files identical', async () => {
    const { env, primary, secondary } = await syncedPair();
    const writes = 2000; // seconds of work: the kill always lands inside it
    for (let round = 0; round < 20; round++) {
      const seed = baseSeed + 100 + round;
      const random = seededRandom(seed);
      const port = await freePort();
      const server = await serve(env, port);
      // The workload starts with a marker write (a pattern and place of this round's own): once it
      // is in the primary, writes are being acknowledged, and the kill comes a seeded moment later.
      const marker = { offset: round * 4096, pattern: 0x80 + round };
      const commands = [`write -P ${marker.pattern} ${marker.offset} 4096`, ...writeCommands(random, writes - 1)];
      const writer = runClient('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${port}/p`, ...commands.flatMap((c) => ['-c', c])], 120_000);
      for (const deadline = Date.now() + 20_000; !(await markerLanded(primary, marker));) {
        if (Date.now() > deadline) throw new Error(`seed ${seed}: qemu-io's first write did not reach the primary within 20 s`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.floor(random() * 200)));
      server.kill('SIGKILL');
      await stopped(server);
      // qemu-io goes on after the server is gone, each later write failing: its unacknowledged writes may or may not have landed.
      const acknowledged = ((await writer).stdout.match(/^wrote /gm) ?? []).length;
      expect(acknowledged, `seed ${seed}: the kill landed inside the workload`).toBeGreaterThan(0);
      expect(acknowledged, `seed ${seed}: the kill landed inside the workload`).toBeLessThan(writes);

      const moos = JSON.parse(await cli(env, ['--json', 'map', 'p', '--which', 'moos'])) as { setCount: number; regionBytes: number };
      const caughtUp = JSON.parse(await cli(env, ['--json', 'replicate', 'p', '--once'])) as {
        bytesTransferred: number;
        recoveredRegions: number;
        inSync: boolean;
      };
      console.log(
        `[serve-replicate] crash seed ${seed}: ${acknowledged} of ${writes} writes acknowledged, MOOS ${moos.setCount} regions, resent ${caughtUp.bytesTransferred / regionBytes}`,
      );
      expect(moos.setCount).toBeGreaterThan(0); // writes were in flight or unshipped: there was something to recover
      expect(caughtUp.inSync).toBe(true);
      expect(caughtUp.recoveredRegions).toBe(moos.setCount);
      expect(caughtUp.bytesTransferred).toBeLessThanOrEqual(moos.setCount * regionBytes);
      expect((await readFile(secondary)).equals(await readFile(primary)), `seed ${seed}: secondary equals primary`).toBe(true);
    }
  }, 300_000);
});
