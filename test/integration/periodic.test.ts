// Periodic replication (seed 004): a writer issues numbered records, each waiting for its
// acknowledgement, while cycles run; after every cycle the secondary holds exactly the
// primary as of some record m — a prefix of the acknowledged records, never a later record
// without all earlier ones — with m at least what was acknowledged before the cycle began.
// Two secondaries of one primary cycle independently; an interrupted cycle leaves the
// secondary at the previous boundary and resumes.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AgentApi } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import {
  acquirePairLock,
  createPair,
  cycleCursorOf,
  readCycleHistory,
  replicateLockTask,
  replicatePair,
  runCycle,
  runSync,
  type PairEndpoints,
  type PairRecord,
  type PairStore,
} from '../../src-engine/replication';
import { until } from '../helpers/engine';
import { makeLocalPair, onceBesideShipper, resolverFor } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 64;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

/** Record n: region n mod 64, stamped with n and filled with a byte derived from it. */
function record(n: number): Buffer {
  const data = Buffer.alloc(regionBytes, (n * 31 + 7) & 0xff);
  data.writeUInt32LE(n, 0);
  data.writeUInt32LE(n ^ 0x5a5a5a5a, 4);
  return data;
}

/** Writes records 1, 2, … through the primary's agent, one at a time, each awaited (acknowledged). */
class RecordWriter {
  acked = 0;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly agent: AgentApi,
    private readonly path: string,
    private readonly random: () => number,
  ) {}

  start(): void {
    this.running = (async () => {
      while (!this.stopped) {
        const n = this.acked + 1;
        await this.agent.writeRegion(this.path, n % regionCount, record(n));
        this.acked = n;
        if (this.random() < 0.3) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}

/** The m such that `bytes` is the primary after records 1..m (throws naming the first region that breaks it). */
function prefixHeld(bytes: Buffer): number {
  let m = 0;
  const found: number[] = [];
  for (let i = 0; i < regionCount; i++) {
    const region = bytes.subarray(i * regionBytes, (i + 1) * regionBytes);
    const n = region.readUInt32LE(0);
    if (n !== 0) {
      expect(region.equals(record(n)), `region ${i} holds a whole record`).toBe(true);
      expect(n % regionCount).toBe(i);
    } else expect(region.equals(Buffer.alloc(regionBytes)), `region ${i} never written`).toBe(true);
    found.push(n);
    m = Math.max(m, n);
  }
  // After records 1..m, region i holds the latest n ≤ m with n ≡ i (mod 64), or nothing.
  for (let i = 0; i < regionCount; i++) {
    const latest = m - ((((m - i) % regionCount) + regionCount) % regionCount);
    expect(found[i], `region ${i}: after record ${m} it holds ${latest > 0 ? latest : 'nothing'}`).toBe(latest > 0 ? latest : 0);
  }
  return m;
}

async function syncedPeriodic(wrapSecondary?: (agent: AgentApi) => AgentApi) {
  const pair = await makeLocalPair(await tempDir(), { sizeBytes, regionBytes, mode: 'periodic', wrapSecondary });
  await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' });
  return pair;
}

async function cycleAndCheck(store: PairStore, record: PairRecord, endpoints: PairEndpoints, writer: RecordWriter, secondaryPath: string): Promise<number> {
  const ackedBefore = writer.acked;
  const summary = await runCycle({ store, pair: record, endpoints });
  const ackedAfter = writer.acked;
  const m = prefixHeld(await readFile(secondaryPath));
  expect(m).toBeGreaterThanOrEqual(ackedBefore);
  expect(m).toBeLessThanOrEqual(ackedAfter);
  expect(summary.regionsTransferred).toBeLessThanOrEqual(regionCount);
  return m;
}

/** The agent, with `before` run (and awaited) ahead of each of its stageRegion calls: a slow or failing link to the secondary. */
function beforeStaging(agent: AgentApi, before: () => void | Promise<void>): AgentApi {
  return new Proxy(agent, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property !== 'stageRegion' || typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        await before();
        return (value as (...a: unknown[]) => Promise<void>).apply(target, args);
      };
    },
  });
}

