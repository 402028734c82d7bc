// serveAgent as the agent process runs it (`tidemark-agent agent serve`), driven by a raw
// RpcPeer: no RpcAgent in between, so none of its client-side checks. A method called in the
// wrong mode (a streaming one unary, a unary one as a stream) or with bad parameters comes back
// as USAGE with a hint, before any work, and the process keeps serving the same connection.
// The agent is a real child process so that a crash (an unhandled rejection) is seen here.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectAgentSocket } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import { RpcPeer, type RpcMessage } from '../../src-engine/transport';
import { agentBundle } from '../helpers/cli';
import { until } from '../helpers/engine';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 40; // two words of bitmap, the last one partial
const unknownSnapshot = '00000000-0000-4000-8000-000000000000';

interface Served {
  readonly child: ChildProcess;
  readonly stderr: () => string;
  readonly peer: RpcPeer;
  /** A registered volume of `regionCount` regions, with bitmap "next" holding regions 3 and 35. */
  readonly volume: string;
  /** A file the home never registered. */
  readonly plain: string;
  readonly dir: string;
}

let served: Served;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

const none: Uint8Array = new Uint8Array(0);
const unary = (method: string, params: Record<string, unknown>, payload: Uint8Array = none): Promise<RpcMessage[]> =>
  served.peer.call(method, params, payload).then((reply) => [reply]);
async function streamed(method: string, params: Record<string, unknown>, payload: Uint8Array = none): Promise<RpcMessage[]> {
  const replies: RpcMessage[] = [];
  for await (const reply of served.peer.stream(method, params, payload)) replies.push(reply);
  return replies;
}

/** The error a request is answered with. */
async function failure(request: Promise<unknown>): Promise<TidemarkError> {
  const error = await request.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof TidemarkError)) throw new Error(`expected a TidemarkError, got ${String(error)}`);
  return error;
}

/** The agent still answers on the same connection, in the same process. */
async function stillServing(): Promise<void> {
  const [info] = await unary('info', {}).catch(async (error: unknown) => {
    await until(() => served.child.exitCode !== null, 2_000, 'the agent to exit').catch(() => undefined);
    throw new Error(`the agent stopped serving (exit code ${served.child.exitCode}): ${String(error)}\n${served.stderr()}`);
  });
  expect(info!.json.pid).toBe(served.child.pid);
  expect(served.child.exitCode).toBeNull();
  expect(served.child.signalCode).toBeNull();
}

async function expectUsage(what: string, request: Promise<unknown>, message?: RegExp): Promise<void> {
  const error = await failure(request).catch((e: Error) => new TidemarkError('INVARIANT', e.message, ''));
  // Soft: one run lists every request answered wrongly.
  expect
    .soft({ what, code: error.code, message: error.message })
    .toEqual({ what, code: 'USAGE', message: message ? expect.stringMatching(message) : expect.any(String) });
  expect.soft(error.hint.length, `${what}: a hint`).toBeGreaterThan(0);
  await stillServing();
}

