// Cancel and resume (docs/sync.md "Tests" 4): a sync aborted at seeded random points, or cut
// off by a dropped link (nothing committed after it), resumes to identical volumes; a
// recording wrapper counts the writes each region got: no region is sent again beyond the
// window W per interruption.
import { describe, expect, it } from 'vitest';
import type { AgentApi } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import { runSync, syncMethods, syncWindowRegions, type PairEndpoints, type SyncMethod } from '../../src-engine/replication';
import { makeLocalPair, recordingAgent, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 64 * 1024;
const regionCount = 384;
const sizeBytes = regionCount * regionBytes;
const windowBytes = 2 * 1024 * 1024; // W = 32 regions, so the bound means something at this size
const W = syncWindowRegions(regionBytes, windowBytes);
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261125);

const isCode = (code: string) => (e: unknown) => e instanceof TidemarkError && e.code === code;

interface Interruption {
  /** The link fails from this many writes on (nothing after it is committed). */
  writes: number | undefined;
  /** Cancel once this many writes were made. */
  abortAt: { writes: number; controller: AbortController } | undefined;
}

async function setUp(method: SyncMethod, seed: number, failAfter: Interruption) {
  const dir = await tempDir();
  const all = Array.from({ length: regionCount }, (_, r) => r);
  let recorder!: ReturnType<typeof recordingAgent>;
  const pair = await makeLocalPair(dir, {
    sizeBytes,
    regionBytes,
    prepare: async (agent, p, s) => {
      await writeRandomRegions(agent, p, regionBytes, all, seed);
      // signature and realized need something to find: an old copy with every fourth region different
      if (method === 'signature' || method === 'realized')
        await writeRandomRegions(
          agent,
          s,
          regionBytes,
          all.filter((r) => r % 4 !== 0),
          seed,
        );
    },
    wrapSecondary: (agent) =>
      (recorder = recordingAgent(agent, {
        failAfterWrites: () => failAfter.writes,
        onWrite: (total) => {
          if (failAfter.abortAt && total >= failAfter.abortAt.writes) failAfter.abortAt.controller.abort();
        },
      })),
  });
  return { pair, recorder };
}

describe('sync cancel and resume', () => {
  for (const [index, method] of syncMethods.entries()) {
    it(`${method}: interrupted 1–4 times at random points, resumes to identical volumes sending each region at most W more`, async () => {
      const seed = baseSeed + index;
      console.log(`[sync-resume] ${method} seed ${seed}`);
      const random = seededRandom(seed);
      const failAfter: Interruption = { writes: undefined, abortAt: undefined };
      const { pair, recorder } = await setUp(method, seed, failAfter);
      const endpoints: PairEndpoints = pair.endpoints;
      const needed = method === 'signature' || method === 'realized' ? regionCount / 4 : regionCount;
      const interruptions = 1 + Math.floor(random() * 4);
      let written = () => [...recorder.writes.values()].reduce((a, b) => a + b, 0);
      for (let i = 0; i < interruptions; i++) {
        const at = written() + 1 + Math.floor(random() * (needed / (interruptions + 1)));
        const kind = random() < 0.5 ? 'abort' : 'link';
        const controller = new AbortController();
        if (kind === 'link') failAfter.writes = at;
        else failAfter.abortAt = { writes: at, controller };
        const run = runSync({
          store: pair.store,
          pair: pair.record,
          endpoints,
          method,
          windowBytes,
          commitIntervalMs: 60_000, // commits come from the window only: the worst case for a crash
          signal: controller.signal,
        });
        await expect(run, `${kind} at ${at}`).rejects.toSatisfy(kind === 'abort' ? isCode('CANCELLED') : isCode('DISCONNECTED'));
        failAfter.writes = undefined;
        failAfter.abortAt = undefined;
      }
      const final = await runSync({ store: pair.store, pair: pair.record, endpoints, method: 'auto', windowBytes });
      expect(final.resumed).toBe(true);
      expect(final.method).toBe(method);
      expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
      written = () => [...recorder.writes.values()].reduce((a, b) => a + b, 0);
      expect(written()).toBeGreaterThanOrEqual(needed);
      expect(written()).toBeLessThanOrEqual(needed + interruptions * W);
      expect(final.totals.regionsTransferred).toBeLessThanOrEqual(written());
      expect((await pair.agent.snapshotList(pair.primaryPath)).snapshots.filter((s) => s.label.startsWith('tidemark-sync'))).toEqual([]);
    });
  }

  it('a different explicit method does not silently replace an unfinished sync; --restart does', async () => {
    const controller = new AbortController();
    const { pair } = await setUp('tardy', baseSeed + 50, { writes: undefined, abortAt: { writes: 10, controller } });
    const run = runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'tardy', windowBytes, signal: controller.signal });
    await expect(run).rejects.toSatisfy(isCode('CANCELLED'));
    await expect(runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'early' })).rejects.toSatisfy(
      (e: unknown) => isCode('USAGE')(e) && /unfinished tardy sync/.test((e as Error).message) && /--restart/.test((e as TidemarkError).hint),
    );
    const restarted = await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'early', restart: true });
    expect(restarted).toMatchObject({ method: 'early', resumed: false });
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });

  it('one sync per pair: a second one meanwhile is BUSY', async () => {
    const { pair } = await setUp('tardy', baseSeed + 51, { writes: undefined, abortAt: undefined });
    const first = runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'tardy', limitRateBytesPerSecond: 8 * 1024 * 1024 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expect(runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'tardy' })).rejects.toSatisfy(isCode('BUSY'));
    await first;
  });
});

