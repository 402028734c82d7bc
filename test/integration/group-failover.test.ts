// Failover of a consistency group (docs/failover.md "Consistency groups"): two periodic pairs
// whose primaries are on site A and secondaries on site B. Numbered records go alternately to
// the two primaries; the group cycles; the next group cycle is cut between its applies (site
// B's agent refuses one member's apply, as a dropped link would), and then site A is lost.
// - One member applied the cycle: the failover applies it on the other from its seal, so the
//   promoted secondaries hold exactly records 1..80 (the cycle's instant), never 1..80 on one
//   and 1..40 on the other. A promotion that fails half-way is resumed by running it again.
// - No member applied it: both stay at the previous cycle (records 1..40), the seals dropped.
// Then site A comes back and the group fails back: every pair is byte-identical again.
import { readdir, writeFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import {
  GroupStore,
  PairStore,
  failbackGroup,
  failoverGroup,
  failoverPair,
  groupOf,
  runGroupCycle,
  runGroupCycleOnce,
  type EndpointResolver,
} from '../../src-engine/replication';
import { z } from 'zod';
import { defineRecord, writeRecord } from '../../src-engine/store';
import { sameBytes, syncedGroup } from '../helpers/pairs';
import { GroupRecords } from '../helpers/records';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 32;
const sizeBytes = regionBytes * regionCount;
const records = new GroupRecords(regionBytes, regionCount);

const agents: LocalAgent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.dispose().catch(() => undefined);
});

/** An agent that is gone: every call fails as a dropped link does. */
const unreachable = new Proxy({} as AgentApi, {
  get: () => () => Promise.reject(new TidemarkError('DISCONNECTED', 'connection to site A dropped', 'wait for it')),
});

interface Fault {
  method?: string;
  path?: string;
  /** The call reaches the agent and its answer is lost (else it is refused before the agent acts). */
  answerLost?: boolean;
  /** How the call fails: its link dropped (the default; retried, the cycle resumed from its cursor), the run stopped (Ctrl-C: not retried), or its group hold's lease ran out. */
  error?: 'dropped' | 'cancelled' | 'expired';
}

/** An agent whose next call of `method` on `path` fails once, as a dropped link does, when asked to. */
function faulty(agent: AgentApi, fault: Fault, site: string): AgentApi {
  return new Proxy(agent, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const call = () => (value as (...a: unknown[]) => unknown).apply(target, args);
        // As is (readRegions is an async iterable) unless the method, and the path when one is given, match.
        if (property !== fault.method || (fault.path !== undefined && args[0] !== fault.path)) return call();
        fault.method = undefined;
        const how = `(test, ${String(property)})`;
        const dropped =
          fault.error === 'cancelled'
            ? new TidemarkError('CANCELLED', `stopped at site ${site} ${how}`, 'run it again')
            : fault.error === 'expired'
              ? new TidemarkError('EXPIRED', `group hold at site ${site} was released with nothing taken ${how}`, 'the group cycle is retried')
              : new TidemarkError('DISCONNECTED', `link to site ${site} dropped ${how}`, 'retry');
        // An expired hold is one its agent released (with nothing taken) before the commit came.
        if (fault.error === 'expired') return agent.snapshotGroupAbort(args[0] as string).then(() => Promise.reject(dropped));
        return fault.answerLost ? (call() as Promise<unknown>).then(() => Promise.reject(dropped)) : Promise.reject(dropped);
      };
    },
  });
}

