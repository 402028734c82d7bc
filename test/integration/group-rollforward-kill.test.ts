// A group failover's roll-forward killed by SIGKILL (docs/failover.md "Consistency groups"),
// with a real secondary agent: the secondaries' home runs `tidemark agent serve` (the built CLI)
// with TIDEMARK_TEST_APPLY_DELAY_MS, so each region an apply copies waits a little. Group db
// (a, b) cycles numbered records; its second cycle is cut after a applied it and b only sealed
// it (the link dropped at b's apply); the primary site is lost. `failoverGroup` applies b from
// its seal before promoting anyone — and the agent is killed inside that apply, after j of the
// cycle's regions landed (j from a printed seed). The failover fails; nothing is promoted. A new
// agent finishes the apply from its redo record when it opens b's secondary, and the failover
// run again promotes both: the two secondaries hold exactly the same prefix of the records.
import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi } from '../../src-engine/agent';
import { testApplyDelayEnv } from '../../src-engine/agent/staging';
import { TidemarkError } from '../../src-engine/errors';
import { GroupStore, PairStore, failoverGroup, runGroupCycle, type EndpointResolver } from '../../src-engine/replication';
import { until } from '../helpers/engine';
import { syncedGroup } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { GroupRecords } from '../helpers/records';
import { connectAgent, killAgent, serveAgent } from '../helpers/served-agent';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 64;
const sizeBytes = regionBytes * regionCount;
const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261125);
const records = new GroupRecords(regionBytes, regionCount);
/** Per region an apply copies (the secondaries' agent only): 64 regions take ~1.6 s. */
const applyDelayMs = 25;
const delayed = { [testApplyDelayEnv]: String(applyDelayMs) };

const children: ChildProcess[] = [];
const disposables: { dispose(): Promise<void> }[] = [];
afterEach(async () => {
  for (const d of disposables.splice(0)) await d.dispose().catch(() => undefined);
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** The agent, except that its next `stageApplySealed` on `path` is refused as a dropped link would refuse it. */
function cutOnce(agent: AgentApi, path: string): AgentApi {
  let armed = true;
  return new Proxy(agent, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property !== 'stageApplySealed' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return (...args: unknown[]) => {
        if (!armed || args[0] !== path) return (value as (...a: unknown[]) => unknown).apply(target, args);
        armed = false;
        return Promise.reject(new TidemarkError('DISCONNECTED', 'link to site B dropped (test)', 'retry'));
      };
    },
  });
}

const unreachable = new Proxy({} as AgentApi, {
  get: () => () => Promise.reject(new TidemarkError('DISCONNECTED', 'site A is gone (test)', 'wait for it')),
});

describe('group failover roll-forward killed by SIGKILL', () => {
  it('the secondaries’ agent killed inside the roll-forward apply: nothing promoted; the redo finishes it; the failover run again promotes both at one prefix', async () => {
    const dir = await tempDir('tm-');
    const [homeA, homeB] = [join(dir, 'a'), join(dir, 'b')]; // short: Unix socket paths are limited
    const siteA = new LocalAgent(homeA);
    disposables.push(siteA);
    const child = await serveAgent(homeB, delayed, children);
    let siteB: AgentApi = await connectAgent(homeB, disposables);
    const primaries = [join(dir, 'pa.img'), join(dir, 'pb.img')];
    const secondaries = [join(dir, 'sa.img'), join(dir, 'sb.img')];
    for (const path of primaries) await siteA.volumeCreate(path, sizeBytes, regionBytes);
    for (const path of secondaries) await siteB.volumeCreate(path, sizeBytes, regionBytes);
    let primaryAgent: AgentApi = siteA;
    const resolver: EndpointResolver = {
      resolve: async (volref) => {
        const primary = primaries.includes(volref);
        return { volref, agent: primary ? primaryAgent : siteB, path: volref, where: primary ? 'site A' : 'site B' };
      },
    };
    const store = new PairStore(join(dir, 'o'));
    const groups = new GroupStore(store.homeDir);
    const group = await syncedGroup(store, resolver, { primaries, secondaries, regionBytes }, 'db');
    const write = async (first: number, last: number) => {
      for (let n = first; n <= last; n++) await siteA.writeRegion(primaries[records.volumeOf(n)]!, records.regionOf(n), records.record(n));
    };

    // Cycle 1 holds records 1..128 (every region of both volumes); cycle 2's 129..256 rewrite every region again.
    await write(1, 128);
    await runGroupCycle({ store, groups, group, resolver });
    await write(129, 256);
    const healthyB = siteB;
    siteB = cutOnce(healthyB, secondaries[1]!);
    await expect(runGroupCycle({ store, groups, group, resolver })).rejects.toThrow(/link to site B dropped/);
    siteB = healthyB;
    const state = async (path: string) => (await siteB.volumeState(path)).members[0]!;
    expect(await state(secondaries[0]!)).toMatchObject({ appliedCycle: 2 });
    expect(await state(secondaries[1]!)).toMatchObject({ appliedCycle: 1, sealedCycle: 2 });

    // Site A is lost. b's target is its primary as cycle 2 froze it (nothing was written since).
    const target = await readFile(primaries[1]!);
    const before = await readFile(secondaries[1]!);
    primaryAgent = unreachable;
    const regionOf = (bytes: Buffer, r: number) => bytes.subarray(r * regionBytes, (r + 1) * regionBytes);
    const changing = Array.from({ length: regionCount }, (_, r) => r).filter((r) => !regionOf(target, r).equals(regionOf(before, r)));
    expect(changing).toHaveLength(regionCount);
    const j = 1 + Math.floor(seededRandom(seed)() * (changing.length - 8));
    console.log(`[group-rollforward-kill] seed ${seed}: kill after ${j} of ${changing.length} regions of b's roll-forward`);
    const landed = (bytes: Buffer) => changing.filter((r) => regionOf(bytes, r).equals(regionOf(target, r))).length;

    const failover = failoverGroup(store, resolver, 'db', { force: true });
    failover.catch(() => undefined); // awaited below
    await until(async () => landed(await readFile(secondaries[1]!)) >= j, 20_000, `${j} regions of b's roll-forward applied`);
    await killAgent(child);
    await expect(failover).rejects.toThrow();
    const torn = landed(await readFile(secondaries[1]!));
    console.log(`[group-rollforward-kill] ${torn} of ${changing.length} regions applied at the kill`);
    expect(torn, 'the kill hit the middle of the copy').toBeLessThan(changing.length);
    for (const name of ['a', 'b']) expect((await store.require(name)).failover ?? null, `${name} not promoted`).toBeNull();

    // A new agent finishes the apply from its redo record when it opens b's secondary.
    await serveAgent(homeB, delayed, children);
    siteB = await connectAgent(homeB, disposables);
    expect(await state(secondaries[1]!)).toMatchObject({ appliedCycle: 2 });
    expect((await readFile(secondaries[1]!)).equals(target), 'b’s secondary is exactly its cycle-2 snapshot').toBe(true);

    const done = await failoverGroup(store, resolver, 'db', { force: true });
    expect(done.members.map((m) => m.pair).sort()).toEqual(['a', 'b']);
    for (const name of ['a', 'b']) expect((await store.require(name)).failover?.phase).toBe('promoted');
    expect(records.prefixHeld(await Promise.all(secondaries.map((p) => readFile(p))))).toBe(256);
  }, 60_000);
});
