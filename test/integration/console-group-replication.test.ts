// The console's replication of a consistency group: starting a grouped pair starts one run of
// the group's cycles in the background, which every member's state shows (the cycle under
// way, the group's last cycle, the member's own cycles) and any member's stop, pause or resume
// acts on; Run one group cycle is the same run with `once`. Real agents, volumes and cycles.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupStore, acquirePairLock, type Engine } from '../../src-engine';
import { ConsoleService } from '../../src-main/console-service';
import { engineWithLab, until } from '../helpers/engine';
import { writeRandomRegions } from '../helpers/pairs';

const MiB = 2 ** 20;
let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose();
  engine = undefined;
});

/** Two synced periodic pairs, `a` and `b`, in group `db`; their primaries' paths. */
async function groupOfTwo(intervalMs: number): Promise<{ engine: Engine; primaries: Record<'a' | 'b', string> }> {
  const started = await engineWithLab();
  engine = started.engine;
  const primaries = { a: '', b: '' };
  for (const name of ['a', 'b'] as const) {
    const [primary, secondary] = [join(started.homeDir, `${name}-p.img`), join(started.homeDir, `${name}-s.img`)];
    await engine.agent.volumeCreate(primary, 16 * MiB, MiB);
    await engine.agent.volumeCreate(secondary, 16 * MiB, MiB);
    await engine.pairOps.create({ name, primary, secondary, mode: 'periodic', intervalMs });
    await engine.pairOps.startSync(name, 'auto');
    await until(() => engine!.pairOps.syncState(name)?.running === false, 20_000, `the first sync of ${name}`);
    primaries[name] = primary;
  }
  await new GroupStore(started.homeDir).create('db', ['a', 'b'], engine.pairs);
  return { engine, primaries };
}

async function expectInSync(e: Engine, name: string): Promise<void> {
  expect(await e.pairOps.verify(name)).toMatchObject({ regionsDiffering: 0 });
}

