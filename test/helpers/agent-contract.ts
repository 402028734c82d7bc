// The AgentApi contract suite: the same tests run against every AgentApi implementation —
// in-process, over RPC on a Unix socket (test/integration/agent-contract.test.ts) and over SSH
// (test/system/agent-contract-ssh.test.ts). Both sides must behave identically, errors included.
import { createHash } from 'node:crypto';
import { statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AgentApi, BitmapContents, PairMember } from '../../src-engine/agent';
import { rpcBitmapChunkBytes } from '../../src-engine/constants';
import { TidemarkError } from '../../src-engine/errors';
import { signBytes } from '../../src-engine/signature';
import { randomBytes, seededRandom } from './random';

const isCode = (code: string) => (e: unknown) => e instanceof TidemarkError && e.code === code && e.hint.length > 0;

export interface ContractAgent {
  readonly agent: AgentApi;
  /** A directory the agent's host can write (volumes are created in it). */
  readonly dir: string;
  /** Disposes `agent` — for a daemon, stops its process — and returns a new agent on the same home. */
  reopen(): Promise<AgentApi>;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MiB = 2 ** 20;

/** Every region of a read starting at `firstRegion`, checking they come in order. */
async function readAll(regions: AsyncIterable<{ regionIndex: number; data: Uint8Array }>, firstRegion = 0): Promise<Buffer[]> {
  const read: Buffer[] = [];
  for await (const region of regions) {
    expect(region.regionIndex).toBe(firstRegion + read.length);
    read.push(Buffer.from(region.data));
  }
  return read;
}

async function sha256Signatures(agent: AgentApi, path: string, regionCount: number, snapshotId?: string): Promise<string[]> {
  const hex: string[] = [];
  for await (const batch of agent.signatures(path, 'sha256', 0, regionCount, { snapshotId })) {
    batch.regionIndexes.forEach((r, i) => (hex[r] = Buffer.from(batch.signatures.subarray(i * 32, (i + 1) * 32)).toString('hex')));
  }
  return hex;
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** What a stream of a snapshot deleted under it fails with. */
const deletedMidStream = (e: unknown) =>
  e instanceof TidemarkError && e.code === 'NOT_FOUND' && /^snapshot [0-9a-f-]{36} of .+ was deleted while being read$/.test(e.message) && e.hint.length > 0;

/** Appends what `iterator` yields to `into` until it ends or fails. */
async function drain<T>(iterator: AsyncIterator<T>, into: T[]): Promise<void> {
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) into.push(next.value);
}

/** The set regions of a bitmap, in order. */
function setRegions(bitmap: BitmapContents): number[] {
  const regions: number[] = [];
  for (let r = 0; r < bitmap.regionCount; r++) if ((bitmap.words[r >>> 5]! >>> (r & 31)) & 1) regions.push(r);
  expect(bitmap.setCount).toBe(regions.length);
  expect(bitmap.words.length).toBe(Math.ceil(bitmap.regionCount / 32));
  return regions;
}

const sortedUnion = (...lists: number[][]) => [...new Set(lists.flat())].sort((a, b) => a - b);

/** `count` distinct regions below `regionCount`, drawn from `random`, sorted. */
function pickRegions(random: () => number, regionCount: number, count: number): number[] {
  const picked = new Set<number>();
  while (picked.size < count) picked.add(Math.floor(random() * regionCount));
  return [...picked].sort((a, b) => a - b);
}

export interface ContractTarget {
  readonly name: string;
  make(): Promise<ContractAgent>;
  /** The pid and Node version the agent must report. */
  readonly expectedInfo: () => Promise<{ pid: number; nodeVersion: string }>;
}

/** The AgentApi contract: every implementation must pass it, errors included. */
export function agentContract(target: ContractTarget): void {
  const makeAgent = () => target.make();
  describe(`AgentApi contract (${target.name})`, () => {
    it('reports versions', async () => {
      const { agent } = await makeAgent();
      const info = await agent.info();
      const expected = await target.expectedInfo();
      expect(info.nodeVersion).toBe(expected.nodeVersion);
      expect(info.pid).toBe(expected.pid);
      expect(info.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
    });

    it('reports the free space of its home', async () => {
      const { agent, dir } = await makeAgent();
      await agent.volumeCreate(join(dir, 'v.img'), 4096, 4096); // the home exists from now on
      const free = async (path: string) => {
        const stats = await statfs(path);
        return stats.bavail * stats.bsize;
      };
      const { homeDir } = await agent.info();
      const before = await free(homeDir);
      const { homeFreeBytes } = await agent.info();
      const after = await free(homeDir);
      expect(Number.isSafeInteger(homeFreeBytes) && homeFreeBytes > 0).toBe(true);
      // Other tests write meanwhile: the agent's figure lies between two taken around it, give or take.
      expect(homeFreeBytes).toBeGreaterThanOrEqual(Math.min(before, after) - 256 * MiB);
      expect(homeFreeBytes).toBeLessThanOrEqual(Math.max(before, after) + 256 * MiB);
    });

    it('creates a volume, writes and reads regions byte-exactly, tracks realization', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      const regionBytes = 1024 * 1024;
      const record = await agent.volumeCreate(path, 4 * regionBytes + 4096, regionBytes);
      expect(record.regionBytes).toBe(regionBytes);
      const random = seededRandom(11);
      const data = [randomBytes(random, regionBytes), randomBytes(random, 4096)];
      await agent.writeRegion(path, 1, data[0]!);
      await agent.writeRegion(path, 4, data[1]!); // the short last region
      await agent.flush(path);
      const read: { regionIndex: number; data: Uint8Array }[] = [];
      for await (const region of agent.readRegions(path, 0, 5)) read.push(region);
      expect(read.map((r) => r.regionIndex)).toEqual([0, 1, 2, 3, 4]);
      expect(Buffer.from(read[1]!.data).equals(data[0]!)).toBe(true);
      expect(Buffer.from(read[4]!.data).equals(data[1]!)).toBe(true);
      expect(read[0]!.data.every((b) => b === 0)).toBe(true);
      const realized = await agent.realizedMap(path);
      expect(realized).toMatchObject({ regionCount: 5, source: 'tracked' });
      expect(realized.words[0]).toBe(0b10010);
      expect(await agent.volumeInfo(path)).toMatchObject({ regions: 5, realizedRegions: 2, realizedSource: 'tracked' });
    });

    it('lists the volumes registered in its home (created or adopted), not other files', async () => {
      const { agent, dir } = await makeAgent();
      const created = join(dir, 'listed-created.img');
      const adopted = join(dir, 'listed-adopted.img');
      const stray = join(dir, 'listed-stray.img');
      await agent.volumeCreate(created, 3 * MiB, MiB);
      await writeFile(adopted, Buffer.alloc(2 * MiB));
      await writeFile(stray, Buffer.alloc(MiB));
      await agent.volumeAdopt(adopted, 256 * 1024);
      await agent.volumeInfo(stray); // read, not registered
      const listed = await agent.volumeList();
      const mine = listed.filter((v) => v.path.startsWith(dir));
      expect(mine.map((v) => [v.path.slice(dir.length), v.sizeBytes, v.regionBytes])).toEqual([
        ['/listed-adopted.img', 2 * MiB, 256 * 1024],
        ['/listed-created.img', 3 * MiB, MiB],
      ]);
      expect(mine.every((v) => /^[0-9a-f]{16}$/.test(v.volumeId))).toBe(true);
    });

    it('streams signatures equal to the reference for every region, both hashes', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      await agent.volumeCreate(path, 8 * 65536, 65536);
      const random = seededRandom(5);
      const regions = Array.from({ length: 8 }, () => randomBytes(random, 65536));
      for (const [i, data] of regions.entries()) await agent.writeRegion(path, i, data);
      for (const hash of ['xxh3-128', 'sha256'] as const) {
        const seen = new Map<number, string>();
        for await (const batch of agent.signatures(path, hash, 2, 5)) {
          const width = batch.signatures.length / batch.regionIndexes.length;
          batch.regionIndexes.forEach((r, i) => seen.set(r, Buffer.from(batch.signatures.subarray(i * width, (i + 1) * width)).toString('hex')));
        }
        expect([...seen.keys()].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6]);
        for (const [r, hex] of seen) {
          const expected =
            hash === 'sha256' ? createHash('sha256').update(regions[r]!).digest('hex') : Buffer.from(await signBytes(hash, regions[r]!)).toString('hex');
          expect(hex, `region ${r} ${hash}`).toBe(expected);
        }
      }
    });

    it('errors keep their code and hint: missing volume, regions out of range, existing file', async () => {
      const { agent, dir } = await makeAgent();
      await expect(agent.volumeInfo(join(dir, 'missing.img'))).rejects.toSatisfy(isCode('NOT_FOUND'));
      const path = join(dir, 'v.img');
      await agent.volumeCreate(path, 4 * 4096, 4096);
      await expect(agent.writeRegion(path, 4, new Uint8Array(4096))).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.writeRegion(path, 0, new Uint8Array(10))).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.volumeCreate(path, 4096, 4096)).rejects.toSatisfy(isCode('ALREADY_EXISTS'));
      const reading = async () => {
        for await (const _ of agent.readRegions(path, 2, 5)) void _;
      };
      await expect(reading()).rejects.toSatisfy(isCode('USAGE'));
    });

    it('a cancelled read stops with CANCELLED', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      await agent.volumeCreate(path, 64 * 4096, 4096);
      const controller = new AbortController();
      let got = 0;
      const reading = async () => {
        for await (const _ of agent.readRegions(path, 0, 64, { signal: controller.signal })) {
          void _;
          got += 1;
          if (got === 3) controller.abort();
        }
      };
      await expect(reading()).rejects.toSatisfy((e: unknown) => e instanceof TidemarkError && e.code === 'CANCELLED');
      expect(got).toBeLessThan(64);
    });

    it('a snapshot reads and signs the volume as it was, whatever is written after it', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      const regionBytes = 65536;
      await agent.volumeCreate(path, 5 * regionBytes + 4096, regionBytes); // a short last region
      const random = seededRandom(23);
      const sizes = [regionBytes, regionBytes, regionBytes, regionBytes, regionBytes, 4096];
      const before = sizes.map((bytes) => randomBytes(random, bytes));
      for (const [r, data] of before.entries()) await agent.writeRegion(path, r, data);
      const startedMs = Date.now();
      const first = await agent.snapshotCreate(path, { label: 'before' });
      expect(first).toMatchObject({ label: 'before', sizeBytes: 5 * regionBytes + 4096, regionBytes, regionCount: 6 });
      expect(first.snapshotId).toMatch(uuid);
      expect(first.createdAtMs).toBeGreaterThanOrEqual(startedMs - 1000);
      expect(first.createdAtMs).toBeLessThanOrEqual(Date.now() + 1000);
      expect(['reflink', 'cow']).toContain(first.kind);
      expect(first.copiedRegions).toBe(first.kind === 'cow' ? 0 : null);

      const after = before.map((data, r) => (r % 2 === 1 ? randomBytes(random, data.length) : data));
      for (const r of [1, 3, 5]) await agent.writeRegion(path, r, after[r]!);
      const fromSnapshot = await readAll(agent.readRegions(path, 0, 6, { snapshotId: first.snapshotId }));
      fromSnapshot.forEach((data, r) => expect(data.equals(before[r]!), `snapshot region ${r}`).toBe(true));
      (await readAll(agent.readRegions(path, 0, 6))).forEach((data, r) => expect(data.equals(after[r]!), `live region ${r}`).toBe(true));
      expect(await sha256Signatures(agent, path, 6, first.snapshotId)).toEqual(before.map(sha256));
      expect(await sha256Signatures(agent, path, 6)).toEqual(after.map(sha256));

      const second = await agent.snapshotCreate(path);
      await agent.writeRegion(path, 1, randomBytes(random, regionBytes));
      expect((await readAll(agent.readRegions(path, 1, 1, { snapshotId: second.snapshotId }), 1))[0]).toEqual(after[1]);
      const listed = await agent.snapshotList(path);
      expect(listed.damaged).toEqual([]);
      expect(listed.snapshots.map((s) => s.snapshotId)).toEqual([first.snapshotId, second.snapshotId]);
      if (first.kind === 'cow') expect(listed.snapshots.map((s) => s.copiedRegions)).toEqual([3, 1]);

      await agent.snapshotDelete(path, first.snapshotId);
      expect((await agent.snapshotList(path)).snapshots.map((s) => s.snapshotId)).toEqual([second.snapshotId]);
      await expect(readAll(agent.readRegions(path, 0, 1, { snapshotId: first.snapshotId }))).rejects.toSatisfy(isCode('NOT_FOUND'));
      expect((await readAll(agent.readRegions(path, 3, 1, { snapshotId: second.snapshotId }), 3))[0]).toEqual(after[3]);
    });

    it('a snapshot deleted while it is read fails the read with NOT_FOUND, never yielding live bytes for it', async () => {
      const { agent, dir } = await makeAgent();
      // One chunk per region, and more regions than any read-ahead (RPC credit) holds.
      const path = join(dir, 'v.img');
      const regionCount = 64;
      await agent.volumeCreate(path, regionCount * 4096, 4096);
      const random = seededRandom(71);
      const before = Array.from({ length: regionCount }, () => randomBytes(random, 4096));
      for (const [r, data] of before.entries()) await agent.writeRegion(path, r, data);
      const snapshot = await agent.snapshotCreate(path);
      const reading = agent.readRegions(path, 0, regionCount, { snapshotId: snapshot.snapshotId })[Symbol.asyncIterator]();
      const read = [(await reading.next()).value as { regionIndex: number; data: Uint8Array }];
      await agent.snapshotDelete(path, snapshot.snapshotId);
      for (let r = 0; r < regionCount; r++) await agent.writeRegion(path, r, randomBytes(random, 4096)); // not copied aside any more
      await expect(drain(reading, read)).rejects.toSatisfy(deletedMidStream);
      expect(read.length).toBeLessThan(regionCount);
      read.forEach(({ regionIndex, data }, i) => {
        expect(regionIndex).toBe(i);
        expect(Buffer.from(data).equals(before[i]!), `region ${i}`).toBe(true);
      });
      expect((await readAll(agent.readRegions(path, 0, 1)))[0]!.equals(before[0]!)).toBe(false); // the volume reads on
    });

    it('a snapshot deleted while it is signed fails the signatures with NOT_FOUND, never yielding live ones for it', async () => {
      const { agent, dir } = await makeAgent();
      // A batch holds one region this large, so there are more batches than any read-ahead (RPC credit) holds.
      const big = join(dir, 'big.img');
      const bigRegionBytes = 16 * MiB;
      const bigRegions = 16;
      await agent.volumeCreate(big, bigRegions * bigRegionBytes, bigRegionBytes); // sparse: every region zeros
      const zeros = Buffer.from(await signBytes('xxh3-128', new Uint8Array(bigRegionBytes))).toString('hex');
      const bigSnapshot = await agent.snapshotCreate(big);
      const signing = agent.signatures(big, 'xxh3-128', 0, bigRegions, { snapshotId: bigSnapshot.snapshotId })[Symbol.asyncIterator]();
      const batches = [(await signing.next()).value as { regionIndexes: readonly number[]; signatures: Uint8Array }];
      await agent.snapshotDelete(big, bigSnapshot.snapshotId);
      await agent.writeRegion(big, bigRegions - 1, new Uint8Array(bigRegionBytes).fill(0xee));
      await expect(drain(signing, batches)).rejects.toSatisfy(deletedMidStream);
      const signed = batches.flatMap((batch) => batch.regionIndexes);
      expect(signed.length).toBeLessThan(bigRegions);
      for (const batch of batches) {
        batch.regionIndexes.forEach((r, i) => expect(Buffer.from(batch.signatures.subarray(i * 16, (i + 1) * 16)).toString('hex'), `region ${r}`).toBe(zeros));
      }
    });

    it('bitmaps record every region written through the agent; clear, swap, delete', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      const regionCount = 100; // four words, the last one partial
      await agent.volumeCreate(path, regionCount * 4096, 4096);
      expect(await agent.bitmapCreate(path, 'current')).toMatchObject({ name: 'current', regionCount, setCount: 0 });
      await agent.writeRegion(path, 7, new Uint8Array(4096)); // before "next" exists: only "current" records it
      await agent.bitmapCreate(path, 'next');
      const random = seededRandom(41);
      const written = pickRegions(random, regionCount, 20);
      for (const r of written) await agent.writeRegion(path, r, randomBytes(random, 4096));
      expect(setRegions(await agent.bitmapRead(path, 'next'))).toEqual(written);
      expect(setRegions(await agent.bitmapRead(path, 'current'))).toEqual(sortedUnion([7], written));

      const shipped = written.slice(0, 5);
      await agent.bitmapClear(path, 'next', shipped);
      expect(setRegions(await agent.bitmapRead(path, 'next'))).toEqual(written.slice(5));
      const ids = Object.fromEntries((await agent.bitmapList(path)).map((b) => [b.name, b.bitmapId]));
      await agent.bitmapSwap(path, 'current', 'next');
      const swapped = await agent.bitmapList(path);
      expect(swapped.map((b) => [b.name, b.bitmapId, b.setCount])).toEqual([
        ['current', ids.next, 15],
        ['next', ids.current, sortedUnion([7], written).length],
      ]);
      expect(setRegions(await agent.bitmapRead(path, 'current'))).toEqual(written.slice(5));

      await agent.bitmapClear(path, 'next');
      expect(setRegions(await agent.bitmapRead(path, 'next'))).toEqual([]);
      await agent.writeRegion(path, 99, new Uint8Array(4096));
      expect(setRegions(await agent.bitmapRead(path, 'next'))).toEqual([99]);
      expect(setRegions(await agent.bitmapRead(path, 'current'))).toEqual(sortedUnion(written.slice(5), [99]));

      await agent.bitmapDelete(path, 'current');
      expect((await agent.bitmapList(path)).map((b) => b.name)).toEqual(['next']);
      await expect(agent.bitmapRead(path, 'current')).rejects.toSatisfy(isCode('NOT_FOUND'));
    });

    it('a bitmap larger than one RPC chunk arrives whole', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'big.img');
      const chunkRegions = rpcBitmapChunkBytes * 8;
      const regionCount = chunkRegions + 40; // one chunk and 8 bytes of words
      await agent.volumeCreate(path, regionCount * 4096, 4096); // sparse
      await agent.bitmapCreate(path, 'next');
      const written = [0, chunkRegions / 2 + 3, chunkRegions - 1, chunkRegions, regionCount - 1];
      for (const r of written) await agent.writeRegion(path, r, new Uint8Array(4096).fill(1));
      const bitmap = await agent.bitmapRead(path, 'next');
      expect(bitmap.regionCount).toBe(regionCount);
      expect(bitmap.setCount).toBe(written.length);
      expect(bitmap.words.length).toBe(Math.ceil(regionCount / 32));
      const set: number[] = [];
      bitmap.words.forEach((word, w) => {
        for (let bit = 0; word !== 0 && bit < 32; bit++) if ((word >>> bit) & 1) set.push(w * 32 + bit);
      });
      expect(set).toEqual(written);
    });

    it('snapshots and bitmaps survive closing and reopening, and the snapshot stays protected', async () => {
      const contract = await makeAgent();
      const path = join(contract.dir, 'v.img');
      let agent = contract.agent;
      await agent.volumeCreate(path, 16 * 4096, 4096);
      const random = seededRandom(57);
      const before = Array.from({ length: 16 }, () => randomBytes(random, 4096));
      for (const [r, data] of before.entries()) await agent.writeRegion(path, r, data);
      const snapshot = await agent.snapshotCreate(path, { label: 'kept' });
      await agent.bitmapCreate(path, 'unused');
      await agent.bitmapCreate(path, 'next');
      await agent.writeRegion(path, 2, randomBytes(random, 4096));
      await agent.bitmapCreate(path, 'current');
      for (const r of [5, 11]) await agent.writeRegion(path, r, randomBytes(random, 4096));
      await agent.bitmapDelete(path, 'unused');
      await agent.bitmapSwap(path, 'next', 'current'); // the last change: it alone must be durable
      const listedBefore = await agent.bitmapList(path);
      expect(listedBefore.map((b) => [b.name, b.setCount])).toEqual([
        ['current', 3],
        ['next', 2],
      ]);

      agent = await contract.reopen();
      expect(await agent.bitmapList(path)).toEqual(listedBefore);
      expect(setRegions(await agent.bitmapRead(path, 'current'))).toEqual([2, 5, 11]);
      expect(setRegions(await agent.bitmapRead(path, 'next'))).toEqual([5, 11]);
      const { snapshots } = await agent.snapshotList(path);
      expect(snapshots).toEqual([expect.objectContaining({ snapshotId: snapshot.snapshotId, label: 'kept', createdAtMs: snapshot.createdAtMs })]);
      // After the reopen a write must still copy the old bytes aside first, and still be recorded.
      await agent.writeRegion(path, 0, randomBytes(random, 4096));
      expect((await readAll(agent.readRegions(path, 0, 16, { snapshotId: snapshot.snapshotId }))).map(sha256)).toEqual(before.map(sha256));
      expect(setRegions(await agent.bitmapRead(path, 'next'))).toEqual([0, 5, 11]);
      expect(setRegions(await agent.bitmapRead(path, 'current'))).toEqual([0, 2, 5, 11]);
    });

    it('snapshot and bitmap errors keep their code and hint', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      await agent.volumeCreate(path, 8 * 4096, 4096);
      const unknown = '00000000-0000-4000-8000-000000000000';
      await expect(readAll(agent.readRegions(path, 0, 1, { snapshotId: unknown }))).rejects.toSatisfy(isCode('NOT_FOUND'));
      await expect(sha256Signatures(agent, path, 1, unknown)).rejects.toSatisfy(isCode('NOT_FOUND'));
      await expect(agent.snapshotDelete(path, unknown)).rejects.toSatisfy(isCode('NOT_FOUND'));
      await expect(agent.snapshotDelete(path, '../../etc')).rejects.toSatisfy(isCode('USAGE'));
      await expect(readAll(agent.readRegions(path, 0, 1, { snapshotId: 'latest' }))).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.snapshotCreate(path, { label: 'x'.repeat(257) })).rejects.toSatisfy(isCode('USAGE'));

      await expect(agent.bitmapRead(path, 'next')).rejects.toSatisfy(isCode('NOT_FOUND'));
      await expect(agent.bitmapClear(path, 'next')).rejects.toSatisfy(isCode('NOT_FOUND'));
      await expect(agent.bitmapDelete(path, 'next')).rejects.toSatisfy(isCode('NOT_FOUND'));
      for (const bad of ['', 'Next', 'a_b', '../x', 'x'.repeat(33)]) await expect(agent.bitmapCreate(path, bad), bad).rejects.toSatisfy(isCode('USAGE'));
      await agent.bitmapCreate(path, 'x'.repeat(32));
      await agent.bitmapCreate(path, 'next');
      await expect(agent.bitmapCreate(path, 'next')).rejects.toSatisfy(isCode('ALREADY_EXISTS'));
      await expect(agent.bitmapSwap(path, 'next', 'current')).rejects.toSatisfy(isCode('NOT_FOUND'));
      await expect(agent.bitmapSwap(path, 'next', 'next')).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.bitmapClear(path, 'next', [8])).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.bitmapClear(path, 'next', [-1])).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.bitmapClear(path, 'next', [1.5])).rejects.toSatisfy(isCode('USAGE'));
      expect((await agent.bitmapList(path)).map((b) => b.name)).toEqual(['next', 'x'.repeat(32)]);

      const plain = join(dir, 'plain.img'); // a volume this home never registered
      await writeFile(plain, Buffer.alloc(4 * 4096));
      await expect(agent.snapshotCreate(plain)).rejects.toSatisfy(isCode('UNSUPPORTED'));
      await expect(agent.bitmapCreate(plain, 'next')).rejects.toSatisfy(isCode('UNSUPPORTED'));
      await expect(agent.bitmapList(plain)).rejects.toSatisfy(isCode('UNSUPPORTED'));
    });
    it('a secondary member is locked: plain writes PERMISSION, its pair at an old generation STALE, its pair at its generation pass', async () => {
      const { agent, dir, reopen } = await makeAgent();
      const path = join(dir, 'secondary.img');
      await agent.volumeCreate(path, 8 * 4096, 4096);
      const member = memberOf('secondary');
      expect(await agent.pairJoin(path, member)).toEqual(member);
      expect(await agent.pairJoin(path, member)).toEqual(member); // idempotent
      const data = Buffer.alloc(4096, 7);
      const refused = (e: unknown) => isCode('PERMISSION')(e) && /secondary of pair "p1" and is read-only until failover/.test((e as Error).message);
      await expect(agent.writeRegion(path, 1, data)).rejects.toSatisfy(refused);
      await expect(agent.writeRegion(path, 1, data, { auth: { pairId: otherPairId, generation: 1 } })).rejects.toSatisfy(refused);
      await expect(agent.writeRegion(path, 1, data, { auth: { pairId: member.pairId, generation: 2 } })).rejects.toSatisfy(isCode('STALE'));
      await agent.writeRegion(path, 1, data, { auth: { pairId: member.pairId, generation: 1 } });
      await expect(agent.pairJoin(path, { ...memberOf('secondary'), pairId: otherPairId })).rejects.toSatisfy(isCode('ALREADY_EXISTS'));
      await expect(agent.pairJoin(path, { ...member, role: 'primary' })).rejects.toSatisfy(isCode('ALREADY_EXISTS'));

      // The lock is durable: a reopened agent (another process for a daemon) still refuses.
      const again = await reopen();
      expect((await again.volumeState(path)).members).toEqual([member]);
      await expect(again.writeRegion(path, 2, data)).rejects.toSatisfy(refused);
      expect((await again.pairUpdate(path, member.pairId, { generation: 2, lcsSnapshotId: 'x' })).generation).toBe(2);
      await expect(again.writeRegion(path, 2, data, { auth: { pairId: member.pairId, generation: 1 } })).rejects.toSatisfy(isCode('STALE'));
      const marker = {
        imageId: '00000000-0000-4000-8000-0000000000ee',
        manifestSha256: 'a'.repeat(64),
        pairId: member.pairId,
        generation: 2,
        nextRegion: 3,
        startedAt: '2026-11-23T00:00:00.000Z',
      };
      await expect(again.importMark(path, marker)).rejects.toSatisfy(isCode('PERMISSION'));
      await again.importMark(path, marker, { auth: { pairId: member.pairId, generation: 2 } });
      expect((await again.volumeState(path)).importing).toEqual(marker);
      await again.importMark(path, null, { auth: { pairId: member.pairId, generation: 2 } });
      expect((await again.volumeState(path)).importing).toBeNull();
      await again.pairLeave(path, member.pairId);
      await again.pairLeave(path, member.pairId); // idempotent
      expect((await again.volumeState(path)).members).toEqual([]);
      await again.writeRegion(path, 2, data);
      const read = await readAll(again.readRegions(path, 0, 3));
      expect(read[1]!.equals(data) && read[2]!.equals(data)).toBe(true); // leaving kept the bytes
    });

    it('adopts an unregistered file with its data; a primary may be in several pairs', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'plain.img');
      const data = Buffer.alloc(4 * 4096);
      data.fill(9, 4096, 8192);
      await writeFile(path, data);
      expect((await agent.volumeState(path)).volumeId).toBeNull();
      await expect(agent.pairJoin(path, memberOf('primary', 4))).rejects.toSatisfy(isCode('UNSUPPORTED'));
      await agent.readRegions(path, 0, 1)[Symbol.asyncIterator]().next(); // opened unregistered first
      const record = await agent.volumeAdopt(path, 4096);
      expect(await agent.volumeAdopt(path, 4096)).toEqual(record);
      await expect(agent.volumeAdopt(path, 8192)).rejects.toSatisfy(isCode('SIZE_MISMATCH'));
      await expect(agent.volumeAdopt(join(dir, 'missing.img'), 4096)).rejects.toSatisfy(isCode('NOT_FOUND'));
      await agent.pairJoin(path, memberOf('primary', 4));
      await agent.pairJoin(path, { ...memberOf('primary', 4), pairId: otherPairId, name: 'p2' });
      const state = await agent.volumeState(path);
      expect(state.volumeId).toMatch(/^[0-9a-f]{16}$/);
      expect(state.members.map((m) => m.name)).toEqual(['p1', 'p2']);
      const realized = await agent.realizedMap(path);
      expect(realized).toMatchObject({ regionCount: 4, source: 'tracked' });
      expect(realized.words[0]).toBe(0b10); // seeded by a zero scan
      await agent.writeRegion(path, 3, Buffer.alloc(4096, 1)); // a primary takes writes
      expect((await readAll(agent.readRegions(path, 0, 4)))[1]!.equals(data.subarray(4096, 8192))).toBe(true);
      await expect(agent.pairJoin(path, { ...memberOf('secondary', 4), pairId: '00000000-0000-4000-8000-00000000000c' })).rejects.toSatisfy(
        isCode('ALREADY_EXISTS'),
      );
      await expect(agent.pairJoin(join(dir, 'small.img'), memberOf('secondary', 4))).rejects.toSatisfy(isCode('NOT_FOUND'));
      await agent.volumeCreate(join(dir, 'small.img'), 2 * 4096, 4096);
      await expect(agent.pairJoin(join(dir, 'small.img'), memberOf('secondary', 4))).rejects.toSatisfy(isCode('SIZE_MISMATCH'));
      await expect(agent.pairUpdate(path, '00000000-0000-4000-8000-00000000000d', { generation: 3 })).rejects.toSatisfy(isCode('NOT_FOUND'));
    });

    it('tracks every write to a primary: take clears OOS, a write re-marks, settle and requeue; MOOS survives reopening', async () => {
      const { agent, dir, reopen } = await makeAgent();
      const path = join(dir, 'tracked.img');
      await agent.volumeCreate(path, 64 * 4096, 4096);
      const pairId = memberOf('primary').pairId;
      await expect(agent.trackingState(path, pairId)).rejects.toSatisfy(isCode('NOT_FOUND'));
      await agent.pairJoin(path, { ...memberOf('primary', 64), predictRegions: 2 });
      for (const r of [3, 4, 40]) await agent.writeRegion(path, r, Buffer.alloc(4096, r));
      expect(await agent.trackingState(path, pairId)).toMatchObject({ regionCount: 64, oosRegions: 3, inFlightRegions: 0, predictRegions: 2 });
      expect(setRegions(await agent.trackingMap(path, pairId, 'oos'))).toEqual([3, 4, 40]);
      expect(setRegions(await agent.trackingMap(path, pairId, 'moos'))).toEqual(expect.arrayContaining([3, 4, 40]));
      expect(await agent.trackingTake(path, pairId, 2, 4)).toEqual([4, 40]); // from region 4 on, at most 2
      await agent.writeRegion(path, 40, Buffer.alloc(4096, 1)); // written again while taken: out of sync again
      expect(setRegions(await agent.trackingMap(path, pairId, 'oos'))).toEqual([3, 40]);
      expect(setRegions(await agent.trackingMap(path, pairId, 'in-flight'))).toEqual([4, 40]);
      await agent.trackingSettle(path, pairId, [4], [40]);
      await expect(agent.trackingSettle(path, pairId, [4], [])).rejects.toSatisfy(isCode('USAGE')); // settled already
      expect(await agent.trackingTake(path, pairId, 10, 0)).toEqual([3, 40]);
      expect(await agent.trackingRequeue(path, pairId)).toBe(2);
      expect(await agent.trackingState(path, pairId)).toMatchObject({ oosRegions: 2, inFlightRegions: 0 });
      const again = await reopen(); // a clean stop: exactly OOS comes back
      expect(await again.trackingState(path, pairId)).toMatchObject({ oosRegions: 2, recoveredRegions: 2 });
      await again.pairLeave(path, pairId);
      await expect(again.trackingState(path, pairId)).rejects.toSatisfy(isCode('NOT_FOUND'));
    });

    it('realizeRegions marks regions realized ahead of their writes; a locked secondary needs its pair', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'realize.img');
      await agent.volumeCreate(path, 16 * 4096, 4096);
      await agent.realizeRegions(path, [2, 9, 3]);
      expect(setRegions({ ...(await agent.realizedMap(path)), setCount: 3 })).toEqual([2, 3, 9]);
      await expect(agent.realizeRegions(path, [16])).rejects.toSatisfy(isCode('USAGE'));
      const member = memberOf('secondary', 16);
      await agent.pairJoin(path, member);
      await expect(agent.realizeRegions(path, [4])).rejects.toSatisfy(isCode('PERMISSION'));
      await agent.realizeRegions(path, [4], { auth: { pairId: member.pairId, generation: member.generation } });
      expect(setRegions({ ...(await agent.realizedMap(path)), setCount: 4 })).toEqual([2, 3, 4, 9]);
    });

    it('a snapshot can rotate two change maps at its instant; a secondary stages a cycle and applies it under a redo record', async () => {
      const { agent, dir, reopen } = await makeAgent();
      const primary = join(dir, 'periodic-p.img');
      await agent.volumeCreate(primary, 16 * 4096, 4096);
      await agent.bitmapCreate(primary, 'cur');
      await agent.bitmapCreate(primary, 'next');
      await agent.writeRegion(primary, 5, Buffer.alloc(4096, 5));
      await agent.bitmapClear(primary, 'cur');
      await agent.writeRegion(primary, 7, Buffer.alloc(4096, 7));
      const snapshot = await agent.snapshotCreate(primary, { label: 'cycle 1', rotateMaps: ['cur', 'next'] });
      await agent.writeRegion(primary, 9, Buffer.alloc(4096, 9));
      // `cur` took what `next` held at the instant (5, 7); like every map it records later writes too (9).
      expect(setRegions(await agent.bitmapRead(primary, 'cur'))).toEqual([5, 7, 9]);
      expect(setRegions(await agent.bitmapRead(primary, 'next'))).toEqual([9]); // only what came after
      await expect(agent.snapshotCreate(primary, { rotateMaps: ['cur', 'nope'] })).rejects.toSatisfy(isCode('NOT_FOUND'));
      expect((await agent.snapshotList(primary)).snapshots.map((s) => s.snapshotId)).toEqual([snapshot.snapshotId]);

      const secondary = join(dir, 'periodic-s.img');
      await agent.volumeCreate(secondary, 16 * 4096, 4096);
      const member = memberOf('secondary', 16);
      const auth = { pairId: member.pairId, generation: member.generation };
      await agent.pairJoin(secondary, member);
      await expect(agent.stageRegion(secondary, member.pairId, 1, 5, Buffer.alloc(4096, 5))).rejects.toSatisfy(isCode('PERMISSION'));
      await agent.stageRegion(secondary, member.pairId, 1, 5, Buffer.alloc(4096, 5), { auth });
      await agent.stageRegion(secondary, member.pairId, 1, 7, Buffer.alloc(4096, 7), { auth });
      expect((await readAll(agent.readRegions(secondary, 5, 1), 5))[0]!.equals(Buffer.alloc(4096))).toBe(true); // staged, not applied
      await agent.stageApply(secondary, member.pairId, 1, [5, 7], { auth });
      const applied = await readAll(agent.readRegions(secondary, 0, 16));
      expect(applied[5]!.equals(Buffer.alloc(4096, 5)) && applied[7]!.equals(Buffer.alloc(4096, 7))).toBe(true);
      expect((await agent.volumeState(secondary)).members[0]!.appliedCycle).toBe(1);
      await agent.stageApply(secondary, member.pairId, 1, [5, 7], { auth }); // applied already: nothing happens
      await expect(agent.stageApply(secondary, member.pairId, 2, [3], { auth })).rejects.toSatisfy(isCode('INCOMPLETE'));
      await agent.stageApply(secondary, member.pairId, 2, [], { auth }); // a cycle with nothing to ship staged nothing
      expect((await agent.volumeState(secondary)).members[0]!.appliedCycle).toBe(2);
      const again = await reopen();
      expect((await again.volumeState(secondary)).members[0]!.appliedCycle).toBe(2);
    });

    it('a sealed cycle: staged whole and durable, not applied; applied later from its seal alone; a later stage unseals it', async () => {
      const { agent, dir, reopen } = await makeAgent();
      const secondary = join(dir, 'sealed-s.img');
      await agent.volumeCreate(secondary, 16 * 4096, 4096);
      const member = memberOf('secondary', 16);
      const auth = { pairId: member.pairId, generation: member.generation };
      await agent.pairJoin(secondary, member);
      await expect(agent.stageSeal(secondary, member.pairId, 1, [4], { auth })).rejects.toSatisfy(isCode('INCOMPLETE')); // nothing staged
      await agent.stageRegion(secondary, member.pairId, 1, 4, Buffer.alloc(4096, 4), { auth });
      await agent.stageRegion(secondary, member.pairId, 1, 6, Buffer.alloc(4096, 6), { auth });
      await expect(agent.stageSeal(secondary, member.pairId, 1, [4, 6])).rejects.toSatisfy(isCode('PERMISSION')); // locked like a write
      await agent.stageSeal(secondary, member.pairId, 1, [4, 6], { auth });
      expect((await agent.volumeState(secondary)).members[0]).toMatchObject({ sealedCycle: 1 });
      expect((await readAll(agent.readRegions(secondary, 4, 1), 4))[0]!.equals(Buffer.alloc(4096))).toBe(true); // sealed, not applied
      await expect(agent.stageApplySealed(secondary, member.pairId, 2, { auth })).rejects.toSatisfy(isCode('INCOMPLETE'));
      const again = await reopen(); // the seal is durable: a restart keeps it, and applies nothing
      expect((await again.volumeState(secondary)).members[0]).toMatchObject({ sealedCycle: 1 });
      expect((await readAll(again.readRegions(secondary, 6, 1), 6))[0]!.equals(Buffer.alloc(4096))).toBe(true);
      await again.stageApplySealed(secondary, member.pairId, 1, { auth }); // the regions come from the seal
      const applied = await readAll(again.readRegions(secondary, 0, 16));
      expect(applied[4]!.equals(Buffer.alloc(4096, 4)) && applied[6]!.equals(Buffer.alloc(4096, 6))).toBe(true);
      expect((await again.volumeState(secondary)).members[0]!.appliedCycle).toBe(1);
      expect((await again.volumeState(secondary)).members[0]!.sealedCycle ?? null).toBeNull();
      await again.stageApplySealed(secondary, member.pairId, 1, { auth }); // applied already: nothing happens
      // A stage after a seal unseals: the area no longer is what was sealed.
      await again.stageRegion(secondary, member.pairId, 2, 1, Buffer.alloc(4096, 1), { auth });
      await again.stageSeal(secondary, member.pairId, 2, [1], { auth });
      await again.stageRegion(secondary, member.pairId, 2, 2, Buffer.alloc(4096, 2), { auth });
      expect((await again.volumeState(secondary)).members[0]!.sealedCycle ?? null).toBeNull();
      await expect(again.stageApplySealed(secondary, member.pairId, 2, { auth })).rejects.toSatisfy(isCode('INCOMPLETE'));
    });

    it('a group hold: prepare holds every volume, commit takes the snapshots at that instant (maps rotated), in items order', async () => {
      const { agent, dir } = await makeAgent();
      const [a, b] = ['group-a.img', 'group-b.img'].map((n) => join(dir, n));
      for (const path of [a!, b!]) await agent.volumeCreate(path, 8 * 4096, 4096);
      await agent.bitmapCreate(b!, 'cur');
      await agent.bitmapCreate(b!, 'next');
      await agent.writeRegion(a!, 1, Buffer.alloc(4096, 1));
      await agent.writeRegion(b!, 2, Buffer.alloc(4096, 2));
      await agent.bitmapClear(b!, 'cur');
      const items = [
        { path: b!, label: 'cycle b', rotateMaps: ['cur', 'next'] as const },
        { path: a!, label: 'cycle a' },
      ];
      const hold = await agent.snapshotGroupPrepare(items, { leaseMs: 30_000 });
      expect(hold.holdId).toMatch(uuid);
      expect(Number.isFinite(hold.heldAtMs)).toBe(true);
      expect((await agent.snapshotList(a!)).snapshots).toEqual([]); // nothing taken yet
      let written = false;
      const writing = agent.writeRegion(a!, 1, Buffer.alloc(4096, 0xaa)).then(() => (written = true));
      const writingB = agent.writeRegion(b!, 3, Buffer.alloc(4096, 3));
      expect(written).toBe(false); // held: it cannot have completed (whether or not it reached the agent yet)
      const snapshots = await agent.snapshotGroupCommit(hold.holdId);
      expect(snapshots.map((s) => s.label)).toEqual(['cycle b', 'cycle a']);
      await Promise.all([writing, writingB]);
      // The snapshots hold the instant: the writes issued during the hold came after it.
      expect((await readAll(agent.readRegions(a!, 1, 1, { snapshotId: snapshots[1]!.snapshotId }), 1))[0]!.equals(Buffer.alloc(4096, 1))).toBe(true);
      expect((await readAll(agent.readRegions(a!, 1, 1), 1))[0]!.equals(Buffer.alloc(4096, 0xaa))).toBe(true);
      expect(setRegions(await agent.bitmapRead(b!, 'cur'))).toEqual([2, 3]); // took `next` at the instant (2), then recorded 3
      expect(setRegions(await agent.bitmapRead(b!, 'next'))).toEqual([3]);
      await expect(agent.snapshotGroupCommit(hold.holdId)).rejects.toSatisfy(isCode('NOT_FOUND')); // committed already
      await agent.snapshotGroupAbort(hold.holdId); // ended: nothing to do
    });

    it('a group hold: abort releases with nothing taken (idempotent); a lease that runs out releases it and refuses the commit', async () => {
      const { agent, dir } = await makeAgent();
      const [a, b] = ['lease-a.img', 'lease-b.img'].map((n) => join(dir, n));
      for (const path of [a!, b!]) await agent.volumeCreate(path, 8 * 4096, 4096);
      const items = [
        { path: a!, label: 'x' },
        { path: b!, label: 'x' },
      ];
      const aborted = await agent.snapshotGroupPrepare(items, { leaseMs: 30_000 });
      let written = false;
      const writing = agent.writeRegion(b!, 0, Buffer.alloc(4096, 7)).then(() => (written = true));
      expect(written).toBe(false);
      await agent.snapshotGroupAbort(aborted.holdId);
      await writing;
      await agent.snapshotGroupAbort(aborted.holdId);
      await agent.snapshotGroupAbort('00000000-0000-4000-8000-0000000000ff'); // unknown: fine
      await expect(agent.snapshotGroupCommit(aborted.holdId)).rejects.toSatisfy(isCode('NOT_FOUND'));
      for (const path of [a!, b!]) expect((await agent.snapshotList(path)).snapshots).toEqual([]);

      const leaseMs = 300;
      const preparedAtMs = performance.now();
      const expiring = await agent.snapshotGroupPrepare(items, { leaseMs });
      await agent.writeRegion(a!, 0, Buffer.alloc(4096, 8)); // held until the lease runs out
      expect(performance.now() - preparedAtMs).toBeGreaterThanOrEqual(leaseMs);
      const refused = await agent.snapshotGroupCommit(expiring.holdId).catch((e: unknown) => e);
      expect(refused).toSatisfy(isCode('EXPIRED'));
      expect((refused as Error).message).toContain(`group hold ${expiring.holdId}`);
      expect((refused as Error).message).toContain(`lease of ${leaseMs} ms ran out`);
      for (const path of [a!, b!]) expect((await agent.snapshotList(path)).snapshots).toEqual([]);
    });

    it('a group hold refuses a volume named twice, a bad lease, a bad or unknown hold id; writes go on', async () => {
      const { agent, dir } = await makeAgent();
      const a = join(dir, 'twice.img');
      await agent.volumeCreate(a, 8 * 4096, 4096);
      await expect(agent.snapshotGroupPrepare([{ path: a }, { path: join(dir, '.', 'twice.img') }], { leaseMs: 1000 })).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.snapshotGroupPrepare([{ path: a }], { leaseMs: 0 })).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.snapshotGroupPrepare([{ path: a }], { leaseMs: 10 ** 9 })).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.snapshotGroupPrepare([{ path: a, rotateMaps: ['cur', 'next'] }], { leaseMs: 1000 })).rejects.toSatisfy(isCode('NOT_FOUND'));
      await expect(agent.snapshotGroupCommit('latest')).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.snapshotGroupAbort('latest')).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.snapshotGroupCommit('00000000-0000-4000-8000-0000000000ff')).rejects.toSatisfy(isCode('NOT_FOUND'));
      await agent.writeRegion(a, 0, Buffer.alloc(4096, 1)); // no hold was left behind
      expect((await agent.snapshotList(a)).snapshots).toEqual([]);
    });

    it('skipMarked leaves out regions marked in the change map when their turn comes', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      await agent.volumeCreate(path, 16 * 4096, 4096);
      await agent.bitmapCreate(path, 'since');
      for (const r of [2, 3, 9]) await agent.writeRegion(path, r, Buffer.alloc(4096, r));
      const regions: number[] = [];
      for await (const region of agent.readRegions(path, 1, 12, { skipMarked: 'since' })) regions.push(region.regionIndex);
      expect(regions).toEqual([1, 4, 5, 6, 7, 8, 10, 11, 12]);
      const none: number[] = [];
      for await (const region of agent.readRegions(path, 2, 2, { skipMarked: 'since' })) none.push(region.regionIndex);
      expect(none).toEqual([]);
      await expect(readAll(agent.readRegions(path, 0, 1, { skipMarked: 'nope' }))).rejects.toSatisfy(isCode('NOT_FOUND'));
    });
  });
}

const otherPairId = '00000000-0000-4000-8000-00000000000b';

function memberOf(role: 'primary' | 'secondary', regionCount = 8): PairMember {
  return {
    pairId: '00000000-0000-4000-8000-00000000000a',
    name: 'p1',
    role,
    generation: 1,
    regionBytes: 4096,
    regionCount,
    hash: 'xxh3-128',
    peer: { volref: '/elsewhere/primary.img', volumeId: '0123456789abcdef' },
    createdAt: '2026-11-23T00:00:00.000Z',
    seed: null,
    lcsSnapshotId: null,
  };
}