/** The secondary's agent with one call failing once: `writeRegion` of one region, or `pairUpdate`. */
function failingOnce(inner: AgentApi, what: { writeRegion?: number; pairUpdate?: boolean }): AgentApi {
  let failed = false;
  return new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const hit = (property === 'writeRegion' && args[1] === what.writeRegion) || (property === 'pairUpdate' && what.pairUpdate === true);
        if (hit && !failed) {
          failed = true;
          return Promise.reject(new TidemarkError('IO', `injected ${String(property)} failure`, 'test'));
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('sync after one failed call on the secondary (review findings)', () => {
  for (const method of ['tardy', 'full', 'early'] as const) {
    it(`${method}: a region whose write failed while later ones landed is sent on resume, not skipped by the cursor`, async () => {
      const all = Array.from({ length: 64 }, (_, r) => r);
      const pair = await makeLocalPair(await tempDir(), {
        sizeBytes: 64 * regionBytes,
        regionBytes,
        prepare: (agent, p) => writeRandomRegions(agent, p, regionBytes, all, 11),
        wrapSecondary: (agent) => failingOnce(agent, { writeRegion: 5 }),
      });
      await expect(runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method })).rejects.toSatisfy(isCode('IO'));
      const resumed = await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' });
      expect(resumed.resumed).toBe(true);
      expect(await sameBytes(pair.primaryPath, pair.secondaryPath, 64 * regionBytes)).toBe(true);
    });
  }

  it('a sync stopped between taking the secondary’s snapshot and recording it leaves no stray snapshot after resuming', async () => {
    const pair = await makeLocalPair(await tempDir(), {
      sizeBytes: 64 * regionBytes,
      regionBytes,
      prepare: (agent, p) => writeRandomRegions(agent, p, regionBytes, [1, 2, 3], 12),
      wrapSecondary: (agent) => failingOnce(agent, { pairUpdate: true }),
    });
    await expect(runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'tardy' })).rejects.toSatisfy(isCode('IO'));
    const resumed = await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' });
    const lcs = (await pair.agent.snapshotList(pair.secondaryPath)).snapshots.filter((s) => s.label.startsWith('tidemark-lcs'));
    expect(lcs.map((s) => s.snapshotId)).toEqual([resumed.secondarySnapshotId]);
  });
});