/** Site A holds both primaries (or, with `hostC`, site C holds b's: a cross-host group, frozen by holds), site B both secondaries. */
async function twoSiteGroup(options: { hostC?: boolean } = {}) {
  const dir = await tempDir();
  const fault: Fault = {};
  const faultC: Fault = {};
  const siteA = { home: join(dir, 'site-a'), agent: new LocalAgent(join(dir, 'site-a')) as AgentApi };
  const siteBAgent = new LocalAgent(join(dir, 'site-b'));
  const siteCAgent = options.hostC ? new LocalAgent(join(dir, 'site-c')) : undefined;
  agents.push(siteA.agent as LocalAgent, siteBAgent, ...(siteCAgent ? [siteCAgent] : []));
  const siteB = faulty(siteBAgent, fault, 'B');
  const siteC = siteCAgent ? faulty(siteCAgent, faultC, 'C') : undefined;
  const primaries = [join(dir, 'pa.img'), join(dir, 'pb.img')];
  const secondaries = [join(dir, 'sa.img'), join(dir, 'sb.img')];
  const primaryAgent = (path: string) => (siteC && path === primaries[1] ? siteC : siteA.agent);
  for (const path of primaries) await primaryAgent(path).volumeCreate(path, sizeBytes, regionBytes);
  for (const path of secondaries) await siteB.volumeCreate(path, sizeBytes, regionBytes);
  const resolver: EndpointResolver = {
    resolve: async (volref) => {
      const primary = primaries.includes(volref);
      return { volref, agent: primary ? primaryAgent(volref) : siteB, path: volref, where: primary ? 'a primary site' : 'site B' };
    },
  };
  const store = new PairStore(join(dir, 'orchestrator'));
  const groups = new GroupStore(store.homeDir);
  const group = await syncedGroup(store, resolver, { primaries, secondaries, regionBytes }, 'db');
  /** Records first..last, each to its primary (record n to volume n % 2). */
  const write = async (agent: AgentApi, paths: readonly string[], first: number, last: number) => {
    for (let n = first; n <= last; n++) await agent.writeRegion(paths[records.volumeOf(n)]!, records.regionOf(n), records.record(n));
  };
  const prefixOf = async (paths: readonly string[], agent: AgentApi) => records.prefixHeld(await Promise.all(paths.map((p) => readWhole(agent, p))));
  const cycle = () => runGroupCycle({ store, groups, group, resolver });
  /** Records 1..40, a group cycle, records 41..80, and a group cycle whose apply on member `i`'s secondary fails (the link drops). */
  const cutSecondCycleAtApply = async (i: number) => {
    await write(siteA.agent, primaries, 1, 40);
    await cycle();
    await write(siteA.agent, primaries, 41, 80);
    Object.assign(fault, { method: 'stageApplySealed', path: secondaries[i] });
    await expect(cycle()).rejects.toThrow(/link to site B dropped/);
  };
  return { siteA, siteB, siteBAgent, fault, faultC, primaryAgent, primaries, secondaries, resolver, store, groups, write, prefixOf, cutSecondCycleAtApply };
}

async function readWhole(agent: AgentApi, path: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const { data } of agent.readRegions(path, 0, regionCount)) parts.push(data);
  return Buffer.concat(parts);
}

async function memberOf(agent: AgentApi, path: string) {
  return (await agent.volumeState(path)).members[0]!;
}

