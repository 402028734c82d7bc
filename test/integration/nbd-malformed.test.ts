// The NBD server against what real clients never send, over raw sockets: bad magic, absurd
// option lengths, unknown options and commands, truncated frames, out-of-range and oversized
// requests, and seeded random garbage. The server answers with an error or disconnects that
// one client; it never throws, and keeps serving well-behaved clients (checked with nbdinfo).
import fc from 'fast-check';
import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NbdServer, volumeNbdExport } from '../../src-engine/nbd';
import type { Volume } from '../../src-engine/volume';
import { randomBytes, seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';
import { testSeed } from '../setup';
import {
  KiB,
  MiB,
  RawClient,
  fileVolume,
  goData,
  handshake,
  option,
  readOptionReply,
  readSimpleReply,
  readStructuredReply,
  request,
  runClientOk,
} from './nbd-clients';

const volumeBytes = 4 * MiB;
const maxRequestBytes = 1 * MiB;
const NBD_CMD = { read: 0, write: 1, disc: 2, flush: 3, trim: 4, cache: 5, writeZeroes: 6, blockStatus: 7 };
const NBD_EPERM = 1;
const NBD_EINVAL = 22;
const NBD_ENOSPC = 28;
const NBD_EOVERFLOW = 75;
const REP_ERR_UNSUP = 2 ** 31 + 1;
const REP_ERR_INVALID = 2 ** 31 + 3;
const REP_ERR_UNKNOWN = 2 ** 31 + 6;
const REP_ERR_TOO_BIG = 2 ** 31 + 9;

let volume: Volume;
let server: NbdServer;
let port: number;
let errors: Error[];

beforeEach(async () => {
  const dir = await tempDir();
  volume = await fileVolume(dir, 'v.img', volumeBytes, 64 * KiB);
  errors = [];
  server = new NbdServer([volumeNbdExport(volume, { name: 'vol', readOnly: false }), volumeNbdExport(volume, { name: 'ro', readOnly: true })], {
    maxRequestBytes,
    onError: (e) => errors.push(e),
  });
  port = (await server.listen({ host: '127.0.0.1', port: 0 })).port!;
});

afterEach(async () => {
  await server.close();
  await volume.close();
  expect(server.payloadBuffersLent).toBe(0); // every WRITE payload buffer came back or was abandoned with its connection
});

/** A well-behaved client still gets served. */
async function stillServes(): Promise<void> {
  expect((await runClientOk('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/vol`])).trim()).toBe(String(volumeBytes));
}

async function transmitting(structured: boolean, name = 'vol'): Promise<RawClient> {
  const client = await RawClient.connect(port);
  await handshake(client, name, structured);
  return client;
}

describe('NBD server under malformed input', () => {
  it('closes a client that sends a bad option magic or unknown client flags', async () => {
    const badMagic = await RawClient.connect(port);
    await badMagic.read(18);
    badMagic.write(Buffer.from([0, 0, 0, 1]));
    badMagic.write(Buffer.from('NOTMAGIC\0\0\0\x07\0\0\0\0', 'latin1'));
    expect(await badMagic.closesWithin(2000)).toBe(true);
    const badFlags = await RawClient.connect(port);
    await badFlags.read(18);
    badFlags.write(Buffer.from([0, 0, 0, 0x80]));
    expect(await badFlags.closesWithin(2000)).toBe(true);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/IHAVEOPT magic[\s\S]*unknown client flags/);
    await stillServes();
  });

  it('answers an option of length 2^31 with ERR_TOO_BIG and disconnects', async () => {
    const client = await RawClient.connect(port);
    await client.read(18);
    client.write(Buffer.from([0, 0, 0, 3]));
    client.write(option(7, Buffer.alloc(16), 2 ** 31));
    const reply = await readOptionReply(client);
    expect(reply.type).toBe(REP_ERR_TOO_BIG);
    expect(await client.closesWithin(2000)).toBe(true);
    await stillServes();
  });

  it('refuses unknown options, malformed LIST/GO/meta-context payloads and unknown exports, and keeps negotiating', async () => {
    const client = await RawClient.connect(port);
    await client.read(18);
    client.write(Buffer.from([0, 0, 0, 3]));
    client.write(option(0x7777, Buffer.from('whatever')));
    expect((await readOptionReply(client)).type).toBe(REP_ERR_UNSUP);
    client.write(option(3, Buffer.from('x')));
    expect((await readOptionReply(client)).type).toBe(REP_ERR_INVALID);
    client.write(option(7, Buffer.from([0, 0, 0, 200, 1, 2])));
    expect((await readOptionReply(client)).type).toBe(REP_ERR_INVALID);
    client.write(option(6, goData('nope')));
    expect((await readOptionReply(client)).type).toBe(REP_ERR_UNKNOWN);
    // Meta contexts before structured replies: invalid.
    client.write(option(10, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])));
    expect((await readOptionReply(client)).type).toBe(REP_ERR_INVALID);
    client.write(option(8));
    expect((await readOptionReply(client)).type).toBe(1);
    // A query count that cannot fit.
    client.write(option(9, Buffer.from([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])));
    expect((await readOptionReply(client)).type).toBe(REP_ERR_INVALID);
    // NBD_OPT_LIST still works after all that.
    client.write(option(3));
    const names: string[] = [];
    for (;;) {
      const reply = await readOptionReply(client);
      if (reply.type === 1) break;
      names.push(reply.data.toString('utf8', 4, 4 + reply.data.readUInt32BE(0)));
    }
    expect(names).toEqual(['vol', 'ro']);
    // NBD_OPT_EXPORT_NAME of an unknown export: no error reply exists, so the session ends.
    client.write(option(1, Buffer.from('missing')));
    expect(await client.closesWithin(2000)).toBe(true);
    await stillServes();
  });

  it('answers unknown commands, bad flags, out-of-range and oversized requests with errnos and keeps the connection', async () => {
    for (const structured of [false, true]) {
      const client = await transmitting(structured);
      client.write(request(99, 1, 0, 4096));
      expect(await readSimpleReply(client)).toMatchObject({ handle: 1, error: NBD_EINVAL });
      client.write(request(NBD_CMD.read, 2, 0, 512, 0x8000));
      const badFlags = structured ? await readStructuredReply(client) : await readSimpleReply(client);
      expect(badFlags).toMatchObject({ handle: 2, error: NBD_EINVAL });
      client.write(request(NBD_CMD.read, 3, volumeBytes - 512, 1024));
      const pastEnd = structured ? await readStructuredReply(client) : await readSimpleReply(client);
      expect(pastEnd).toMatchObject({ handle: 3, error: NBD_EINVAL });
      client.write(request(NBD_CMD.read, 4, 2 ** 60, 512));
      const farPastEnd = structured ? await readStructuredReply(client) : await readSimpleReply(client);
      expect(farPastEnd).toMatchObject({ handle: 4, error: NBD_EINVAL });
      client.write(request(NBD_CMD.read, 5, 0, maxRequestBytes + 1));
      const tooLarge = structured ? await readStructuredReply(client) : await readSimpleReply(client);
      expect(tooLarge).toMatchObject({ handle: 5, error: structured ? NBD_EOVERFLOW : NBD_EINVAL });
      client.write(request(NBD_CMD.write, 6, volumeBytes - 100, 200, 0, Buffer.alloc(200, 1)));
      expect(await readSimpleReply(client)).toMatchObject({ handle: 6, error: NBD_ENOSPC });
      client.write(request(NBD_CMD.read, 7, 0, 0));
      const empty = structured ? await readStructuredReply(client) : await readSimpleReply(client);
      expect(empty).toMatchObject({ handle: 7, error: NBD_EINVAL });
      // BLOCK_STATUS without a selected context.
      client.write(request(NBD_CMD.blockStatus, 8, 0, 4096));
      const noContext = structured ? await readStructuredReply(client) : await readSimpleReply(client);
      expect(noContext).toMatchObject({ handle: 8, error: NBD_EINVAL });
      // A write larger than the bound is read, dropped and refused; the stream stays in step.
      client.write(request(NBD_CMD.write, 9, 0, maxRequestBytes + 4096, 0, Buffer.alloc(maxRequestBytes + 4096, 7)));
      expect(await readSimpleReply(client)).toMatchObject({ handle: 9, error: NBD_EINVAL });
      client.write(request(NBD_CMD.read, 10, 0, 512));
      const read = structured ? await readStructuredReply(client) : await readSimpleReply(client, 512);
      expect(read).toMatchObject({ handle: 10, error: 0 });
      client.write(request(NBD_CMD.disc, 11, 0, 0));
      expect(await client.closesWithin(2000)).toBe(true);
    }
    expect((await readFile(volume.path)).equals(Buffer.alloc(volumeBytes))).toBe(true); // nothing was written
    await stillServes();
  });

  it('refuses writes, trims and zeroes on a read-only export with EPERM', async () => {
    const client = await transmitting(false, 'ro');
    client.write(request(NBD_CMD.write, 1, 0, 512, 0, Buffer.alloc(512, 9)));
    client.write(request(NBD_CMD.trim, 2, 0, 512));
    client.write(request(NBD_CMD.writeZeroes, 3, 0, 512));
    const replies = [await readSimpleReply(client), await readSimpleReply(client), await readSimpleReply(client)];
    expect(replies.map((r) => [r.handle, r.error]).sort()).toEqual([
      [1, NBD_EPERM],
      [2, NBD_EPERM],
      [3, NBD_EPERM],
    ]);
    client.destroy();
    expect((await readFile(volume.path)).equals(Buffer.alloc(volumeBytes))).toBe(true);
  });

  it('answers NBD_OPT_EXPORT_NAME with the size and flags (124 zero bytes unless NO_ZEROES), then serves', async () => {
    for (const [clientFlags, name, zeroesBytes] of [
      [1, 'vol', 124],
      [3, 'ro', 0],
    ] as const) {
      const client = await RawClient.connect(port);
      await client.read(18);
      client.write(Buffer.from([0, 0, 0, clientFlags]));
      client.write(option(1, Buffer.from(name)));
      const reply = await client.read(10 + zeroesBytes);
      expect(reply.readBigUInt64BE(0)).toBe(BigInt(volumeBytes));
      const flags = reply.readUInt16BE(8);
      expect(flags & 1).toBe(1); // HAS_FLAGS
      expect((flags & 2) !== 0).toBe(name === 'ro'); // READ_ONLY
      expect(reply.subarray(10).equals(Buffer.alloc(zeroesBytes))).toBe(true);
      client.write(request(NBD_CMD.read, 1, 0, 512));
      expect(await readSimpleReply(client, 512)).toMatchObject({ handle: 1, error: 0 });
      client.destroy();
    }
  });

  it('answers far more small writes than the in-flight bound in one batch: writes done at once free their slot', async () => {
    const client = await transmitting(false);
    const writes = 200; // past nbdInFlightRequestsMax (64): a slot kept after a write would stall the connection
    const frames = Array.from({ length: writes }, (_, i) => request(NBD_CMD.write, i + 1, i * 512, 512, 0, Buffer.alloc(512, (i % 250) + 1)));
    client.write(Buffer.concat(frames));
    const handles: number[] = [];
    for (let i = 0; i < writes; i++) {
      const reply = await readSimpleReply(client);
      expect(reply.error).toBe(0);
      handles.push(reply.handle);
    }
    expect(handles.sort((a, b) => a - b)).toEqual(Array.from({ length: writes }, (_, i) => i + 1));
    client.destroy();
    const bytes = await readFile(volume.path);
    for (let i = 0; i < writes; i++) expect(bytes[i * 512 + 511]).toBe((i % 250) + 1);
  });

  it('answers writes the volume refuses before writing (a locked secondary) with EPERM, and goes on serving', async () => {
    const client = await transmitting(false);
    volume.setWriteLock({ pairId: 'p', generation: 1, message: 'locked for the test', hint: 'unlock it' });
    // Two in one batch: each is refused synchronously (Volume.writeNow throws) and answered.
    client.write(Buffer.concat([request(NBD_CMD.write, 1, 0, 512, 0, Buffer.alloc(512, 9)), request(NBD_CMD.write, 2, 4096, 512, 0, Buffer.alloc(512, 9))]));
    const refused = [await readSimpleReply(client), await readSimpleReply(client)];
    expect(refused.map((r) => [r.handle, r.error]).sort()).toEqual([
      [1, NBD_EPERM],
      [2, NBD_EPERM],
    ]);
    volume.setWriteLock(undefined);
    client.write(request(NBD_CMD.write, 3, 8192, 512, 0, Buffer.alloc(512, 5)));
    expect(await readSimpleReply(client)).toMatchObject({ handle: 3, error: 0 });
    client.destroy();
    const bytes = await readFile(volume.path);
    expect(bytes.subarray(0, 8192).equals(Buffer.alloc(8192))).toBe(true);
    expect(bytes.subarray(8192, 8192 + 512).equals(Buffer.alloc(512, 5))).toBe(true);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/locked for the test/);
  });

  it('disconnects on a bad request magic, a write beyond the discard cap, and a truncated request', async () => {
    const badMagic = await transmitting(true);
    badMagic.write(Buffer.alloc(28, 0xee));
    expect(await badMagic.closesWithin(2000)).toBe(true);
    const hugeWrite = await transmitting(true);
    hugeWrite.write(request(NBD_CMD.write, 1, 0, 2 ** 32 - 1));
    expect(await hugeWrite.closesWithin(2000)).toBe(true);
    const truncated = await transmitting(true);
    truncated.write(request(NBD_CMD.write, 1, 0, 4096, 0, Buffer.alloc(1000, 3)).subarray(0, 28 + 1000));
    truncated.socket.end();
    expect(await truncated.closesWithin(2000)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.connectionCount).toBe(0);
    expect((await readFile(volume.path)).subarray(0, 4096).equals(Buffer.alloc(4096))).toBe(true); // the partial write never landed
    await stillServes();
  });

  it('lands seeded writes of every size, sent in random slices, byte-exact — read into its own buffers and as Node streams', async () => {
    // Sizes around every edge of the read path: tiny frames, 4 KiB, payloads just under and over
    // the direct-read threshold (32 KiB), up to the request bound; flushes (header-only frames)
    // between them; the stream cut anywhere, with pauses, so reads split headers and payloads.
    const random = seededRandom(testSeed ^ 0x5eed);
    const sizes = [1, 27, 28, 29, 4096, 32 * KiB - 1, 32 * KiB, 32 * KiB + 1, 100 * KiB, 300 * KiB, maxRequestBytes];
    const dir = await tempDir();
    for (const directReads of [true, false]) {
      const target = await fileVolume(dir, `stream-${directReads}.img`, volumeBytes, 64 * KiB);
      const streamServer = new NbdServer([volumeNbdExport(target, { name: 'vol', readOnly: false })], {
        maxRequestBytes,
        directReads,
        onError: (e) => errors.push(e),
      });
      const streamPort = (await streamServer.listen({ host: '127.0.0.1', port: 0 })).port!;
      try {
        const client = await RawClient.connect(streamPort);
        const expected = Buffer.alloc(volumeBytes);
        const frames: Buffer[] = [];
        let at = 0;
        let handle = 1;
        for (;;) {
          const bytes = sizes[Math.floor(random() * sizes.length)]!;
          if (at + bytes > volumeBytes) break;
          const data = randomBytes(random, bytes);
          data.copy(expected, at);
          frames.push(request(NBD_CMD.write, handle++, at, bytes, 0, data));
          if (random() < 0.3) frames.push(request(NBD_CMD.flush, handle++, 0, 0));
          at += bytes;
        }
        await handshake(client, 'vol', random() < 0.5);
        const stream = Buffer.concat(frames);
        for (let sent = 0; sent < stream.length;) {
          const slice = Math.min(stream.length - sent, 1 + Math.floor(random() * (random() < 0.5 ? 64 : 300 * KiB)));
          client.write(stream.subarray(sent, sent + slice));
          sent += slice;
          if (random() < 0.2) await new Promise((resolve) => setTimeout(resolve, 1));
        }
        const replies = [];
        for (let i = 1; i < handle; i++) replies.push(await readSimpleReply(client));
        expect(replies.map((r) => r.error).filter((e) => e !== 0)).toEqual([]);
        expect(replies.map((r) => r.handle).sort((a, b) => a - b)).toEqual(Array.from({ length: handle - 1 }, (_, i) => i + 1));
        client.destroy();
        const written = await readFile(target.path);
        expect(written.equals(expected), `directReads ${directReads}: first difference at ${written.findIndex((b, i) => b !== expected[i])}`).toBe(true);
      } finally {
        await streamServer.close();
        await target.close();
      }
    }
    expect(errors).toEqual([]);
  });

  it('answers pipelined requests by handle, and a DISC after a write answers the write first', async () => {
    const client = await transmitting(true);
    const data = Buffer.alloc(64 * KiB, 0x42);
    const burst = [request(NBD_CMD.write, 100, 0, data.length, 1, data)];
    for (let i = 0; i < 20; i++) burst.push(request(NBD_CMD.read, 200 + i, 128 * KiB + i * 4096, 4096));
    burst.push(request(NBD_CMD.flush, 300, 0, 0), request(NBD_CMD.disc, 301, 0, 0));
    client.write(Buffer.concat(burst));
    const handles: number[] = [];
    for (let i = 0; i < 22; i++) handles.push((await readStructuredReply(client)).handle);
    expect(handles.sort((a, b) => a - b)).toEqual([100, ...Array.from({ length: 20 }, (_, i) => 200 + i), 300]);
    expect(await client.closesWithin(2000)).toBe(true);
    expect((await readFile(volume.path)).subarray(0, data.length).equals(data)).toBe(true);
  });

  it('cleans up at once a client that hangs up right after DISC while a request is still running', async () => {
    const slow = new NbdServer(
      [{ ...volumeNbdExport(volume, { name: 'slow', readOnly: false }), write: () => new Promise<void>((resolve) => setTimeout(resolve, 300)) }],
      { onError: (e) => errors.push(e) },
    );
    const slowPort = (await slow.listen({ host: '127.0.0.1', port: 0 })).port!;
    try {
      const client = await RawClient.connect(slowPort);
      await handshake(client, 'slow', true);
      client.write(Buffer.concat([request(NBD_CMD.write, 1, 0, 512, 0, Buffer.alloc(512)), request(NBD_CMD.disc, 2, 0, 0)]));
      await new Promise((resolve) => setTimeout(resolve, 50));
      client.destroy();
      const startMs = Date.now();
      while (slow.connectionCount > 0 && Date.now() - startMs < 3000) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(slow.connectionCount).toBe(0);
      expect(Date.now() - startMs).toBeLessThan(1500);
    } finally {
      await slow.close();
    }
  });

  it('survives seeded random garbage in negotiation and transmission, then serves nbdinfo', async () => {
    console.log(`[nbd-malformed] fast-check seed ${testSeed}`);
    const header = (type: number, flags: number, offsetBytes: number, lengthBytes: number) => request(type, 1, offsetBytes, lengthBytes, flags);
    const requestArb = fc
      .tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 0xffff }), fc.nat({ max: volumeBytes + 8192 }), fc.nat({ max: 2 * maxRequestBytes }))
      .map(([type, flags, offsetBytes, lengthBytes]) => header(type, flags, offsetBytes, lengthBytes));
    const garbageArb = fc.array(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 64 }), requestArb), { minLength: 1, maxLength: 8 });
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.boolean(), garbageArb, async (negotiated, structured, pieces) => {
        const client = negotiated ? await transmitting(structured) : await RawClient.connect(port);
        for (const piece of pieces) client.write(piece);
        client.socket.end();
        // The server ends the connection (the client half-closed); replies in between are ignored.
        expect(await client.closesWithin(3000)).toBe(true);
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.connectionCount).toBe(0);
    await stillServes();
    for (const e of errors) expect(e.message).not.toMatch(/invariant/i);
  });
});
