// Sync against a model (docs/sync.md "Why it is right"): any interleaving of writes through the
// primary's agent, syncs interrupted after k writes to the secondary (a cancel, or a dropped
// link after which nothing commits), writes while no sync runs, and resumes — a final sync
// with no writer ends with the secondary equal to the primary, whatever the method, and the
// primary holds no sync snapshot.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '../../src-engine/errors';
import { runSync, syncMethods, type SyncMethod } from '../../src-engine/replication';
import { makeLocalPair, recordingAgent, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 96;
const sizeBytes = regionBytes * regionCount;

type Step =
  | { kind: 'write'; regions: number[]; seed: number }
  | { kind: 'sync'; method: SyncMethod; stopAfterWrites: number; how: 'cancel' | 'link' | 'none'; writesDuring: number[] };

const region = fc.nat({ max: regionCount - 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), regions: fc.array(region, { minLength: 1, maxLength: 12 }), seed: fc.nat() }),
  fc.record({
    kind: fc.constant('sync' as const),
    method: fc.constantFrom(...syncMethods),
    stopAfterWrites: fc.integer({ min: 0, max: regionCount }),
    how: fc.constantFrom('cancel' as const, 'link' as const, 'none' as const),
    writesDuring: fc.array(region, { maxLength: 8 }),
  }),
);

describe('sync rounds against a model', () => {
  it('any interleaving of writes, interrupted syncs and resumes ends identical', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 6 }), async (steps) => {
        const limit: { writes: number | undefined; abort: AbortController | undefined; at: number } = { writes: undefined, abort: undefined, at: 0 };
        let total = 0;
        let pendingWrites: number[] = [];
        const pair = await makeLocalPair(await tempDir(), {
          sizeBytes,
          regionBytes,
          wrapSecondary: (agent) =>
            recordingAgent(agent, {
              failAfterWrites: () => limit.writes,
              onWrite: (n) => {
                total = n;
                // Writes land on the primary while the sync runs, between its own writes.
                if (pendingWrites.length > 0) void writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, pendingWrites.splice(0, 1), n);
                if (limit.abort && n >= limit.at) limit.abort.abort();
              },
            }),
        });
        let lastMethod: SyncMethod | undefined;
        for (const s of steps) {
          if (s.kind === 'write') {
            await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, s.regions, s.seed);
            continue;
          }
          const controller = new AbortController();
          limit.writes = s.how === 'link' ? total + s.stopAfterWrites : undefined;
          limit.abort = s.how === 'cancel' ? controller : undefined;
          limit.at = total + s.stopAfterWrites;
          pendingWrites = [...s.writesDuring];
          // An unfinished sync resumes with its own method (another explicit one is refused): use auto then.
          const method = lastMethod === undefined ? s.method : 'auto';
          try {
            await runSync({
              store: pair.store,
              pair: await pair.store.require('p'),
              endpoints: pair.endpoints,
              method,
              signal: controller.signal,
              windowBytes: 16 * regionBytes,
            });
            lastMethod = undefined;
          } catch (error) {
            if (!(error instanceof TidemarkError) || !['CANCELLED', 'DISCONNECTED'].includes(error.code)) throw error;
            lastMethod = s.method;
          }
          limit.writes = undefined;
          limit.abort = undefined;
          await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, pendingWrites.splice(0), 7); // any left over land now
        }
        const final = await runSync({ store: pair.store, pair: await pair.store.require('p'), endpoints: pair.endpoints, method: 'auto' });
        expect(final.pendingRegions).toBe(0);
        expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
        const snapshots = (await pair.agent.snapshotList(pair.primaryPath)).snapshots.filter((x) => x.label.startsWith('tidemark-sync'));
        expect(snapshots).toEqual([]);
      }),
      { numRuns: Number(process.env.TIDEMARK_TEST_RUNS ?? 25) },
    );
  }, 240_000);
});
