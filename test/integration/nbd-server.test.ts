// The NBD server over real Volumes, driven by real clients: nbdinfo (flags, block sizes, list,
// allocation and dirty maps), qemu-io (seeded writes, zeroes, discards, flushes, FUA, aio),
// qemu-img convert and nbdcopy (multi-conn) in and out byte-exact, a read-only export, and the
// volume's write hooks seeing every region the clients wrote.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';
import { TidemarkError } from '../../src-engine/errors';
import { NbdServer, volumeNbdExport, type NbdConnectionInfo } from '../../src-engine/nbd';
import type { Volume } from '../../src-engine/volume';
import { randomBytes, seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';
import { testSeed } from '../setup';
import { KiB, MiB, fileVolume, firstDifference, runClient, runClientOk } from './nbd-clients';

const regionBytes = 64 * KiB;
const volumeBytes = 8 * MiB;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(server: NbdServer): Promise<number> {
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => server.close());
  return port!;
}

async function volumeIn(dir: string, name: string, content?: Uint8Array): Promise<Volume> {
  const volume = await fileVolume(dir, name, volumeBytes, regionBytes, content);
  cleanups.push(() => volume.close());
  return volume;
}

function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  expect(at, `${what}: first difference at byte ${at}`).toBe(-1);
}

describe('NBD server with real clients', () => {
  it('nbdinfo sees size, flags and block sizes over TCP and a Unix socket (0600); --list names every export', async () => {
    const dir = await tempDir();
    const volume = await volumeIn(dir, 'a.img');
    const other = await volumeIn(dir, 'b.img');
    const server = new NbdServer(
      [
        volumeNbdExport(volume, { name: 'vol', readOnly: false }),
        { ...volumeNbdExport(other, { name: 'backup', readOnly: true }), description: 'the read-only copy' },
      ],
      { maxRequestBytes: 4 * MiB },
    );
    const port = await serve(server);
    const json = JSON.parse(await runClientOk('nbdinfo', ['--json', `nbd://127.0.0.1:${port}/vol`])) as { exports: Record<string, unknown>[] };
    expect(json.exports[0]).toMatchObject({
      'export-name': 'vol',
      'export-size': volumeBytes,
      is_read_only: false,
      can_flush: true,
      can_fua: true,
      can_trim: true,
      can_zero: true,
      can_multi_conn: true,
      block_size_minimum: 1,
      block_size_preferred: 4096,
      block_size_maximum: 4 * MiB,
      contexts: ['base:allocation'],
    });
    const readOnly = JSON.parse(await runClientOk('nbdinfo', ['--json', `nbd://127.0.0.1:${port}/backup`])) as { exports: Record<string, unknown>[] };
    expect(readOnly.exports[0]).toMatchObject({ 'export-name': 'backup', is_read_only: true, can_trim: false, can_zero: false });
    // The default export ('') is the first one.
    const byDefault = JSON.parse(await runClientOk('nbdinfo', ['--json', `nbd://127.0.0.1:${port}`])) as { exports: Record<string, unknown>[] };
    expect(byDefault.exports[0]).toMatchObject({ 'export-size': volumeBytes, is_read_only: false });
    const list = await runClientOk('nbdinfo', ['--list', `nbd://127.0.0.1:${port}`]);
    expect(list).toMatch(/export="vol"/);
    expect(list).toMatch(/export="backup"/);
    expect(list).toMatch(/description: the read-only copy/);

    const socketPath = join(dir, 'nbd.sock');
    const unixServer = new NbdServer([volumeNbdExport(volume, { name: 'vol', readOnly: false })]);
    await unixServer.listen({ socketPath });
    cleanups.push(() => unixServer.close());
    expect((await stat(socketPath)).mode & 0o777).toBe(0o600);
    const overUnix = JSON.parse(await runClientOk('nbdinfo', ['--json', `nbd+unix:///vol?socket=${socketPath}`])) as { exports: Record<string, unknown>[] };
    expect(overUnix.exports[0]).toMatchObject({ 'export-size': volumeBytes, block_size_maximum: 32 * MiB });
    // A second server on a socket someone answers is refused; the first keeps it.
    const second = new NbdServer([volumeNbdExport(volume, { name: 'vol', readOnly: true })]);
    await expect(second.listen({ socketPath })).rejects.toSatisfy((e) => e instanceof TidemarkError && e.code === 'BUSY');
    await unixServer.close();
    expect(existsSync(socketPath)).toBe(false);
  });

  it('replaces a stale socket file left by a dead server, and refuses a path that is not a socket', async () => {
    const dir = await tempDir();
    const volume = await volumeIn(dir, 'a.img');
    const socketPath = join(dir, 'stale.sock');
    // A process that binds the socket and is killed leaves the file behind with nobody listening.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    expect(existsSync(socketPath)).toBe(true);
    const server = new NbdServer([volumeNbdExport(volume, { name: 'vol', readOnly: false })]);
    await server.listen({ socketPath });
    cleanups.push(() => server.close());
    await runClientOk('nbdinfo', ['--size', `nbd+unix:///vol?socket=${socketPath}`]);

    const notSocket = join(dir, 'file');
    await writeFile(notSocket, 'keep me');
    const refused = new NbdServer([volumeNbdExport(volume, { name: 'vol', readOnly: false })]);
    await expect(refused.listen({ socketPath: notSocket })).rejects.toSatisfy((e) => e instanceof TidemarkError && e.code === 'ALREADY_EXISTS');
    expect(await readFile(notSocket, 'utf8')).toBe('keep me');
  });

  it('nbdinfo --map reports exact allocation and dirty-bitmap extents', async () => {
    const dir = await tempDir();
    const volume = await volumeIn(dir, 'a.img');
    const regions = volume.regionCount; // 128
    const allocated = new Bitset(regions);
    allocated.setRange(3, 10);
    allocated.set(100);
    allocated.setRange(120, regions);
    const dirty = new Bitset(regions);
    dirty.setRange(0, 2);
    dirty.set(64);
    const server = new NbdServer([
      volumeNbdExport(volume, {
        name: 'vol',
        readOnly: false,
        allocated: () => allocated,
        dirty: { name: 'qemu:dirty-bitmap:tidemark-oos', bits: () => dirty },
      }),
    ]);
    const port = await serve(server);
    const uri = `nbd://127.0.0.1:${port}/vol`;
    const map = JSON.parse(await runClientOk('nbdinfo', ['--map', '--json', uri])) as { offset: number; length: number; type: number }[];
    const r = regionBytes;
    expect(map.map(({ offset, length, type }) => ({ offset, length, type }))).toEqual([
      { offset: 0, length: 3 * r, type: 3 },
      { offset: 3 * r, length: 7 * r, type: 0 },
      { offset: 10 * r, length: 90 * r, type: 3 },
      { offset: 100 * r, length: r, type: 0 },
      { offset: 101 * r, length: 19 * r, type: 3 },
      { offset: 120 * r, length: 8 * r, type: 0 },
    ]);
    const dirtyMap = JSON.parse(await runClientOk('nbdinfo', ['--map=qemu:dirty-bitmap:tidemark-oos', '--json', uri])) as {
      offset: number;
      length: number;
      type: number;
    }[];
    expect(dirtyMap.map(({ offset, length, type }) => ({ offset, length, type }))).toEqual([
      { offset: 0, length: 2 * r, type: 1 },
      { offset: 2 * r, length: 62 * r, type: 0 },
      { offset: 64 * r, length: r, type: 1 },
      { offset: 65 * r, length: 63 * r, type: 0 },
    ]);
    // Listing by namespace prefix finds the dirty bitmap.
    const json = JSON.parse(await runClientOk('nbdinfo', ['--json', uri])) as { exports: { contexts: string[] }[] };
    expect(json.exports[0]!.contexts).toEqual(['base:allocation', 'qemu:dirty-bitmap:tidemark-oos']);
    // Totals agree: 7 + 1 + 8 regions of data.
    const part = JSON.parse(await runClientOk('nbdinfo', ['--map', '--json', '--totals', uri])) as { size: number; type: number }[];
    expect(part.find((t) => t.type === 0)!.size).toBe((7 + 1 + 8) * r);
  });

  it('qemu-io: seeded writes, zeroes, discards, flushes, FUA and aio land byte-exact; the write hook sees every written region', async () => {
    const dir = await tempDir();
    const volume = await volumeIn(dir, 'a.img');
    const hooked = new Bitset(volume.regionCount);
    volume.addWriteHook({
      name: 'test-recorder',
      beforeWrite: async (first, last) => hooked.setRange(first, last + 1),
    });
    const errors: Error[] = [];
    const server = new NbdServer([volumeNbdExport(volume, { name: 'vol', readOnly: false })], { onError: (e) => errors.push(e) });
    const port = await serve(server);
    const seed = testSeed ^ 0x4e4244;
    console.log(`[nbd-server] qemu-io ops seed ${seed}`);
    const random = seededRandom(seed);
    const expected = Buffer.alloc(volumeBytes);
    const written = new Bitset(volume.regionCount);
    const commands: string[] = [];
    const sector = 512;
    const pick = (max: number) => Math.floor(random() * max);
    const span = () => {
      const lengthBytes = (1 + pick(256)) * sector; // up to 128 KiB: crosses 64 KiB regions
      const offsetBytes = pick((volumeBytes - lengthBytes) / sector) * sector;
      return { offsetBytes, lengthBytes };
    };
    const mark = (offsetBytes: number, lengthBytes: number) =>
      written.setRange(Math.floor(offsetBytes / regionBytes), Math.floor((offsetBytes + lengthBytes - 1) / regionBytes) + 1);
    for (let i = 0; i < 80; i++) {
      const kind = pick(10);
      const { offsetBytes, lengthBytes } = span();
      if (kind < 5 || kind === 9) {
        const pattern = 1 + pick(255);
        const fua = kind === 9 ? '-f ' : '';
        commands.push(`write ${fua}-P ${pattern} ${offsetBytes} ${lengthBytes}`, `read -P ${pattern} ${offsetBytes} ${lengthBytes}`);
        expected.fill(pattern, offsetBytes, offsetBytes + lengthBytes);
        mark(offsetBytes, lengthBytes);
      } else if (kind < 7) {
        commands.push(`write -z ${offsetBytes} ${lengthBytes}`, `read -P 0 ${offsetBytes} ${lengthBytes}`);
        expected.fill(0, offsetBytes, offsetBytes + lengthBytes);
        mark(offsetBytes, lengthBytes);
      } else if (kind === 7) {
        // Advisory: the bytes stay as they were (and stay tracked).
        commands.push(`discard ${offsetBytes} ${lengthBytes}`);
      } else {
        commands.push('flush');
      }
    }
    // Concurrent aio writes to disjoint 48 KiB slots, then a flush.
    for (let slot = 0; slot < 8; slot++) {
      const offsetBytes = slot * 3 * 64 * KiB + 4096;
      const pattern = 200 + slot;
      commands.push(`aio_write -P ${pattern} ${offsetBytes} ${48 * KiB}`);
      expected.fill(pattern, offsetBytes, offsetBytes + 48 * KiB);
      mark(offsetBytes, 48 * KiB);
    }
    commands.push('aio_flush', 'flush');
    const result = await runClient('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${port}/vol`, ...commands.flatMap((c) => ['-c', c])], 60_000);
    const output = result.stdout + result.stderr;
    expect(output).not.toMatch(/Pattern verification failed|failed|error/i);
    expect(result.code).toBe(0);
    expectSameBytes(await readFile(volume.path), expected, 'backing file after qemu-io');
    expect([...hooked.indexes()]).toEqual([...written.indexes()]);
    expect(errors).toEqual([]);
  });

  it('qemu-img convert into the export and back out is byte-exact', async () => {
    const dir = await tempDir();
    const volume = await volumeIn(dir, 'a.img');
    const source = randomBytes(seededRandom(testSeed + 1), volumeBytes);
    source.fill(0, MiB, 3 * MiB); // a zero stretch qemu-img may send as WRITE_ZEROES
    await writeFile(join(dir, 'src.img'), source);
    await writeFile(volume.path, Buffer.alloc(volumeBytes, 0x5a)); // old content everywhere
    const server = new NbdServer([volumeNbdExport(volume, { name: 'vol', readOnly: false })]);
    const port = await serve(server);
    const uri = `nbd://127.0.0.1:${port}/vol`;
    await runClientOk('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', join(dir, 'src.img'), uri]);
    expectSameBytes(await readFile(volume.path), source, 'volume after qemu-img convert in');
    await runClientOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, join(dir, 'out.img')]);
    expectSameBytes(await readFile(join(dir, 'out.img')), source, 'qemu-img convert out');
  });

  it('nbdcopy with 4 connections × 16 requests both ways is byte-exact (multi-conn)', async () => {
    const dir = await tempDir();
    const volume = await volumeIn(dir, 'a.img');
    const source = randomBytes(seededRandom(testSeed + 2), volumeBytes);
    await writeFile(join(dir, 'src.img'), source);
    const events: NbdConnectionInfo[] = [];
    const server = new NbdServer([volumeNbdExport(volume, { name: 'vol', readOnly: false })], { onConnection: (info) => events.push(info) });
    const port = await serve(server);
    const uri = `nbd://127.0.0.1:${port}/vol`;
    await runClientOk('nbdcopy', ['--requests=16', '--connections=4', '--threads=4', join(dir, 'src.img'), uri]);
    expectSameBytes(await readFile(volume.path), source, 'volume after nbdcopy in');
    expect(events.filter((e) => e.event === 'export').length).toBeGreaterThanOrEqual(4);
    await writeFile(join(dir, 'out.img'), '');
    await runClientOk('nbdcopy', ['--requests=16', '--connections=4', '--threads=4', uri, join(dir, 'out.img')]);
    expectSameBytes(await readFile(join(dir, 'out.img')), source, 'nbdcopy out');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.connectionCount).toBe(0);
    expect(events.filter((e) => e.event === 'closed').length).toBe(events.filter((e) => e.event === 'opened').length);
  });

  it('a read-only export refuses writes (qemu-io reports it) and the file is unchanged', async () => {
    const dir = await tempDir();
    const content = randomBytes(seededRandom(testSeed + 3), volumeBytes);
    const volume = await volumeIn(dir, 'a.img', content);
    const server = new NbdServer([volumeNbdExport(volume, { name: 'ro', readOnly: true })]);
    const port = await serve(server);
    const uri = `nbd://127.0.0.1:${port}/ro`;
    const refused = await runClient('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 1 0 4096', '-c', 'write -z 65536 65536']);
    expect(refused.stdout + refused.stderr).toMatch(/read-only|permission|not permitted/i);
    // Opened read-only, qemu-io still reads it.
    await runClientOk('qemu-io', ['-r', '-f', 'raw', uri, '-c', `read -P ${content[0]} 0 1`]);
    expectSameBytes(await readFile(volume.path), content, 'read-only volume');
  });
});