beforeEach(async () => {
  const dir = await tempDir('tm-');
  const homeDir = join(dir, 'h'); // short: Unix socket paths are limited
  const child = spawn(process.execPath, [agentBundle, '--home', homeDir, 'agent', 'serve'], { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await until(() => stderr.includes('agent: serving') || child.exitCode !== null, 10_000, 'the agent to serve');
  expect(child.exitCode, stderr).toBeNull();
  const peer = new RpcPeer(await connectAgentSocket(homeDir), { role: 'client', keepaliveMs: 0 });
  cleanups.push(() => peer.close());
  await peer.handshake();
  const volume = join(dir, 'v.img');
  const plain = join(dir, 'plain.img');
  served = { child, stderr: () => stderr, peer, volume, plain, dir };
  await unary('volume.create', { path: volume, sizeBytes: regionCount * regionBytes, regionBytes });
  await unary('bitmap.create', { path: volume, name: 'next' });
  for (const regionIndex of [3, 35]) await unary('volume.write', { path: volume, regionIndex }, new Uint8Array(regionBytes).fill(7));
  await writeFile(plain, Buffer.alloc(4 * regionBytes));
});

/** The set regions of bitmap "next", read the right way. */
async function nextRegions(): Promise<number[]> {
  const chunks = await streamed('bitmap.read', { path: served.volume, name: 'next' });
  const bytes = new Uint8Array(Math.ceil(regionCount / 32) * 4);
  for (const { json, payload } of chunks) bytes.set(payload, json.offsetBytes as number);
  const words = new Uint32Array(bytes.buffer);
  const set: number[] = [];
  for (let r = 0; r < regionCount; r++) if ((words[r >>> 5]! >>> (r & 31)) & 1) set.push(r);
  return set;
}

describe('agent RPC server (serveAgent in the agent process)', () => {
  it('a streaming method called unary, or a unary one as a stream, is refused before any work and never crashes the agent', async () => {
    const { volume, plain, dir } = served;
    const missing = join(dir, 'missing.img');
    // Parameters that make each method fail, so a handler started anyway would reject.
    const streaming: [string, Record<string, unknown>][] = [
      ['bitmap.read', { path: volume, name: 'missing' }],
      ['bitmap.read', { path: missing, name: 'next' }],
      ['volume.read', { path: missing, firstRegion: 0, regionCount: 1 }],
      ['volume.read', { path: volume, firstRegion: 0, regionCount: 1, snapshotId: unknownSnapshot }],
      ['volume.signatures', { path: missing, hash: 'sha256', firstRegion: 0, regionCount: 1 }],
      ['volume.signatures', { path: volume, hash: 'xxh3-128', firstRegion: 0, regionCount: 1, snapshotId: unknownSnapshot }],
    ];
    for (const [method, params] of streaming) {
      await expectUsage(`${method} unary`, unary(method, params), new RegExp(`^${method.replace('.', '\\.')} streams`));
      // The right way, the agent's own error comes back.
      expect((await failure(streamed(method, params))).code).toBe('NOT_FOUND');
      await stillServing();
    }

    const unaryMethods: [string, Record<string, unknown>, Uint8Array?][] = [
      ['info', {}],
      ['volume.create', { path: volume, sizeBytes: 4096, regionBytes: 4096 }],
      ['volume.info', { path: missing }],
      ['volume.write', { path: volume, regionIndex: regionCount }, new Uint8Array(regionBytes)],
      ['volume.flush', { path: missing }],
      ['volume.realized', { path: missing }],
      ['snapshot.create', { path: plain }],
      ['snapshot.list', { path: missing }],
      ['snapshot.delete', { path: volume, snapshotId: unknownSnapshot }],
      ['bitmap.create', { path: plain, name: 'next' }],
      ['bitmap.clear', { path: volume, name: 'missing', all: true }],
      ['bitmap.delete', { path: volume, name: 'missing' }],
      ['bitmap.list', { path: plain }],
      ['bitmap.swap', { path: volume, a: 'next', b: 'missing' }],
    ];
    for (const [method, params, payload] of unaryMethods) {
      await expectUsage(`${method} as a stream`, streamed(method, params, payload), new RegExp(`^${method.replace('.', '\\.')} does not stream`));
    }

    // Refused before any work: a create, a write or a clear called as a stream does nothing.
    const fresh = join(dir, 'fresh.img');
    await expectUsage('volume.create as a stream', streamed('volume.create', { path: fresh, sizeBytes: 4096, regionBytes: 4096 }));
    expect(existsSync(fresh)).toBe(false);
    await expectUsage('volume.write as a stream', streamed('volume.write', { path: volume, regionIndex: 20 }, new Uint8Array(regionBytes).fill(1)));
    await expectUsage('bitmap.clear as a stream', streamed('bitmap.clear', { path: volume, name: 'next', all: true }));
    expect(await nextRegions()).toEqual([3, 35]);
    const [region] = await streamed('volume.read', { path: volume, firstRegion: 20, regionCount: 1 });
    expect(region!.payload.every((b) => b === 0)).toBe(true);

    await stillServing();
    expect(served.stderr()).not.toMatch(/Unhandled|TidemarkError|\n\s+at /);
  });

  it('bad parameters sent straight to the agent come back as USAGE with a hint; the connection stays usable', async () => {
    const { volume, dir } = served;
    const words = (...indexes: number[]) => new Uint8Array(Uint32Array.from(indexes).buffer);
    const badNames: unknown[] = ['', 'Next', 'a_b', '../x', 'x'.repeat(33), 'nëxt', 7, null, ['next']];
    for (const name of badNames) {
      const what = `bitmap name ${JSON.stringify(name)}`;
      await expectUsage(`${what} (create)`, unary('bitmap.create', { path: volume, name }));
      await expectUsage(`${what} (read)`, streamed('bitmap.read', { path: volume, name }));
      await expectUsage(`${what} (clear)`, unary('bitmap.clear', { path: volume, name, all: true }));
      await expectUsage(`${what} (delete)`, unary('bitmap.delete', { path: volume, name }));
      await expectUsage(`${what} (swap a)`, unary('bitmap.swap', { path: volume, a: name, b: 'next' }));
      await expectUsage(`${what} (swap b)`, unary('bitmap.swap', { path: volume, a: 'next', b: name }));
    }

    const badIds: unknown[] = [
      'latest',
      '../../etc',
      'ABCDEF00-0000-4000-8000-000000000000',
      `${unknownSnapshot}x`,
      unknownSnapshot.replace(/-/g, ''),
      '',
      42,
      null,
    ];
    for (const snapshotId of badIds) {
      const what = `snapshot id ${JSON.stringify(snapshotId)}`;
      await expectUsage(`${what} (delete)`, unary('snapshot.delete', { path: volume, snapshotId }));
      await expectUsage(`${what} (read)`, streamed('volume.read', { path: volume, firstRegion: 0, regionCount: 1, snapshotId }));
      await expectUsage(`${what} (signatures)`, streamed('volume.signatures', { path: volume, hash: 'sha256', firstRegion: 0, regionCount: 1, snapshotId }));
    }

    // bitmap.clear: the payload is whole little-endian uint32 words, or nothing with all.
    for (const bytes of [1, 2, 3, 5, 7]) {
      await expectUsage(
        `bitmap.clear with a ${bytes}-byte payload`,
        unary('bitmap.clear', { path: volume, name: 'next', all: false }, new Uint8Array(bytes)),
        /32-bit words/,
      );
    }
    await expectUsage('bitmap.clear all with indexes', unary('bitmap.clear', { path: volume, name: 'next', all: true }, words(3)), /all/);
    await expectUsage('bitmap.clear all with a partial word', unary('bitmap.clear', { path: volume, name: 'next', all: true }, new Uint8Array(1)), /all/);
    for (const indexes of [[regionCount], [3, regionCount], [2 ** 32 - 1], [2 ** 31]]) {
      await expectUsage(
        `bitmap.clear of regions ${indexes.join(',')}`,
        unary('bitmap.clear', { path: volume, name: 'next', all: false }, words(...indexes)),
        /outside/,
      );
    }
    await expectUsage('bitmap.clear without all', unary('bitmap.clear', { path: volume, name: 'next' }, words(3)));
    await expectUsage('bitmap.clear with all "yes"', unary('bitmap.clear', { path: volume, name: 'next', all: 'yes' }));
    expect(await nextRegions()).toEqual([3, 35]); // nothing was cleared

    // Region indexes and counts outside the volume, or not indexes at all.
    const range: [string, Record<string, unknown>][] = [
      ['volume.read', { firstRegion: regionCount, regionCount: 1 }],
      ['volume.read', { firstRegion: 0, regionCount: regionCount + 1 }],
      ['volume.read', { firstRegion: -1, regionCount: 1 }],
      ['volume.read', { firstRegion: 0.5, regionCount: 1 }],
      ['volume.read', { firstRegion: 0, regionCount: 2 ** 31 + 1 }],
      ['volume.read', { firstRegion: 2 ** 53, regionCount: 1 }],
      ['volume.signatures', { hash: 'sha256', firstRegion: regionCount - 1, regionCount: 2 }],
      ['volume.signatures', { hash: 'sha256', firstRegion: 0, regionCount: -1 }],
    ];
    for (const [method, params] of range) await expectUsage(`${method} ${JSON.stringify(params)}`, streamed(method, { path: volume, ...params }));
    for (const regionIndex of [regionCount, -1, 1.5, 2 ** 32, '0']) {
      await expectUsage(`volume.write of region ${regionIndex}`, unary('volume.write', { path: volume, regionIndex }, new Uint8Array(regionBytes)));
    }

    // Unknown keys, missing keys and wrong types.
    const malformed: [string, Record<string, unknown>, Uint8Array?][] = [
      ['info', { verbose: true }],
      ['volume.info', { path: volume, extra: 1 }],
      ['bitmap.read', { path: volume, name: 'next', offsetBytes: 0 }],
      ['bitmap.list', { path: volume, name: 'next' }],
      ['snapshot.list', { path: volume, snapshotId: unknownSnapshot }],
      ['volume.info', {}],
      ['volume.info', { path: 42 }],
      ['volume.info', { path: '' }],
      ['volume.info', { path: join(dir, 'a\0b') }],
      ['volume.info', { path: volume, regionBytes: '4096' }],
      ['volume.create', { path: join(dir, 'new.img'), sizeBytes: '4096', regionBytes: 4096 }],
      ['volume.create', { path: join(dir, 'new.img'), sizeBytes: 4096 }],
      ['volume.create', { path: join(dir, 'new.img'), sizeBytes: -4096, regionBytes: 4096 }],
      ['volume.create', { path: join(dir, 'new.img'), sizeBytes: 4096, regionBytes: 3000 }],
      ['volume.create', { path: join(dir, 'new.img'), sizeBytes: 2 ** 60, regionBytes: 4096 }],
      ['volume.flush', { path: [volume] }],
      ['snapshot.create', { path: volume, label: 7 }],
      ['snapshot.create', { path: volume, label: 'x'.repeat(257) }],
      ['bitmap.swap', { path: volume, a: 'next' }],
      ['bitmap.swap', { path: volume, a: 'next', b: 'next' }],
      ['bitmap.list', { path: volume }, new Uint8Array(4)],
      ['info', {}, new Uint8Array(1)],
      ['no.such.method', {}],
    ];
    for (const [method, params, payload] of malformed) {
      await expectUsage(`${method} ${JSON.stringify(params)}${payload ? ` + ${payload.length} bytes` : ''}`, unary(method, params, payload));
    }
    for (const params of [
      { path: volume, hash: 'md5', firstRegion: 0, regionCount: 1 },
      { path: volume, firstRegion: 0, regionCount: 1 },
    ]) {
      await expectUsage(`volume.signatures ${JSON.stringify(params)}`, streamed('volume.signatures', params));
    }
    expect(existsSync(join(dir, 'new.img'))).toBe(false);

    // Still usable: the right requests work on the same connection.
    expect((await unary('bitmap.list', { path: volume }))[0]!.json.bitmaps).toEqual([expect.objectContaining({ name: 'next', setCount: 2 })]);
    expect(await nextRegions()).toEqual([3, 35]);
    await unary('bitmap.clear', { path: volume, name: 'next', all: false }, words(3));
    expect(await nextRegions()).toEqual([35]);
    expect(served.stderr()).not.toMatch(/Unhandled|TidemarkError|\n\s+at /);
  });
});