describe('console replication of a consistency group', () => {
  it('Run one group cycle: one background run both members show, its cycle under way, the group’s cycle and each member’s own', async () => {
    const { engine: e, primaries } = await groupOfTwo(60_000);
    await writeRandomRegions(e.agent, primaries.a, MiB, [1, 2], 1);
    await writeRandomRegions(e.agent, primaries.b, MiB, [4], 2);
    // 3 MiB at 2 MiB/s: long enough to watch the cycle ship.
    const started = await e.replication.start('a', { once: true, limitRateBytesPerSecond: 2 * MiB });
    expect(started).toMatchObject({ pair: 'a', running: true, group: 'db', once: true });
    expect(e.replication.state('b')).toMatchObject({ pair: 'b', running: true, group: 'db', once: true });
    // A member of the running group cannot start a run of its own, nor fail over under it.
    await expect(e.replication.start('b')).rejects.toMatchObject({ code: 'BUSY', message: 'group db is already replicating' });
    await expect(e.pairOps.failover('b')).rejects.toMatchObject({
      code: 'BUSY',
      message: expect.stringMatching(/^pair [ab] is replicating with group db in this console$/),
    });

    await until(() => e.replication.state('b')?.cycleProgress?.phase === 'shipping', 20_000, 'the group’s cycle shipping');
    const shipping = e.replication.state('b')!;
    expect(shipping.cycleProgress).toMatchObject({ cycle: 1 });
    expect(['a', 'b']).toContain(shipping.cycleProgress!.pair);
    expect(shipping.cycleStartedAtMs).toBeGreaterThanOrEqual(started.startedAtMs);

    await until(() => e.replication.state('a')?.running === false, 30_000, 'the group’s cycle');
    const [a, b] = [e.replication.state('a')!, e.replication.state('b')!];
    expect(a).toMatchObject({ running: false, paused: false, error: null, cycleProgress: null, cycleStartedAtMs: null });
    expect(a.lastGroupCycle).toMatchObject({
      group: 'db',
      members: [
        { pair: 'a', cycle: 1, regionsTransferred: 2 },
        { pair: 'b', cycle: 1, regionsTransferred: 1 },
      ],
      regionsTransferred: 3,
    });
    expect(b.lastGroupCycle).toEqual(a.lastGroupCycle);
    expect(a.cycles).toEqual([expect.objectContaining({ cycle: 1, regionsTransferred: 2, pointInTime: a.lastGroupCycle!.pointInTime })]);
    expect(b.cycles).toEqual([expect.objectContaining({ cycle: 1, regionsTransferred: 1, pointInTime: a.lastGroupCycle!.pointInTime })]);
    await expectInSync(e, 'a');
    await expectInSync(e, 'b');
    const kinds = e.events.list().map((event) => event.kind);
    expect(kinds.filter((k) => k === 'group.cycle')).toHaveLength(1);
    expect(e.events.list().find((event) => event.kind === 'replication.started')?.message).toBe('replicating group db (a, b): one cycle');

    // Deleted in the console, the group's ended run goes from both pairs' panels.
    const service = new ConsoleService(e);
    expect(await service.handle('groupDelete', { name: 'db' })).toMatchObject({ ok: true });
    expect(e.replication.state('a')).toBeNull();
    expect(e.replication.state('b')).toBeNull();
    await new GroupStore(e.pairs.homeDir).create('db', ['a', 'b'], e.pairs);
    expect(await e.replication.start('b', { once: true })).toMatchObject({ group: 'db' });
    await until(() => e.replication.state('b')?.running === false, 20_000, 'one more group cycle');

    // The group dissolved, a's own run replaces the group's on both pairs: b shows no run any more.
    await new GroupStore(e.pairs.homeDir).delete('db', e.pairs);
    expect(await e.replication.start('a', { once: true })).toMatchObject({ pair: 'a', group: null, once: true });
    expect(e.replication.state('b')).toBeNull();
    await until(() => e.replication.state('a')?.running === false, 20_000, 'a’s own cycle');
    expect(e.replication.state('a')).toMatchObject({ error: null, lastGroupCycle: null, cycles: [expect.objectContaining({ cycle: 3 })] });
  });

  it('Start runs the group’s cycles at its interval; a member’s pause and the other’s resume carry the run; Stop on either ends it', async () => {
    const { engine: e, primaries } = await groupOfTwo(300);
    await e.replication.start('a');
    await until(() => (e.replication.state('a')?.cycles.length ?? 0) >= 1, 20_000, 'a first group cycle');
    await writeRandomRegions(e.agent, primaries.b, MiB, [7, 9], 3);
    // The two writes may land in one cycle or two: wait for both, however they were cut.
    const bShipped = () => e.replication.state('b')?.cycles.reduce((sum, c) => sum + c.regionsTransferred, 0) ?? 0;
    await until(() => bShipped() >= 2, 20_000, 'b’s writes in later cycles');

    const paused = await e.replication.pause('b');
    expect(paused).toMatchObject({ pair: 'b', running: false, paused: true, group: 'db' });
    expect(e.replication.state('a')).toMatchObject({ running: false, paused: true });
    const cyclesAtPause = e.replication.state('a')!.cycles.length;
    await writeRandomRegions(e.agent, primaries.a, MiB, [3], 4);
    await new Promise((resolve) => setTimeout(resolve, 700)); // two intervals: no cycle while paused
    expect(e.replication.state('a')!.cycles).toHaveLength(cyclesAtPause);

    const resumed = await e.replication.resume('a');
    expect(resumed).toMatchObject({ running: true, group: 'db', startedAtMs: paused.startedAtMs });
    const aShipped = () => e.replication.state('a')?.cycles.reduce((sum, c) => sum + c.regionsTransferred, 0) ?? 0;
    await until(() => aShipped() >= 1, 20_000, 'a’s write after the resume');
    const stopped = await e.replication.stop('b');
    expect(stopped).toMatchObject({ pair: 'b', running: false, paused: false });
    expect(e.replication.state('a')).toMatchObject({ running: false, paused: false, error: null });
    await expectInSync(e, 'a');
    await expectInSync(e, 'b');
    // Stopped, the members are free again: a pair of the group starts the group's run anew.
    expect(await e.replication.start('b', { once: true })).toMatchObject({ running: true, group: 'db' });
    await until(() => e.replication.state('b')?.running === false, 20_000, 'one more group cycle');
    expect(e.replication.state('b')?.error).toBeNull();
  });

  it('two starts at once (a double click, or two members): one run starts, the other is refused; the run stops and frees its pairs', async () => {
    const { engine: e } = await groupOfTwo(60_000);
    const [first, second] = await Promise.allSettled([e.replication.start('a'), e.replication.start('b')]);
    const outcomes = [first.status, second.status].sort();
    expect(outcomes).toEqual(['fulfilled', 'rejected']);
    const refused = (first.status === 'rejected' ? first.reason : (second as PromiseRejectedResult).reason) as { code: string; message: string };
    expect(refused).toMatchObject({ code: 'BUSY', message: 'group db is already replicating' });
    await until(() => (e.replication.state('a')?.cycles.length ?? 0) >= 1, 20_000, 'the group’s first cycle');
    await e.replication.stop('b');
    expect(e.replication.state('a')).toMatchObject({ running: false, error: null });
    // Nothing of ours holds the pairs any more: a new run starts.
    expect(await e.replication.start('a', { once: true })).toMatchObject({ running: true });
    await until(() => e.replication.state('a')?.running === false, 20_000, 'one more cycle');
    expect(e.replication.state('a')?.error).toBeNull();
  });

  it('a group failed over does not cycle: its start is refused with the reason and the fix, nothing runs', async () => {
    const { engine: e, primaries } = await groupOfTwo(60_000);
    await writeRandomRegions(e.agent, primaries.a, MiB, [1], 5);
    const failover = await e.pairOps.failover('a');
    expect(failover.groupFailover?.members.map((m) => m.pair).sort()).toEqual(['a', 'b']);
    await expect(e.replication.start('b', { once: true })).rejects.toMatchObject({
      code: 'USAGE',
      message: 'pair "a" of group "db" has failed over: the group cycles again once every pair is failed back',
      hint: "run `tidemark failback db` (it fails back every pair, then runs the group's cycle)",
    });
    expect(e.replication.state('a')).toBeNull();
    expect(e.replication.state('b')).toBeNull();
  });

  it('the console creates and deletes groups: refusals name the cause, a busy member or group is refused, a damaged record leaves the overview working', async () => {
    const started = await engineWithLab();
    engine = started.engine;
    const e = started.engine;
    for (const name of ['a', 'b']) {
      const [primary, secondary] = [join(started.homeDir, `${name}-p.img`), join(started.homeDir, `${name}-s.img`)];
      await e.agent.volumeCreate(primary, 16 * MiB, MiB);
      await e.agent.volumeCreate(secondary, 16 * MiB, MiB);
      await e.pairOps.create({ name, primary, secondary, mode: 'periodic', intervalMs: 60_000 });
      await e.pairOps.startSync(name, 'auto');
      await until(() => e.pairOps.syncState(name)?.running === false, 20_000, `the first sync of ${name}`);
    }
    const service = new ConsoleService(e);
    const call = async (verb: 'groupCreate' | 'groupDelete', args: object) => service.handle(verb, args as never);

    expect(await call('groupCreate', { name: 'db', pairs: ['a', 'lab'] })).toMatchObject({
      ok: false,
      error: { code: 'USAGE', message: 'pair "lab" is continuous: a consistency group cycles periodic pairs' },
    });
    expect(await call('groupCreate', { name: 'db', pairs: ['a'] })).toMatchObject({ ok: false, error: { code: 'BAD_ARGUMENTS' } }); // the schema: two or more
    await e.replication.start('b');
    expect(await call('groupCreate', { name: 'db', pairs: ['a', 'b'] })).toMatchObject({
      ok: false,
      error: { code: 'BUSY', message: 'pair b is replicating in this console' },
    });
    await e.replication.stop('b');

    const created = await call('groupCreate', { name: 'db', pairs: ['a', 'b'] });
    expect(created).toMatchObject({ ok: true, result: { groups: [{ name: 'db', pairs: ['a', 'b'] }], groupsError: null } });
    expect(e.events.list().map((event) => event.kind)).toContain('group.created');
    // A grouped pair is not deleted from under its group (which could then neither cycle nor fail over).
    await expect(e.pairOps.delete('a')).rejects.toMatchObject({ code: 'USAGE', message: 'pair "a" is in consistency group "db"' });
    // Nor does a pair take a group's name (replicate, failover and failback take either).
    await expect(e.pairOps.create({ name: 'db', primary: join(started.homeDir, 'x.img'), secondary: join(started.homeDir, 'y.img') })).rejects.toMatchObject({
      code: 'ALREADY_EXISTS',
    });
    await e.replication.start('a');
    expect(await call('groupDelete', { name: 'db' })).toMatchObject({
      ok: false,
      error: { code: 'BUSY', message: expect.stringMatching(/^group db is replicating in this console/) },
    });
    await e.replication.stop('a');
    expect(await call('groupDelete', { name: 'db' })).toMatchObject({ ok: true, result: { groups: [] } });

    // A member held by another process (its pair lock: a CLI replicating it, say): the group is neither made nor deleted under it.
    const held = await acquirePairLock(e.pairs.pairDir('b'), 'b', 'replicate');
    try {
      expect(await call('groupCreate', { name: 'db', pairs: ['a', 'b'] })).toMatchObject({
        ok: false,
        error: { code: 'BUSY', message: expect.stringMatching(/^pair "b" is busy: process \d+ is running replicate on it$/) },
      });
    } finally {
      await held.release();
    }
    expect(await call('groupCreate', { name: 'db', pairs: ['a', 'b'] })).toMatchObject({ ok: true });
    const holdA = await acquirePairLock(e.pairs.pairDir('a'), 'a', 'replicate');
    try {
      expect(await call('groupDelete', { name: 'db' })).toMatchObject({ ok: false, error: { code: 'BUSY' } });
      expect((await new GroupStore(started.homeDir).get('db'))?.pairs).toEqual(['a', 'b']); // still there
    } finally {
      await holdA.release();
    }
    expect(await call('groupDelete', { name: 'db' })).toMatchObject({ ok: true });

    // A failed-over pair joins no group: the group's secondaries would not hold one instant.
    await e.pairOps.failover('a');
    expect(await call('groupCreate', { name: 'db', pairs: ['a', 'b'] })).toMatchObject({
      ok: false,
      error: { code: 'USAGE', message: 'pair "a" is failed over' },
    });

    await writeFile(join(started.homeDir, 'groups', 'bad.json'), '{ not json');
    const overview = await service.handle('overview', {});
    expect(overview).toMatchObject({ ok: true, result: { groups: [], groupsError: { message: expect.stringContaining('bad.json') } } });
    expect((overview as { result: { pairs: unknown[] } }).result.pairs).toHaveLength(3);
  });
});
