// Export and import interrupted and resumed (docs/image-format.md "Resume"; docs/sync.md
// "Tests" 4): cancelled (committing what was done: nothing is done twice), failed as a crash
// would (cut back to the last commit), and the CLI killed with SIGKILL. Each ends with data files
// identical to an uninterrupted export's, or a target identical to the primary.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi, type RegionData } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import { exportImage, importImage, verifyImage, type ImageExportSummary } from '../../src-engine/image';
import { PairStore, createPair, runSync } from '../../src-engine/replication';
import { cliBundle, tidemark } from '../helpers/cli';
import { copyImage, imageDigests, sha256File } from '../helpers/images';
import { randomRegion, recordingAgent, resolverFor, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';

const regionBytes = 64 * 1024;
const regionCount = 512; // 32 MiB
const sizeBytes = regionCount * regionBytes;
const splitBytes = 1024 * 1024; // 16 regions a file
const commitBytes = 1024 * 1024; // tests commit often; the product every 64 MiB
const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261203);

let root: string;
let home: string;
let primaryPath: string;
let secondaryPath: string;
let reference: string;
let referenceSummary: ImageExportSummary;
let referenceDigests: Record<string, string>;
/** The primary's regions holding data: the image stores exactly these. */
let dataRegions: number[];

async function withAgent<T>(work: (agent: LocalAgent) => Promise<T>): Promise<T> {
  const agent = new LocalAgent(home);
  try {
    return await work(agent);
  } finally {
    await agent.dispose();
  }
}

const isCode = (code: string) => (e: unknown) => e instanceof TidemarkError && e.code === code;
const imageFiles = (digests: Record<string, string>) => Object.fromEntries(Object.entries(digests).filter(([name]) => name !== 'manifest.json'));

