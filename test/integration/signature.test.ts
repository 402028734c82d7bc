// Signatures: equal regions sign equal, a one-byte difference changes the signature, and
// every signature matches an independent implementation (xxhsum -H2, sha256sum). The pool
// stops feeding when its consumer stops, never reads a replaced file through an old
// descriptor, and fails fast when a worker cannot start.
import fc from 'fast-check';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bitset } from '../../src-engine/bitmap';
import { TidemarkError } from '../../src-engine/errors';
import { SignaturePool, signBytes, signRegions, type HashAlgorithm } from '../../src-engine/signature';
import { startWorkerThreads } from '../../src-engine/signature/pool';
import { randomBytes, seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';
import { runTool } from '../helpers/tools';

const reference: Record<HashAlgorithm, (data: Uint8Array) => string> = {
  'xxh3-128': (data) => runTool('xxhsum', ['-H2', '-'], data).split(/\s+/)[0]!,
  sha256: (data) => runTool('sha256sum', ['-'], data).split(/\s+/)[0]!,
};

describe.each(['xxh3-128', 'sha256'] as const)('%s signatures', (algorithm) => {
  let pool: SignaturePool;
  beforeAll(async () => {
    pool = await SignaturePool.start(algorithm, 2, 64 * 1024); // small chunks: regions span several reads
  });
  afterAll(async () => {
    await pool.dispose();
  });

  it('equal bytes sign equal; one flipped byte signs differently', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 5000 }), fc.nat(), fc.integer({ min: 1, max: 255 }), async (data, at, xor) => {
        const copy = Uint8Array.from(data);
        expect(await signBytes(algorithm, copy)).toEqual(await signBytes(algorithm, data));
        copy[at % copy.length]! ^= xor;
        expect(await signBytes(algorithm, copy)).not.toEqual(await signBytes(algorithm, data));
      }),
    );
  });

  it('the pool signs every region of a file exactly as the reference tool does', async () => {
    const dir = await tempDir();
    const path = join(dir, 'vol.img');
    const regionBytes = 256 * 1024;
    const random = seededRandom(7);
    const data = Buffer.concat([randomBytes(random, 5 * regionBytes), Buffer.alloc(regionBytes), randomBytes(random, 12345)]);
    data.copy(data, 3 * regionBytes, 0, regionBytes); // region 3 equals region 0
    await writeFile(path, data);
    const regionCount = Math.ceil(data.length / regionBytes);
    const locate = (r: number) => ({ path, offsetBytes: r * regionBytes, bytes: Math.min(regionBytes, data.length - r * regionBytes) });
    const progress: number[] = [];
    const map = await signRegions(pool, regionCount, locate, { onProgress: (p) => progress.push(p.regionsDone), batchBytesMax: regionBytes * 2 });
    for (let r = 0; r < regionCount; r++) {
      const span = locate(r);
      expect(map.hex(r), `region ${r}`).toBe(reference[algorithm](data.subarray(span.offsetBytes, span.offsetBytes + span.bytes)));
    }
    expect(map.hex(3)).toBe(map.hex(0));
    expect(progress.at(-1)).toBe(regionCount);
    // A subset: only the regions asked for are signed.
    const subset = new Bitset(regionCount);
    subset.set(1);
    subset.set(6);
    const partial = await signRegions(pool, regionCount, locate, { regions: subset });
    expect(partial.present.popcount()).toBe(2);
    expect(partial.hex(6)).toBe(map.hex(6));
    expect(partial.differing(map).popcount()).toBe(0);
  });

  it('a missing file fails with the path; cancellation stops with CANCELLED', async () => {
    const missing = () => ({ path: '/nonexistent/tidemark.img', offsetBytes: 0, bytes: 4096 });
    await expect(signRegions(pool, 4, missing)).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && e.code === 'NOT_FOUND' && e.message.includes('/nonexistent/tidemark.img'),
    );
    const dir = await tempDir();
    const path = join(dir, 'big.img');
    await writeFile(path, Buffer.alloc(8 * 1024 * 1024, 1));
    const controller = new AbortController();
    const run = signRegions(pool, 2048, (r) => ({ path, offsetBytes: (r % 2048) * 4096, bytes: 4096 }), {
      signal: controller.signal,
      batchBytesMax: 4096,
      onProgress: (p) => p.regionsDone >= 8 && controller.abort(),
    });
    await expect(run).rejects.toSatisfy((e: unknown) => e instanceof TidemarkError && e.code === 'CANCELLED');
    // The pool is still usable after a cancelled run.
    const after = await signRegions(pool, 1, () => ({ path, offsetBytes: 0, bytes: 4096 }));
    expect(after.present.popcount()).toBe(1);
  });
});

describe('signature pool', () => {
  it('a consumer that stops early stops the feeding: the rest of the input is never read', async () => {
    const dir = await tempDir();
    const path = join(dir, 'f.img');
    await writeFile(path, Buffer.alloc(4096 * 64, 1));
    const pool = await SignaturePool.start('sha256', 2);
    try {
      let pulled = 0;
      const items = function* () {
        for (let r = 0; r < 4096; r++) {
          pulled += 1;
          yield { regionIndex: r, location: { path, offsetBytes: (r % 64) * 4096, bytes: 4096 } };
        }
      };
      for await (const batch of pool.sign(items(), { batchBytesMax: 4096 })) {
        expect(batch.regionIndexes).toHaveLength(1);
        break;
      }
      // Two workers with two batches each, and one item of look-ahead per refill.
      expect(pulled).toBeLessThan(16);
    } finally {
      await pool.dispose();
    }
  });

  it('reads a file replaced between two calls afresh, not through an old descriptor', async () => {
    const dir = await tempDir();
    const path = join(dir, 'store.img');
    const locate = () => ({ path, offsetBytes: 0, bytes: 4096 });
    const pool = await SignaturePool.start('sha256', 1);
    try {
      await writeFile(path, Buffer.alloc(4096, 1));
      const before = await signRegions(pool, 1, locate);
      await rm(path);
      await writeFile(path, Buffer.alloc(4096, 2));
      const after = await signRegions(pool, 1, locate);
      expect(after.hex(0)).toBe(Buffer.from(await signBytes('sha256', Buffer.alloc(4096, 2))).toString('hex'));
      expect(after.hex(0)).not.toBe(before.hex(0));
    } finally {
      await pool.dispose();
    }
  });

  it('starting fails fast, naming why, when a worker fails or exits before it is ready', async () => {
    await expect(startWorkerThreads('throw new Error("no hasher here")', {}, 3)).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && e.code === 'IO' && /cannot start a signature worker: no hasher here/.test(e.message),
    );
    await expect(startWorkerThreads('process.exit(0)', {}, 2)).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && /exited with code 0 before it was ready/.test(e.message),
    );
    const ready = await startWorkerThreads('require("node:worker_threads").parentPort.postMessage({ kind: "ready" })', {}, 2);
    expect(ready).toHaveLength(2);
    await Promise.all(ready.map((thread) => thread.terminate()));
  });
});