describe('periodic replication', () => {
  it('after every cycle the secondary holds exactly a prefix of the acknowledged records', async () => {
    const seed = baseSeed;
    console.log(`[periodic] prefix seed ${seed}`);
    const pair = await syncedPeriodic();
    const writer = new RecordWriter(pair.agent, pair.primaryPath, seededRandom(seed));
    writer.start();
    const held: number[] = [];
    for (let c = 0; c < 12; c++) {
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.floor(seededRandom(seed + c)() * 40)));
      held.push(await cycleAndCheck(pair.store, pair.record, pair.endpoints, writer, pair.secondaryPath));
    }
    await writer.stop();
    expect(held.every((m, i) => i === 0 || m >= held[i - 1]!)).toBe(true);
    expect(held.at(-1)).toBeGreaterThan(held[0]!); // cycles moved the secondary forward
    // The writer stopped: one more cycle and the volumes are identical.
    await runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints });
    expect((await readFile(pair.secondaryPath)).equals(await readFile(pair.primaryPath))).toBe(true);
    expect((await pair.agent.snapshotList(pair.primaryPath)).snapshots).toEqual([]); // every cycle's snapshot went
    expect((await pair.agent.volumeState(pair.secondaryPath)).members[0]!.appliedCycle).toBe(13);
    // Each applied cycle is in the pair's durable history, in order, with what it moved.
    const history = await readCycleHistory(pair.store.pairDir(pair.record.name));
    expect(history.map((c) => c.cycle)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
    expect(history.every((c) => c.group === null && /@/.test(c.by) && c.pointInTime.length > 0)).toBe(true);
    expect(history.at(-1)!.regionsTransferred).toBeGreaterThan(0);
  });

  it('two secondaries of one primary cycle independently, each always at a prefix', async () => {
    const seed = baseSeed + 1;
    const pair = await syncedPeriodic();
    const second = join(pair.agent.homeDir, '..', 'second.img');
    await pair.agent.volumeCreate(second, sizeBytes, regionBytes);
    const record2 = await createPair(pair.store, resolverFor(pair.agent), { name: 'p2', primary: pair.primaryPath, secondary: second, mode: 'periodic' });
    const endpoints2: PairEndpoints = {
      primary: pair.endpoints.primary,
      secondary: { volref: second, agent: pair.agent, path: second, where: 'this machine' },
    };
    await runSync({ store: pair.store, pair: record2, endpoints: endpoints2, method: 'auto' });
    const writer = new RecordWriter(pair.agent, pair.primaryPath, seededRandom(seed));
    writer.start();
    for (let c = 0; c < 6; c++) {
      await cycleAndCheck(pair.store, pair.record, pair.endpoints, writer, pair.secondaryPath);
      if (c % 3 === 2) await cycleAndCheck(pair.store, record2, endpoints2, writer, second);
    }
    await writer.stop();
    expect((await pair.agent.volumeState(pair.secondaryPath)).members[0]!.appliedCycle).toBe(6);
    expect((await pair.agent.volumeState(second)).members[0]!.appliedCycle).toBe(2);
  });

  it('two secondaries replicated at once with their own --interval: each keeps its spacing, each ends at the primary', async () => {
    const seed = baseSeed + 5;
    console.log(`[periodic] intervals seed ${seed}`);
    const intervals = { fast: 150, slow: 600 };
    const fast = await makeLocalPair(await tempDir(), { sizeBytes, regionBytes, mode: 'periodic', intervalMs: intervals.fast });
    const slowPath = join(fast.agent.homeDir, '..', 'slow.img');
    await fast.agent.volumeCreate(slowPath, sizeBytes, regionBytes);
    const slowRecord = await createPair(fast.store, resolverFor(fast.agent), {
      name: 'slow',
      primary: fast.primaryPath,
      secondary: slowPath,
      mode: 'periodic',
      intervalMs: intervals.slow,
    });
    const slowEndpoints: PairEndpoints = {
      primary: fast.endpoints.primary,
      secondary: { volref: slowPath, agent: fast.agent, path: slowPath, where: 'this machine' },
    };
    expect([fast.record.intervalMs, slowRecord.intervalMs]).toEqual([intervals.fast, intervals.slow]);
    for (const [record, endpoints] of [
      [fast.record, fast.endpoints],
      [slowRecord, slowEndpoints],
    ] as const) {
      await runSync({ store: fast.store, pair: record, endpoints, method: 'auto' });
    }
    // The records as the syncs left them (lastSync set): replicate then cycles without syncing first.
    const fastRecord = await fast.store.require(fast.record.name);
    const slowSynced = await fast.store.require(slowRecord.name);
    const writer = new RecordWriter(fast.agent, fast.primaryPath, seededRandom(seed));
    writer.start();
    const controller = new AbortController();
    const starts: Record<'fast' | 'slow', number[]> = { fast: [], slow: [] };
    const run = (which: 'fast' | 'slow', record: PairRecord, endpoints: PairEndpoints) =>
      replicatePair({
        store: fast.store,
        pair: record,
        endpoints,
        once: false,
        signal: controller.signal,
        onCycleProgress: (p) => void (p.phase === 'freezing' && starts[which].push(performance.now())),
      }).catch((error: unknown) => {
        if (!controller.signal.aborted) throw error;
      });
    const running = [run('fast', fastRecord, fast.endpoints), run('slow', slowSynced, slowEndpoints)];
    await new Promise((resolve) => setTimeout(resolve, 2000));
    controller.abort();
    await Promise.all(running);
    await writer.stop();
    console.log(`[periodic] cycles started: fast ${starts.fast.length}, slow ${starts.slow.length}`);
    for (const which of ['fast', 'slow'] as const) {
      const gaps = starts[which].slice(1).map((t, i) => t - starts[which][i]!);
      expect(starts[which].length).toBeGreaterThanOrEqual(2);
      // A cycle never starts before its interval (timed here at its freeze, some ms into the cycle's start).
      for (const gapMs of gaps) expect(gapMs).toBeGreaterThanOrEqual(intervals[which] - 50);
    }
    expect(starts.slow.length).toBeLessThanOrEqual(Math.ceil(2000 / intervals.slow) + 1);
    // Both ran at once: each started a cycle while the other was between cycles it started.
    expect(starts.fast[0]!).toBeLessThan(starts.slow.at(-1)!);
    expect(starts.slow[0]!).toBeLessThan(starts.fast.at(-1)!);
    // One more cycle each after the writer stopped: both secondaries are the primary.
    // A cycle the abort cut short is finished first (from its cursor, at its older point in
    // time); the cycle after it freezes with every record: at most two --once runs.
    for (const [record, endpoints, path] of [
      [fastRecord, fast.endpoints, fast.secondaryPath],
      [slowSynced, slowEndpoints, slowPath],
    ] as const) {
      for (let run = 0; run < 2 && prefixHeld(await readFile(path)) < writer.acked; run++) {
        await replicatePair({ store: fast.store, pair: record, endpoints, once: true });
      }
      expect(prefixHeld(await readFile(path))).toBe(writer.acked);
    }
  });

  it('replicate --once beside a running shipper waits for a cycle that froze after it was called, not one already under way', async () => {
    let stageDelayMs = 0;
    const pair = await syncedPeriodic((agent) =>
      beforeStaging(agent, async () => {
        if (stageDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, stageDelayMs));
      }),
    );
    // This test is the running shipper: it holds the pair's lock as `replicate` (or `serve`) does.
    const lock = await acquirePairLock(pair.store.pairDir(pair.record.name), pair.record.name, replicateLockTask);
    try {
      await pair.agent.writeRegion(pair.primaryPath, 1, record(1));
      stageDelayMs = 100;
      const underWay = runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints }); // cycle 1 freezes with record 1
      await until(async () => (await cycleCursorOf(pair.store, pair.record))?.phase === 'shipping', 10_000, 'cycle 1 shipping');
      await pair.agent.writeRegion(pair.primaryPath, 2, record(2)); // after cycle 1's freeze
      const waiter = onceBesideShipper(pair);
      await underWay;
      await new Promise((resolve) => setTimeout(resolve, 400)); // several of the waiter's polls
      expect(waiter.returned()).toBe(false); // cycle 1 froze before the call: it does not hold record 2
      stageDelayMs = 0;
      await runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints });
      const summary = await waiter.run;
      expect(summary.waitedFor).toMatchObject({ what: replicateLockTask });
      const cycle2 = (await readCycleHistory(pair.store.pairDir(pair.record.name))).find((c) => c.cycle === 2);
      expect(summary.pointInTime).toBe(cycle2!.pointInTime); // the point in time of the cycle it waited for, not "now"
      expect(prefixHeld(await readFile(pair.secondaryPath))).toBe(2);
    } finally {
      await lock.release();
    }
  });

  it('replicate --once beside a shipper that stops first takes over: it finishes the interrupted cycle, then one that holds every earlier write', async () => {
    let linkDown = false;
    const pair = await syncedPeriodic((agent) =>
      beforeStaging(agent, () => {
        if (linkDown) throw new Error('link dropped (test)');
      }),
    );
    const pairDir = pair.store.pairDir(pair.record.name);
    const lock = await acquirePairLock(pairDir, pair.record.name, replicateLockTask); // this test is the running shipper
    let released = false;
    try {
      await pair.agent.writeRegion(pair.primaryPath, 1, record(1));
      linkDown = true;
      await expect(runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints })).rejects.toThrow(/link dropped/); // cycle 1 froze with record 1
      expect((await cycleCursorOf(pair.store, pair.record))?.cycle).toBe(1);
      linkDown = false;
      await pair.agent.writeRegion(pair.primaryPath, 2, record(2));
      const waiter = onceBesideShipper(pair);
      await new Promise((resolve) => setTimeout(resolve, 700)); // past the waiter's first look at the lock
      expect(waiter.returned()).toBe(false); // the shipper still runs: the waiter waits for it
      await lock.release(); // the shipper exits with cycle 1 unfinished
      released = true;
      const summary = await waiter.run;
      expect(summary.waitedFor).toBeNull();
      expect(waiter.warnings.join('\n')).toMatch(new RegExp(`process ${process.pid} stopped replicating ${pair.record.name} before it was in sync`));
      // Cycle 1 froze before the call (record 2 is not in it): it is finished, and one more cycle runs.
      expect(summary.cycles.map((c) => [c.cycle, c.resumed])).toEqual([
        [1, true],
        [2, false],
      ]);
      expect(summary.pointInTime).toBe(summary.cycles[1]!.pointInTime);
      expect(prefixHeld(await readFile(pair.secondaryPath))).toBe(2);
      expect(await cycleCursorOf(pair.store, pair.record)).toBeUndefined();
    } finally {
      if (!released) await lock.release();
    }
  });

  it('replicate --once whose own cycle is retried after a dropped link runs that one cycle (a retry is not a cycle from before the call)', async () => {
    let failures = 1;
    // The link drops at the cycle's apply: the cycle fails as a whole and replicate retries it.
    const pair = await syncedPeriodic(
      (agent) =>
        new Proxy(agent, {
          get(target, property, receiver) {
            const value = Reflect.get(target, property, receiver) as unknown;
            if (property !== 'stageApply' || typeof value !== 'function') return value;
            return async (...args: unknown[]) => {
              if (failures > 0) {
                failures -= 1;
                throw new TidemarkError('DISCONNECTED', 'link dropped (test)', '');
              }
              return (value as (...a: unknown[]) => Promise<void>).apply(target, args);
            };
          },
        }),
    );
    await pair.agent.writeRegion(pair.primaryPath, 1, record(1));
    await pair.agent.writeRegion(pair.primaryPath, 2, record(2));
    const warnings: string[] = [];
    const summary = await replicatePair({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, once: true, onWarning: (w) => warnings.push(w) });
    expect(warnings.join('\n')).toMatch(/cycle of .* interrupted \(link dropped \(test\)\); resuming/);
    expect(summary.cycles.map((c) => [c.cycle, c.resumed])).toEqual([[1, true]]); // retried (so resumed), and the only one
    expect(prefixHeld(await readFile(pair.secondaryPath))).toBe(2);
  });

  it('a cycle interrupted while shipping leaves the secondary at the previous boundary and resumes', async () => {
    const failAfter = { writes: undefined as number | undefined };
    let staged = 0;
    const pair = await syncedPeriodic((agent) =>
      beforeStaging(agent, () => {
        if (failAfter.writes !== undefined && staged >= failAfter.writes) throw new Error('link dropped (test)');
        staged += 1;
      }),
    );
    const writer = new RecordWriter(pair.agent, pair.primaryPath, seededRandom(baseSeed + 2));
    writer.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await cycleAndCheck(pair.store, pair.record, pair.endpoints, writer, pair.secondaryPath);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = await readFile(pair.secondaryPath);
    failAfter.writes = staged + 5;
    await expect(runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints })).rejects.toThrow(/link dropped/);
    expect((await readFile(pair.secondaryPath)).equals(before)).toBe(true); // staged only: the volume did not move
    // A sync now would later have the cycle apply its older snapshot over it: refused.
    await expect(runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' })).rejects.toThrow(
      /cycle 2 \(shipping\) unfinished/,
    );
    failAfter.writes = undefined;
    const resumed = await runCycle({ store: pair.store, pair: pair.record, endpoints: pair.endpoints });
    expect(resumed.resumed).toBe(true);
    // The interrupted cycle is recorded once, when it was finished.
    const cycles = (await readCycleHistory(pair.store.pairDir(pair.record.name))).map((c) => c.cycle);
    expect(cycles).toEqual([...new Set(cycles)]);
    expect(cycles.at(-1)).toBe(resumed.cycle);
    prefixHeld(await readFile(pair.secondaryPath));
    await writer.stop();
  });
});