beforeAll(async () => {
  console.log(`[image-resume] seed ${seed}`);
  root = await mkdtemp(join(tmpdir(), 'tidemark-image-resume-'));
  home = join(root, 'home');
  primaryPath = join(root, 'primary.img');
  secondaryPath = join(root, 'secondary.img');
  reference = join(root, 'reference');
  const random = seededRandom(seed);
  dataRegions = Array.from({ length: regionCount }, (_, r) => r).filter(() => random() < 0.6);
  await withAgent(async (agent) => {
    await agent.volumeCreate(primaryPath, sizeBytes, regionBytes);
    await agent.volumeCreate(secondaryPath, sizeBytes, regionBytes);
    await writeRandomRegions(agent, primaryPath, regionBytes, dataRegions, seed);
    await createPair(new PairStore(home), resolverFor(agent), { name: 'p', primary: primaryPath, secondary: secondaryPath });
    referenceSummary = await exportImage({ source: 'p', dir: reference, resolver: resolverFor(agent), pairs: new PairStore(home), splitBytes });
  });
  referenceDigests = await imageDigests(reference);
  expect(referenceSummary.storedRegions).toBe(dataRegions.length);
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** An agent whose region reads stop after `after` regions: by aborting `controller` (cancel) or by failing (a crash). */
function interruptedReads(inner: AgentApi, after: number, how: 'abort' | 'fail', controller: AbortController): AgentApi {
  let yielded = 0;
  async function* reads(path: string, first: number, count: number, options?: Parameters<AgentApi['readRegions']>[3]): AsyncGenerator<RegionData> {
    for await (const region of inner.readRegions(path, first, count, options)) {
      // A dropped link fails every stream from then on; a cancel is one abort.
      if (how === 'fail' && yielded >= after) throw new TidemarkError('DISCONNECTED', 'link to the source dropped (test)', 'the next operation reconnects');
      if (how === 'abort' && yielded === after) controller.abort();
      yielded += 1;
      yield region;
    }
  }
  return new Proxy(inner, {
    get: (target, property, receiver) => (property === 'readRegions' ? reads : (Reflect.get(target, property, receiver) as unknown)),
  });
}

describe('export resume', () => {
  for (const how of ['abort', 'fail'] as const) {
    it(`${how === 'abort' ? 'cancelled' : 'failed (as a crash)'} 1–3 times at seeded points, resumes to data files equal to an uninterrupted export's`, async () => {
      const random = seededRandom(seed + (how === 'abort' ? 1 : 2));
      const fractions = Array.from({ length: 1 + Math.floor(random() * 3) }, () => random());
      const dir = join(root, `export-${how}`);
      let committed = { nextRegion: 0, storedRegions: 0 };
      let last: ImageExportSummary | undefined;
      await withAgent(async (agent) => {
        const options = { source: 'p', dir, pairs: new PairStore(home), splitBytes, commitBytes };
        for (const fraction of fractions) {
          const remaining = referenceSummary.storedRegions - committed.storedRegions;
          if (remaining < 24) break; // too little left to interrupt at a chosen point
          const after = 1 + Math.floor(fraction * (remaining - 12));
          console.log(`[image-resume] export ${how} after ${after} of ${remaining} regions read`);
          const controller = new AbortController();
          const resolver = resolverFor(interruptedReads(agent, after, how, controller));
          const run = exportImage({ ...options, resolver, signal: controller.signal });
          await expect(run).rejects.toSatisfy(isCode(how === 'abort' ? 'CANCELLED' : 'DISCONNECTED'));
          expect(existsSync(join(dir, 'manifest.json'))).toBe(false);
          const previous = committed.storedRegions;
          committed = exportState(dir);
          // Every region here holds data, so regions read are regions stored. A cancel commits all it
          // stored: those read (the one read as it aborted included) less up to 8 runs' first
          // regions read ahead. A crash keeps the last commit that finished (commits run beside
          // the writes, as often as the media takes them).
          const atLeast = how === 'abort' ? previous + after - 9 : previous;
          expect(committed.storedRegions).toBeGreaterThanOrEqual(atLeast);
          expect(committed.storedRegions).toBeLessThanOrEqual(previous + after + (how === 'abort' ? 1 : 0));
        }
        last = await exportImage({ ...options, resolver: resolverFor(agent) });
        expect((await agent.snapshotList(primaryPath)).snapshots).toEqual([]);
      });
      expect(last).toMatchObject({ resumed: true, storedRegions: referenceSummary.storedRegions });
      // Nothing committed is stored again: the last run stores exactly what was not committed.
      expect(last!.regionsTransferred).toBe(referenceSummary.storedRegions - committed.storedRegions);
      expect(imageFiles(await imageDigests(dir))).toEqual(imageFiles(referenceDigests));
      expect((await verifyImage(dir)).ok).toBe(true);
    });
  }

  it('the CLI killed with SIGKILL mid-export resumes with the same command', async () => {
    const dir = join(root, 'export-killed');
    const statePath = join(dir, '.tidemark-export', 'state.json');
    const child = spawn(process.execPath, [cliBundle, '--home', home, 'image', 'export', 'p', dir, '--split', '1MiB'], {
      stdio: 'ignore',
      env: { PATH: process.env.PATH },
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // Killed right after its first commit past region 0 (each data file's end commits).
    for (let i = 0; i < 3000 && !committedPastZero(statePath); i++) await new Promise((r) => setTimeout(r, 2));
    child.kill('SIGKILL');
    await exited;
    expect(committedPastZero(statePath)).toBe(true);
    expect(existsSync(join(dir, 'manifest.json')), 'the export finished before the kill: make the volume larger').toBe(false);
    const resumed = tidemark(['--home', home, '--json', 'image', 'export', 'p', dir, '--split', '1MiB']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout) as ImageExportSummary;
    expect(summary).toMatchObject({ resumed: true, storedRegions: referenceSummary.storedRegions });
    expect(summary.regionsTransferred).toBeLessThan(referenceSummary.storedRegions);
    expect(imageFiles(await imageDigests(dir))).toEqual(imageFiles(referenceDigests));
  });
});

function exportState(dir: string): { nextRegion: number; storedRegions: number } {
  return (JSON.parse(readFileSync(join(dir, '.tidemark-export', 'state.json'), 'utf8')) as { body: { nextRegion: number; storedRegions: number } }).body;
}

function committedPastZero(statePath: string): boolean {
  try {
    return (JSON.parse(readFileSync(statePath, 'utf8')) as { body: { nextRegion: number } }).body.nextRegion > 0;
  } catch {
    return false;
  }
}

describe('import resume', () => {
  async function resetSecondary(): Promise<void> {
    // The pair's secondary starts from other data for every test: nothing of an earlier import may help.
    await withAgent(async (agent) => {
      const state = await agent.volumeState(secondaryPath);
      const auth = { pairId: state.members[0]!.pairId, generation: state.members[0]!.generation };
      if (state.importing) await agent.importMark(secondaryPath, null, { auth });
      for (let r = 0; r < regionCount; r += 5) await agent.writeRegion(secondaryPath, r, randomRegion(seed * 7 + r, regionBytes), { auth });
    });
  }

  for (const how of ['abort', 'fail'] as const) {
    it(`${how === 'abort' ? 'cancelled' : 'failed (as a crash)'} 1–3 times at seeded points, resumes to a target identical to the primary`, async () => {
      await resetSecondary();
      const random = seededRandom(seed + (how === 'abort' ? 3 : 4));
      const fractions = Array.from({ length: 1 + Math.floor(random() * 3) }, () => random());
      const dir = join(root, `import-${how}`);
      await copyImage(reference, dir);
      await withAgent(async (agent) => {
        const counting = recordingAgent(agent);
        let crashes = 0;
        for (const fraction of fractions) {
          const nextRegion = (await agent.volumeState(secondaryPath)).importing?.nextRegion ?? 0;
          const remaining = dataRegions.filter((r) => r >= nextRegion).length;
          if (remaining < 24) break; // too little left to interrupt at a chosen point
          const after = 1 + Math.floor(fraction * (remaining - 12));
          console.log(`[image-resume] import ${how} after ${after} writes of ${remaining}`);
          const controller = new AbortController();
          let writes = 0;
          const target = recordingAgent(counting, {
            failAfterWrites: () => (how === 'fail' ? after : undefined),
            onWrite: () => void (++writes === after && how === 'abort' && controller.abort()),
          });
          const run = importImage({
            dir,
            target: secondaryPath,
            resolver: resolverFor(target),
            pairs: new PairStore(home),
            commitBytes,
            signal: controller.signal,
          });
          await expect(run).rejects.toSatisfy(isCode(how === 'abort' ? 'CANCELLED' : 'DISCONNECTED'));
          crashes += how === 'fail' ? 1 : 0;
          const state = await agent.volumeState(secondaryPath);
          expect(state.importing).toMatchObject({ imageId: referenceSummary.imageId });
          // Sync refuses the volume meanwhile.
          const pairs = new PairStore(home);
          const record = await pairs.require('p');
          const endpoint = (path: string) => ({ volref: path, agent, path, where: 'this machine' });
          await expect(
            runSync({ store: pairs, pair: record, endpoints: { primary: endpoint(primaryPath), secondary: endpoint(secondaryPath) }, method: 'auto' }),
          ).rejects.toSatisfy(isCode('INCOMPLETE'));
        }
        const last = await importImage({ dir, target: secondaryPath, resolver: resolverFor(counting), pairs: new PairStore(home), commitBytes });
        expect(last.resumed).toBe(true);
        const totalWrites = [...counting.writes.values()].reduce((a, b) => a + b, 0);
        // A cancel commits what it wrote: each region is written once. A crash loses at most a
        // commit's worth (16 regions) plus the writes in flight (16).
        expect(totalWrites).toBeGreaterThanOrEqual(referenceSummary.storedRegions);
        expect(totalWrites).toBeLessThanOrEqual(referenceSummary.storedRegions + crashes * 32);
        if (how === 'abort') expect(Math.max(...counting.writes.values())).toBe(1);
        expect((await agent.volumeState(secondaryPath)).importing).toBeNull();
      });
      expect(await sameBytes(primaryPath, secondaryPath, sizeBytes)).toBe(true);
    });
  }

  it('the CLI killed with SIGKILL mid-import resumes with the same command', async () => {
    await resetSecondary();
    const dir = join(root, 'import-killed');
    await copyImage(reference, dir);
    const volumeId = await withAgent(async (agent) => (await agent.volumeState(secondaryPath)).volumeId!);
    const markerPath = join(home, 'volumes', volumeId, 'import.json');
    const before = await sha256File(secondaryPath);
    const child = spawn(process.execPath, [cliBundle, '--home', home, 'image', 'import', dir, secondaryPath], {
      stdio: 'ignore',
      env: { PATH: process.env.PATH },
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    for (let i = 0; i < 3000 && !committedPastZero(markerPath); i++) await new Promise((r) => setTimeout(r, 2));
    child.kill('SIGKILL');
    await exited;
    expect(committedPastZero(markerPath), 'the import committed before the kill').toBe(true);
    expect(await sha256File(secondaryPath)).not.toBe(before);
    const sync = tidemark(['--home', home, 'sync', 'p']);
    expect(sync.status).toBe(1);
    expect(sync.stderr).toMatch(/unfinished image import/);
    const resumed = tidemark(['--home', home, '--json', 'image', 'import', dir, secondaryPath]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ resumed: true, imageId: referenceSummary.imageId });
    expect(await sameBytes(primaryPath, secondaryPath, sizeBytes)).toBe(true);
  });
});