describe('consistency group failover', () => {
  it('one member applied the cycle when site A was lost: the other is rolled forward from its seal, both promoted at one instant; failback converges', async () => {
    const t = await twoSiteGroup();
    await t.cutSecondCycleAtApply(1);
    const [a, b] = await Promise.all(t.secondaries.map((p) => memberOf(t.siteB, p)));
    expect(b!.sealedCycle).toBe(a!.appliedCycle); // a applied the cycle; b holds it sealed only
    expect(b!.appliedCycle).toBe(a!.appliedCycle! - 1);
    await expect(failoverPair(t.store, t.resolver, 'a', { force: true })).rejects.toThrow(/in consistency group "db": it fails over with its group/);

    await (t.siteA.agent as LocalAgent).dispose();
    t.siteA.agent = unreachable;
    await expect(failoverGroup(t.store, t.resolver, 'db')).rejects.toThrow(/primaries of group "db" are unreachable.*cycle in progress/);
    // The promotion of b reaches its agent and its answer is lost (after a's promotion was
    // recorded): running the failover again finishes it.
    Object.assign(t.fault, { method: 'pairRoleChange', path: t.secondaries[1], answerLost: true });
    await expect(failoverGroup(t.store, t.resolver, 'db', { force: true })).rejects.toThrow(/link to site B dropped/);
    expect((await t.store.require('a')).failover).not.toBeNull();
    expect((await t.store.require('b')).failover ?? null).toBeNull();
    const summary = await failoverGroup(t.store, t.resolver, 'db', { force: true });
    expect(summary.members.map((m) => m.pair)).toEqual(['b']);
    expect(await t.prefixOf(t.secondaries, t.siteB)).toBe(80);
    for (const path of t.secondaries) expect(await memberOf(t.siteB, path)).toMatchObject({ role: 'primary', generation: 2 });
    expect(await t.groups.cycleInProgress('db')).toBeUndefined();
    await expect(failoverGroup(t.store, t.resolver, 'db', { force: true })).rejects.toThrow(/group "db" already failed over/);
    // No group cycle while failed over: it would ship the current maps only, not what failback copies.
    await expect(runGroupCycleOnce(t.store, t.resolver, await t.groups.require('db'))).rejects.toThrow(
      /pair "a" of group "db" has failed over: the group cycles again once every pair is failed back/,
    );

    // Site B runs the application now; then site A comes back as the secondaries.
    await t.write(t.siteB, t.secondaries, 81, 100);
    t.siteA.agent = new LocalAgent(t.siteA.home);
    agents.push(t.siteA.agent as LocalAgent);
    const back = await failbackGroup(t.store, t.resolver, 'db');
    expect(back.members.map((m) => m.pair)).toEqual(['a', 'b']);
    expect(back.cycle?.members.map((m) => m.pair)).toEqual(['a', 'b']);
    for (const i of [0, 1]) expect(await sameBytes(t.primaries[i]!, t.secondaries[i]!, sizeBytes)).toBe(true);
    expect(await t.prefixOf(t.primaries, t.siteA.agent)).toBe(100);
    for (const name of ['a', 'b']) expect((await t.store.require(name)).failover ?? null).toBeNull();
  }, 60_000);

  /** The distinct regions records first..last land in on member `i`'s volume: what a cycle after them ships for it. */
  const regionsWritten = (i: number, first: number, last: number) =>
    new Set(
      Array.from({ length: last - first + 1 }, (_, k) => first + k)
        .filter((n) => records.volumeOf(n) === i)
        .map((n) => records.regionOf(n)),
    ).size;

  for (const fault of [
    { method: 'stageApplySealed', member: 1, answerLost: false, what: 'an apply refused' },
    { method: 'stageSeal', member: 0, answerLost: true, what: 'a seal whose answer was lost' },
  ]) {
    it(`a group cycle whose link drops (${fault.what}) resumes from its cursor and finishes, saying so, with each member's figures`, async () => {
      const t = await twoSiteGroup();
      await t.write(t.siteA.agent, t.primaries, 1, 40);
      Object.assign(t.fault, { method: fault.method, path: t.secondaries[fault.member], answerLost: fault.answerLost });
      const warnings: string[] = [];
      const cycle = await runGroupCycleOnce(t.store, t.resolver, await t.groups.require('db'), { onWarning: (w) => warnings.push(w) });
      expect(warnings).toEqual([
        expect.stringMatching(new RegExp(`^cycle of group db interrupted \\(link to site B dropped \\(test, ${fault.method}\\)\\); resuming in 200 ms$`)),
      ]);
      expect(cycle).toMatchObject({ group: 'db', resumed: true });
      // A member sealed before the cut is applied from its seal on the retry, and still reports what it shipped.
      expect(cycle.members.map((m) => m.regionsTransferred)).toEqual([regionsWritten(0, 1, 40), regionsWritten(1, 1, 40)]);
      expect(cycle.members.every((m) => m.bytesTransferred === m.regionsTransferred * regionBytes)).toBe(true);
      for (const i of [0, 1]) expect(await sameBytes(t.primaries[i]!, t.secondaries[i]!, sizeBytes)).toBe(true);
      expect(await t.prefixOf(t.secondaries, t.siteB)).toBe(40);
    });
  }

  it('a cross-host group whose hold expires before its commit is retried: a new hold, one instant, nothing left behind', async () => {
    const t = await twoSiteGroup({ hostC: true });
    for (let n = 1; n <= 40; n++)
      await t.primaryAgent(t.primaries[records.volumeOf(n)]!).writeRegion(t.primaries[records.volumeOf(n)]!, records.regionOf(n), records.record(n));
    Object.assign(t.faultC, { method: 'snapshotGroupCommit', error: 'expired' });
    const warnings: string[] = [];
    const cycle = await runGroupCycleOnce(t.store, t.resolver, await t.groups.require('db'), { onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual([
      expect.stringMatching(
        /^cycle of group db interrupted \(group hold at site C was released with nothing taken \(test, snapshotGroupCommit\)\); resuming in 200 ms$/,
      ),
    ]);
    expect(cycle.members.map((m) => m.regionsTransferred)).toEqual([regionsWritten(0, 1, 40), regionsWritten(1, 1, 40)]);
    for (const i of [0, 1]) expect(await sameBytes(t.primaries[i]!, t.secondaries[i]!, sizeBytes)).toBe(true);
    expect(await t.prefixOf(t.secondaries, t.siteB)).toBe(40);
    // The first hold's snapshot on site A (its commit went through) was deleted; the cycle's own after it.
    for (const path of t.primaries) expect((await t.primaryAgent(path).snapshotList(path)).snapshots).toEqual([]);
  });

  it('an unfinished cycle naming other pairs (left by an earlier group of the name) is refused and named, never resumed', async () => {
    const t = await twoSiteGroup();
    const loose = defineRecord('tidemark/group-cycle', 1, z.object({}).passthrough());
    const member = (pair: string) => ({ pair, cycle: 2, snapshotId: null, pointInTime: null });
    await writeRecord(t.groups.cyclePath('db'), loose, { phase: 'freezing', members: [member('a'), member('c')] });
    await expect(runGroupCycleOnce(t.store, t.resolver, await t.groups.require('db'))).rejects.toMatchObject({
      code: 'METADATA_CORRUPT',
      message: expect.stringMatching(/^the unfinished cycle of group db \(.*db\.cycle\.json\) names pairs a, c, not the group's a, b$/),
    });
  });

  it('the first apply of the cycle was cut: no member applied it, both stay at the previous cycle and the seals are dropped', async () => {
    const t = await twoSiteGroup();
    await t.cutSecondCycleAtApply(0);
    const [a, b] = await Promise.all(t.secondaries.map((p) => memberOf(t.siteB, p)));
    expect([a!.sealedCycle, b!.sealedCycle]).toEqual([a!.appliedCycle! + 1, b!.appliedCycle! + 1]);

    await (t.siteA.agent as LocalAgent).dispose();
    t.siteA.agent = unreachable;
    const summary = await failoverGroup(t.store, t.resolver, 'db', { force: true });
    expect(summary).toMatchObject({ rolledForward: [], abandonedCycle: true });
    expect(await t.prefixOf(t.secondaries, t.siteB)).toBe(40);
    for (const path of t.secondaries) {
      const member = await memberOf(t.siteB, path);
      expect(member.role).toBe('primary');
      expect(member.sealedCycle ?? null).toBeNull();
    }
    const siteBFiles = (await readdir(join(t.siteA.home, '..', 'site-b'), { recursive: true })).map(String);
    expect(siteBFiles.filter((f) => f.includes(`${sep}staging${sep}`))).toEqual([]); // the staged, sealed cycle is gone with the promotion

    // Site A back; the failback's closing group cycle is stopped (a dropped link would be retried
    // there and then): failing back again finishes it.
    const faultA: Fault = {};
    const siteAAgent = new LocalAgent(t.siteA.home);
    agents.push(siteAAgent);
    t.siteA.agent = faulty(siteAAgent, faultA, 'A');
    Object.assign(faultA, { method: 'stageApplySealed', path: t.primaries[1], error: 'cancelled' });
    await expect(failbackGroup(t.store, t.resolver, 'db')).rejects.toThrow(/stopped at site A \(test, stageApplySealed\)/);
    for (const name of ['a', 'b']) expect((await t.store.require(name)).failover ?? null).toBeNull(); // both pairs failed back
    const finished = await failbackGroup(t.store, t.resolver, 'db');
    expect(finished.members).toEqual([]);
    expect(finished.cycle?.members.map((m) => m.pair)).toEqual(['a', 'b']);
    for (const i of [0, 1]) expect(await sameBytes(t.primaries[i]!, t.secondaries[i]!, sizeBytes)).toBe(true);
    await expect(failbackGroup(t.store, t.resolver, 'db')).rejects.toThrow(/group "db" has not failed over/);
  }, 60_000);

  it('a member behind the applied cycle without its seal: refused, nothing promoted', async () => {
    const t = await twoSiteGroup();
    await t.cutSecondCycleAtApply(1);
    const a = await memberOf(t.siteB, t.secondaries[0]!);
    const b = await memberOf(t.siteB, t.secondaries[1]!);
    // b's staging area changed after its seal (by hand, say): the seal is gone.
    await t.siteB.stageRegion(t.secondaries[1]!, b.pairId, a.appliedCycle!, 0, Buffer.alloc(regionBytes), {
      auth: { pairId: b.pairId, generation: b.generation },
    });
    await (t.siteA.agent as LocalAgent).dispose();
    t.siteA.agent = unreachable;
    await expect(failoverGroup(t.store, t.resolver, 'db', { force: true })).rejects.toThrow(
      new RegExp(
        `cannot fail over at one instant: a cycle ${a.appliedCycle} applied, while b holds cycle ${b.appliedCycle} and has not sealed cycle ${a.appliedCycle}`,
      ),
    );
    for (const path of t.secondaries) expect((await memberOf(t.siteB, path)).role).toBe('secondary');
    for (const name of ['a', 'b']) expect((await t.store.require(name)).failover ?? null).toBeNull();
  }, 60_000);
  it('a damaged group record: a periodic pair (which may be grouped) fails closed, naming it; a continuous pair never reads it', async () => {
    const t = await twoSiteGroup();
    await writeFile(join(t.store.homeDir, 'groups', 'other.json'), '{"not": "a record"');
    const a = await t.store.require('a');
    await expect(groupOf(t.store, a)).rejects.toSatisfy(
      (e: unknown) => e instanceof TidemarkError && e.code === 'METADATA_CORRUPT' && e.message.includes('other.json'),
    );
    await expect(failoverPair(t.store, t.resolver, 'a', { force: true })).rejects.toThrow(/other\.json/);
    expect(await groupOf(t.store, { ...a, mode: 'continuous' })).toBeUndefined();
  });
});
