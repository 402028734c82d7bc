// Cancelling the console's background role changes (engine.roles.cancel, the `roleTaskCancel`
// verb), against the real engine and agent: a rate-limited failback stopped while it copies
// keeps the demotion and the rest of its resync map, and Fail back again copies only what is
// left; a migrate stopped while it drains changes nothing, and a later one finishes.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine, RoleTaskState } from '../../src-engine';
import { PairStore, failbackPair, readMigrateJournal } from '../../src-engine/replication';
import { ConsoleService } from '../../src-main/console-service';
import type { RoleTaskDto } from '../../src-main/console-api';
import { engineWithLab, until } from '../helpers/engine';
import { sameBytes, writeRandomRegions } from '../helpers/pairs';

const MiB = 2 ** 20;
const volumeBytes = 256 * MiB;
const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);
let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose();
  engine = undefined;
});

/** A synced continuous pair of two 256 MiB volumes on this machine, in a fresh engine. */
async function syncedPair(name: string) {
  const started = await engineWithLab();
  engine = started.engine;
  const [primary, secondary] = [join(started.homeDir, `${name}-a.img`), join(started.homeDir, `${name}-b.img`)];
  await engine.agent.volumeCreate(primary, volumeBytes, MiB);
  await engine.agent.volumeCreate(secondary, volumeBytes, MiB);
  await engine.pairOps.create({ name, primary, secondary });
  await engine.pairOps.startSync(name, 'auto');
  await until(() => engine!.pairOps.syncState(name)?.running === false, 30_000, 'the first sync');
  expect(engine.pairOps.syncState(name)?.error).toBeNull();
  return { engine, primary, secondary, service: new ConsoleService(engine) };
}

async function finished(engine: Engine, name: string): Promise<RoleTaskState> {
  await until(() => engine.roles.state(name)?.running === false, 60_000, `the role change of ${name} to end`);
  return engine.roles.state(name)!;
}

