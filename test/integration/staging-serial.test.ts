// A periodic pair's staging area on the secondary (src-engine/agent/staging.ts) takes stage,
// apply and redo of one pair one at a time, in the order they were called. Without that the
// calls interleave at their awaits: two stages of a new cycle both reset the staging area (the
// later reset deletes what the earlier stage wrote), an apply issued behind stages copies
// regions before they are staged, a stage of the next cycle discards the area an apply copies
// from. The staging area is driven here as the agent holds it (the secondary volume opened
// with its hooks, members and staging), so the order of the calls is exactly the order given.
import { readFile, realpath } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAgentVolume, openAgentVolume, type AgentVolume } from '../../src-engine/agent/agent-volume';
import { runSync } from '../../src-engine/replication';
import { VolumeCatalog } from '../../src-engine/volume';
import { makeLocalPair, randomRegion } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 64;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);

const opened: AgentVolume[] = [];
afterEach(async () => {
  for (const volume of opened.splice(0)) await closeAgentVolume(volume);
});

function pick(random: () => number, count: number): number[] {
  const set = new Set<number>();
  while (set.size < count) set.add(Math.floor(random() * regionCount));
  return [...set].sort((a, b) => a - b);
}

const regionOf = (bytes: Buffer, r: number) => bytes.subarray(r * regionBytes, (r + 1) * regionBytes);

/** A synced periodic pair; its agent is then closed and the secondary opened as that agent would hold it. */
async function secondaryStaging() {
  const pair = await makeLocalPair(await tempDir(), { sizeBytes, regionBytes, mode: 'periodic' });
  await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' });
  const pairId = pair.record.pairId;
  const auth = { pairId, generation: (await pair.agent.volumeState(pair.secondaryPath)).members[0]!.generation };
  await pair.agent.dispose();
  const volume = await openAgentVolume(new VolumeCatalog(pair.agent.homeDir), await realpath(pair.secondaryPath));
  opened.push(volume);
  return { path: pair.secondaryPath, pairId, volume, staging: volume.staging!, auth };
}

async function failures(calls: readonly Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(calls);
  return settled.flatMap((s, i) => (s.status === 'rejected' ? [`call ${i}: ${(s.reason as Error).message}`] : []));
}

describe('staging is serialized per pair', () => {
  it('the stages of a cycle and its apply, issued together, apply exactly what was staged', async () => {
    const seed = baseSeed + 40;
    console.log(`[staging-serial] seed ${seed}`);
    const random = seededRandom(seed);
    const { path, pairId, staging, volume, auth } = await secondaryStaging();
    let expected = await readFile(path);
    for (let cycle = 1; cycle <= 8; cycle++) {
      const regions = pick(random, 8 + Math.floor(random() * 24));
      const data = new Map(regions.map((r) => [r, randomRegion(seed * 1000 + cycle * 100 + r, regionBytes)]));
      // Every stage and then the apply, each called before any has finished.
      const calls = [...regions.map((r) => staging.stage(pairId, cycle, r, data.get(r)!, auth)), staging.apply(pairId, cycle, regions, auth)];
      expect(await failures(calls), `cycle ${cycle}`).toEqual([]);
      expected = Buffer.from(expected);
      for (const [r, bytes] of data) bytes.copy(expected, r * regionBytes);
      const held = await readFile(path);
      expect(
        regions.filter((r) => !regionOf(held, r).equals(data.get(r)!)),
        `cycle ${cycle}: regions not holding what was staged`,
      ).toEqual([]);
      expect(held.equals(expected), `cycle ${cycle}: the volume is the previous one plus the cycle`).toBe(true);
      expect(volume.members!.require(pairId).appliedCycle).toBe(cycle);
    }
  });

  it('the next cycle staged while the previous one applies waits for that apply', async () => {
    const seed = baseSeed + 41;
    console.log(`[staging-serial] next-cycle seed ${seed}`);
    const random = seededRandom(seed);
    const { path, pairId, staging, auth } = await secondaryStaging();
    const bytesOf = (cycle: number, r: number) => randomRegion(seed + cycle * 1000 + r, regionBytes);
    const stageAll = (cycle: number, regions: readonly number[]) => regions.map((r) => staging.stage(pairId, cycle, r, bytesOf(cycle, r), auth));
    const first = pick(random, 32);
    expect(await failures(stageAll(1, first))).toEqual([]);
    // Cycle 1's apply and cycle 2's stages issued together: a stage of cycle 2 starts a new
    // staging area, discarding cycle 1's while the apply copies from it.
    const second = pick(random, 32);
    expect(await failures([staging.apply(pairId, 1, first, auth), ...stageAll(2, second)])).toEqual([]);
    const held = await readFile(path);
    expect(first.filter((r) => !regionOf(held, r).equals(bytesOf(1, r)))).toEqual([]);
    // And cycle 2 was staged whole, after the apply: nothing of it lost to cycle 1's clean-up.
    await staging.apply(pairId, 2, second, auth);
    const after = await readFile(path);
    expect(second.filter((r) => !regionOf(after, r).equals(bytesOf(2, r)))).toEqual([]);
  });
});
