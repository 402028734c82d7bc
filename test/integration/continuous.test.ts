// Continuous replication (seed 003) through the primary's agent: every write is tracked in OOS
// (MOOS persisted), `replicatePair --once` ships exactly the written regions, a concurrent
// writer's regions are never lost, a dropped link re-marks what did not land, a reopened agent
// resends MOOS, and a catch-up runs under a protective snapshot of the secondary.
import { describe, expect, it } from 'vitest';
import { LocalAgent } from '../../src-engine/agent';
import {
  acquirePairLock,
  protectSnapshotLabelPrefix,
  replicateLockTask,
  replicatePair,
  runSync,
  shipContinuous,
  waitInSync,
} from '../../src-engine/replication';
import { makeLocalPair, onceBesideShipper, RandomWriter, recordingAgent, sameBytes, type LocalPair, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 64 * 1024;
const regionCount = 256; // 16 MiB
const sizeBytes = regionCount * regionBytes;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

function pick(random: () => number, count: number): number[] {
  const set = new Set<number>();
  while (set.size < count) set.add(Math.floor(random() * regionCount));
  return [...set].sort((a, b) => a - b);
}

async function syncedPair(seed: number, wrapSecondary?: Parameters<typeof makeLocalPair>[1]['wrapSecondary']): Promise<LocalPair> {
  const pair = await makeLocalPair(await tempDir(), {
    sizeBytes,
    regionBytes,
    prepare: (agent, p) => writeRandomRegions(agent, p, regionBytes, pick(seededRandom(seed), 64), seed),
    wrapSecondary,
  });
  await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' });
  return pair;
}

function totalWrites(recorder: ReturnType<typeof recordingAgent>): number {
  return [...recorder.writes.values()].reduce((a, b) => a + b, 0);
}

/** A synced, replicated pair whose link to the secondary drops after `failAfter.writes` region writes (undefined: never). */
async function pairWithFlakyLink(seed: number) {
  const failAfter = { writes: undefined as number | undefined };
  let recorder: ReturnType<typeof recordingAgent> | undefined;
  const pair = await syncedPair(seed, (agent) => (recorder = recordingAgent(agent, { failAfterWrites: () => failAfter.writes })));
  await replicateOnce(pair);
  return { pair, failAfter, recorder: recorder! };
}

async function replicateOnce(pair: LocalPair) {
  const record = await pair.store.require(pair.record.name);
  return replicatePair({ store: pair.store, pair: record, endpoints: pair.endpoints, once: true });
}

describe('continuous replication', () => {
  it('ships exactly the regions written since the sync, then the pair is in sync', async () => {
    const seed = baseSeed;
    console.log(`[continuous] ships-written seed ${seed}`);
    const pair = await syncedPair(seed);
    // The sync conveyed every write before its point in time: nothing tracked is left to ship.
    expect((await replicateOnce(pair)).regionsTransferred).toBe(0);
    // In sync under tracking, the sync's markers go: no LCS copy-on-write, no `since` bitmap writes.
    expect((await pair.agent.volumeState(pair.secondaryPath)).members[0]!.lcsSnapshotId).toBeNull();
    expect((await pair.agent.snapshotList(pair.secondaryPath)).snapshots).toEqual([]);
    expect(await pair.agent.bitmapList(pair.primaryPath)).toEqual([]);
    const written = pick(seededRandom(seed + 1), 40);
    const writesStartMs = Date.now();
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, written, seed + 1);
    const agedMs = 60;
    await new Promise((resolve) => setTimeout(resolve, agedMs));
    const state = await pair.agent.trackingState(pair.primaryPath, pair.record.pairId);
    const sinceStartMs = Date.now() - writesStartMs;
    expect(state.oosRegions).toBe(written.length);
    expect(state.moosRegions).toBeGreaterThanOrEqual(written.length);
    // The oldest unshipped write is older than the wait after the last one, and younger than the first.
    expect(state.oldestUnshippedMs).toBeGreaterThanOrEqual(agedMs - 2);
    expect(state.oldestUnshippedMs).toBeLessThanOrEqual(sinceStartMs + 2);
    const summary = await replicateOnce(pair);
    expect(summary.regionsTransferred).toBe(written.length);
    expect(summary.bytesTransferred).toBe(written.length * regionBytes);
    expect(summary.inSync).toBe(true);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
    const after = await waitInSync(pair.store, pair.record, pair.endpoints, { timeoutMs: 1000 });
    expect(after.oosRegions + after.inFlightRegions).toBe(0);
    expect((await pair.agent.trackingState(pair.primaryPath, pair.record.pairId)).oldestUnshippedMs).toBe(0); // nothing left unshipped
  });

  it('--limit-rate holds shipping to the rate: the run takes at least the bytes over the rate, less the bucket’s burst', async () => {
    const seed = baseSeed + 40;
    console.log(`[continuous] limit-rate seed ${seed}`);
    const pair = await syncedPair(seed);
    const written = pick(seededRandom(seed + 1), 48); // 3 MiB
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, written, seed + 1);
    const limitBytesPerSecond = 4 * 2 ** 20;
    const record = await pair.store.require(pair.record.name);
    const startMs = performance.now();
    const summary = await replicatePair({
      store: pair.store,
      pair: record,
      endpoints: pair.endpoints,
      once: true,
      limitRateBytesPerSecond: limitBytesPerSecond,
    });
    const elapsedMs = performance.now() - startMs;
    expect(summary.bytesTransferred).toBe(written.length * regionBytes);
    // A lower bound only (a loaded machine is slower, never faster): the limit cannot be beaten.
    const burstBytes = Math.max(regionBytes, limitBytesPerSecond / 4); // TokenBucket's depth: a quarter second
    expect(elapsedMs).toBeGreaterThanOrEqual(((summary.bytesTransferred - burstBytes) / limitBytesPerSecond) * 1000 - 20);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });

  it('a writer running during shipping loses nothing: once it stops, one more pass makes the volumes identical', async () => {
    const seed = baseSeed + 1;
    console.log(`[continuous] concurrent-writer seed ${seed}`);
    const pair = await syncedPair(seed);
    const writer = new RandomWriter(pair.agent, pair.primaryPath, regionBytes, regionCount, seed);
    writer.start();
    const controller = new AbortController();
    const shipping = shipContinuous({ pair: pair.record, endpoints: pair.endpoints, once: false, signal: controller.signal, batchRegionsMax: 8 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    await writer.stop();
    expect(writer.written.size).toBeGreaterThan(5);
    // The running shipper catches up on its own.
    await waitInSync(pair.store, pair.record, pair.endpoints, { timeoutMs: 20_000 });
    controller.abort();
    await expect(shipping).rejects.toThrow(/stopped/);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });

  it('a link that drops mid-batch re-marks the regions that did not land; the next run converges', async () => {
    const seed = baseSeed + 2;
    console.log(`[continuous] dropped-link seed ${seed}`);
    const { pair, failAfter, recorder } = await pairWithFlakyLink(seed);
    const written = pick(seededRandom(seed + 1), 60);
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, written, seed + 1);
    failAfter.writes = totalWrites(recorder) + 25;
    recorder.writes.clear();
    await expect(shipContinuous({ pair: pair.record, endpoints: pair.endpoints, once: true, attemptsMax: 1, protect: false })).rejects.toThrow(
      /link to the secondary dropped/,
    );
    const state = await pair.agent.trackingState(pair.primaryPath, pair.record.pairId);
    expect(state.inFlightRegions).toBe(0); // settled: shipped or out of sync again
    expect(state.oosRegions).toBeGreaterThan(0);
    failAfter.writes = undefined;
    const summary = await replicateOnce(pair);
    expect(summary.regionsTransferred).toBe(state.oosRegions);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
    // Each region at most twice: once before the drop (not acknowledged), once after.
    for (const count of recorder.writes.values()) expect(count).toBeLessThanOrEqual(2);
  });

  it('the batch taken ahead (realized while the previous one ships) goes back when shipping fails or stops', async () => {
    const seed = baseSeed + 5;
    console.log(`[continuous] batch-ahead seed ${seed}`);
    const { pair, failAfter, recorder } = await pairWithFlakyLink(seed);
    const written = pick(seededRandom(seed + 1), 60);
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, written, seed + 1);
    // Batches of 8: the write that fails is in the third batch, while the fourth is taken ahead.
    failAfter.writes = totalWrites(recorder) + 20;
    const failing = shipContinuous({ pair: pair.record, endpoints: pair.endpoints, once: true, attemptsMax: 1, batchRegionsMax: 8 });
    await expect(failing).rejects.toThrow(/link to the secondary dropped/);
    let state = await pair.agent.trackingState(pair.primaryPath, pair.record.pairId);
    expect(state.inFlightRegions).toBe(0);
    expect(state.oosRegions).toBeGreaterThanOrEqual(written.length - 16 - 8);
    failAfter.writes = undefined;
    // Stopped by its signal mid-catch-up: nothing stays taken either.
    const controller = new AbortController();
    let batches = 0;
    const stopping = shipContinuous({
      pair: pair.record,
      endpoints: pair.endpoints,
      once: true,
      batchRegionsMax: 8,
      signal: controller.signal,
      onProgress: (progress) => {
        if (progress.regionsTransferred >= 8 && batches++ === 0) controller.abort();
      },
    });
    await expect(stopping).rejects.toThrow(/stopped/);
    state = await pair.agent.trackingState(pair.primaryPath, pair.record.pairId);
    expect(state.inFlightRegions).toBe(0);
    expect(state.oosRegions).toBeGreaterThan(0);
    const summary = await replicateOnce(pair);
    expect(summary.regionsTransferred).toBe(state.oosRegions);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });

  it('a catch-up takes a protective snapshot of the secondary, recorded in its member, released when in sync', async () => {
    const seed = baseSeed + 3;
    const { pair, failAfter, recorder } = await pairWithFlakyLink(seed);
    const before = await pair.agent.snapshotList(pair.secondaryPath);
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, pick(seededRandom(seed), 30), seed);
    failAfter.writes = totalWrites(recorder) + 10;
    await expect(shipContinuous({ pair: pair.record, endpoints: pair.endpoints, once: true, attemptsMax: 1 })).rejects.toThrow();
    failAfter.writes = undefined;
    const member = (await pair.agent.volumeState(pair.secondaryPath)).members[0]!;
    expect(member.protectSnapshotId).toEqual(expect.any(String));
    const protect = (await pair.agent.snapshotList(pair.secondaryPath)).snapshots.filter((s) => s.label.startsWith(protectSnapshotLabelPrefix));
    expect(protect.map((s) => s.snapshotId)).toEqual([member.protectSnapshotId]);
    // The interrupted catch-up resumes under the same snapshot (the secondary is inconsistent now).
    const summary = await shipContinuous({ pair: pair.record, endpoints: pair.endpoints, once: true });
    expect(summary.protectSnapshots).toBe(0);
    expect((await pair.agent.volumeState(pair.secondaryPath)).members[0]!.protectSnapshotId).toBeNull();
    expect((await pair.agent.snapshotList(pair.secondaryPath)).snapshots.map((s) => s.snapshotId)).toEqual(before.snapshots.map((s) => s.snapshotId));
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });

  it('a reopened agent resends what was not shipped: a clean stop exactly OOS, never a full resync', async () => {
    const seed = baseSeed + 4;
    const pair = await syncedPair(seed);
    await replicateOnce(pair);
    const written = pick(seededRandom(seed), 20);
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, written, seed);
    await pair.agent.dispose(); // a clean stop: MOOS narrowed to OOS
    const agent = new LocalAgent(pair.agent.homeDir);
    try {
      const endpoints = {
        primary: { ...pair.endpoints.primary, agent },
        secondary: { ...pair.endpoints.secondary, agent },
      };
      const state = await agent.trackingState(pair.primaryPath, pair.record.pairId);
      expect(state.recoveredRegions).toBe(written.length);
      const record = await pair.store.require('p');
      const summary = await replicatePair({ store: pair.store, pair: record, endpoints, once: true });
      expect(summary.regionsTransferred).toBe(written.length);
      expect(summary.recoveredRegions).toBe(written.length);
      expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
    } finally {
      await agent.dispose();
    }
  });

  it('replicate --once beside a shipper waits for it, and takes over when it stops before the pair is in sync', async () => {
    const seed = baseSeed + 70;
    console.log(`[continuous] takeover seed ${seed}`);
    const pair = await syncedPair(seed);
    const pairDir = pair.store.pairDir(pair.record.name);
    const lock = await acquirePairLock(pairDir, pair.record.name, replicateLockTask); // this test is a shipper that ships nothing
    let released = false;
    try {
      const written = pick(seededRandom(seed + 1), 30);
      await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, written, seed + 1);
      const waiter = onceBesideShipper(pair);
      await new Promise((resolve) => setTimeout(resolve, 700)); // past the waiter's first look at the lock
      expect(waiter.returned()).toBe(false);
      await lock.release(); // the shipper exits with everything unshipped
      released = true;
      const summary = await waiter.run;
      expect(summary.waitedFor).toBeNull();
      expect(waiter.warnings.join('\n')).toMatch(/stopped replicating .* before it was in sync; replicating it here/);
      expect(summary.regionsTransferred).toBe(written.length);
      expect(summary.inSync).toBe(true);
      expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
    } finally {
      if (!released) await lock.release();
    }
  });

  it('a pair never synced is synced first, then replicated', async () => {
    const pair = await makeLocalPair(await tempDir(), {
      sizeBytes,
      regionBytes,
      prepare: (agent, p) => writeRandomRegions(agent, p, regionBytes, [1, 5, 9], 7),
    });
    const summary = await replicatePair({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, once: true });
    expect(summary.sync?.method).toBe('tardy');
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });
});