describe('cancelling a failback or migrate in the console', () => {
  it('a failback cancelled as it starts changes nothing: the pair stays failed over, and a later failback copies the whole map', async () => {
    const { engine, primary, secondary } = await syncedPair('early');
    await engine.pairOps.failover('early');
    await writeRandomRegions(engine.agent, secondary, MiB, [3, 4, 5], seed);
    await engine.roles.startFailback('early');
    engine.roles.cancel('early'); // before it reached either side
    const stopped = await finished(engine, 'early');
    expect(stopped.error).toMatchObject({ code: 'CANCELLED', message: 'failback of early cancelled before it changed anything' });
    expect((await engine.pairs.require('early')).failover?.phase).toBe('promoted'); // not seeded: nothing was demoted or marked
    await engine.roles.startFailback('early');
    expect((await finished(engine, 'early')).failback).toMatchObject({ regionsTransferred: 3 });
    expect(await sameBytes(primary, secondary, volumeBytes)).toBe(true);
  }, 120_000);

  it('a failback cancelled while it prepares stops before copying: the loser stays demoted and the map is kept for the next one', async () => {
    const { engine, primary, secondary } = await syncedPair('prep');
    await engine.pairOps.failover('prep');
    await writeRandomRegions(engine.agent, secondary, MiB, [3, 4, 5], seed);
    const controller = new AbortController();
    // The cancel lands just as the preparation records the marked map (phase 'seeded').
    class CancelAtSeeded extends PairStore {
      override async update(name: string, change: Parameters<PairStore['update']>[1]) {
        const record = await super.update(name, change);
        if (change.failover?.phase === 'seeded') controller.abort();
        return record;
      }
    }
    let copied = false;
    const replicate = () => {
      copied = true;
      return Promise.reject(new Error('the copy started'));
    };
    await expect(
      failbackPair(new CancelAtSeeded(engine.pairs.homeDir), engine.pairOps, 'prep', { signal: controller.signal, replicate }),
    ).rejects.toMatchObject({
      code: 'CANCELLED',
      message: `failback of prep cancelled: ${primary} is demoted and the rest of the resync map is kept`,
    });
    expect(copied).toBe(false);
    expect((await engine.pairs.require('prep')).failover?.phase).toBe('seeded');
    await engine.roles.startFailback('prep');
    expect((await finished(engine, 'prep')).failback).toMatchObject({ regionsTransferred: 3 });
    expect(await sameBytes(primary, secondary, volumeBytes)).toBe(true);
  }, 120_000);

  it('a failback cancelled while copying keeps the demotion and the rest of the map; Fail back again copies only what is left', async () => {
    console.log(`[console-role-cancel] failback seed ${seed}`);
    const { engine, primary, secondary, service } = await syncedPair('fb');
    await engine.pairOps.failover('fb'); // forced: the old primary (reachable) is demoted
    const written = Array.from({ length: 160 }, (_, i) => 20 + i);
    await writeRandomRegions(engine.agent, secondary, MiB, written, seed); // on the new primary
    // 160 MiB at 32 MiB/s: five seconds, reported after each 64 MiB batch; cancelled after the first.
    await engine.roles.startFailback('fb', { limitRateBytesPerSecond: 32 * MiB });
    await until(() => (engine.roles.state('fb')?.progress?.bytesTransferred ?? 0) > 0, 30_000, 'the first batch');
    // The Replication panel is told a failback does the copying (its Start waits for it).
    expect(await service.handle('replicationState', { pair: 'fb' })).toMatchObject({ ok: true, result: { roleChange: 'failback' } });
    const asked = await service.handle('roleTaskCancel', { pair: 'fb' });
    expect(asked).toMatchObject({ ok: true, result: { kind: 'failback', cancelling: true } });
    const stopped = await finished(engine, 'fb');
    expect(stopped.failback).toBeNull();
    expect(stopped.error).toMatchObject({
      code: 'CANCELLED',
      message: `failback of fb cancelled after copying ${stopped.progress!.regionsTransferred} of 160 regions: ${primary} is demoted and the rest of the resync map is kept`,
      hint: expect.stringMatching(/Fail back again/),
    });
    expect(await service.handle('replicationState', { pair: 'fb' })).toMatchObject({ ok: true, result: { roleChange: null } });
    const copiedBefore = stopped.progress!.regionsTransferred;
    expect([64, 128]).toContain(copiedBefore);
    const record = await engine.pairs.require('fb');
    expect(record.failover?.phase).toBe('seeded');
    expect(record.primary.volref).toBe(secondary);
    expect((await engine.agent.volumeState(primary)).members[0]!.role).toBe('secondary');
    const events = engine.events.list().map((e) => e.kind);
    expect(events).toContain('pair.failback-cancelled');
    expect(events).not.toContain('pair.failback-failed');

    await engine.roles.startFailback('fb');
    const done = await finished(engine, 'fb');
    expect(done.error).toBeNull();
    // Only what the cancelled run had not copied: at most the regions after its last whole batch
    // (those of the batch it cut short that had landed stay copied), and not none.
    expect(done.failback!.regionsTransferred).toBeGreaterThan(0);
    expect(done.failback!.regionsTransferred).toBeLessThanOrEqual(160 - copiedBefore);
    expect((await engine.pairs.require('fb')).failover).toBeNull();
    expect(await sameBytes(primary, secondary, volumeBytes)).toBe(true);
  }, 120_000);

  it('a migrate cancelled while it drains changes nothing; migrate again finishes', async () => {
    const { engine, primary, secondary, service } = await syncedPair('mg');
    // A writer that never lets the pair reach in-sync keeps the migrate draining (its budget is 10 s).
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) await writeRandomRegions(engine.agent, primary, MiB, [i % 64], seed + i);
    })();
    try {
      await engine.roles.startMigrate('mg');
      await until(() => engine.roles.state('mg')?.progress?.phase === 'drain', 30_000, 'the drain');
      const task = (await service.handle('roleTaskCancel', { pair: 'mg' })) as { ok: true; result: RoleTaskDto };
      expect(task.result).toMatchObject({ cancellable: true, cancelling: true });
      const stopped = await finished(engine, 'mg');
      expect(stopped.error).toMatchObject({ code: 'CANCELLED', message: expect.stringMatching(/^migrate of mg cancelled while draining: nothing changed/) });
      expect(stopped.migrate).toBeNull();
    } finally {
      writing = false;
      await writer;
    }
    const record = await engine.pairs.require('mg');
    expect([record.primary.volref, record.generation]).toEqual([primary, 1]);
    expect(await readMigrateJournal(engine.pairs.pairDir('mg'))).toBeUndefined();
    expect((await engine.agent.volumeState(primary)).members[0]!.role).toBe('primary');

    // No writer now: the migrate goes through its pause (not stoppable there: roleTaskCancellable, unit-tested) and finishes.
    await engine.roles.startMigrate('mg');
    const done = await finished(engine, 'mg');
    expect(done.error).toBeNull();
    expect(done.migrate).toMatchObject({ newPrimary: secondary, oldPrimary: primary });
    expect(await sameBytes(primary, secondary, volumeBytes)).toBe(true);
    expect(await service.handle('roleTaskCancel', { pair: 'mg' })).toMatchObject({ ok: false, error: { code: 'USAGE' } });
  }, 120_000);
});
