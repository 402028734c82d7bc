// A flush through a RemoteHost vouches only for writes acknowledged on its own session: after
// the SSH link drops (the host may have rebooted, losing its page cache), a flush that would
// run on the new session fails DISCONNECTED instead, so the caller (sync's and replication's
// conveyor) sends those regions again rather than settling them as durable. The same holds
// for a periodic cycle's staged regions and their apply. Real OpenSSH sshd on loopback.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError } from '../../src-engine/errors';
import { RemoteHost } from '../../src-engine/ssh';
import { stopAgentOf, testRemoteHostOptions } from '../helpers/agents';
import { startSshd, type TestSshd } from '../helpers/sshd';

let sshd: TestSshd;
let dir: string;
const regionBytes = 64 * 1024;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-remote-flush-'));
  sshd = await startSshd(join(dir, 'sshd'));
});

afterAll(async () => {
  await stopAgentOf(join(dir, 'remote'));
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Right after the drop the old session may not know it yet: the first attempt fails on it
 * ("dropped while …"); either way no attempt may succeed until the caller sends again.
 */
async function expectNotVouched(attempt: () => Promise<unknown>): Promise<void> {
  const first = await attempt().then(
    () => new Error('the first attempt after the drop succeeded'),
    (error: unknown) => error,
  );
  expect(first).toSatisfy(isDisconnected(/./));
  if (!/acknowledged before the connection/.test((first as Error).message)) {
    await expect(attempt()).rejects.toSatisfy(isDisconnected(/acknowledged before the connection/));
  }
}

const isDisconnected = (pattern: RegExp) => (error: unknown) => error instanceof TidemarkError && error.code === 'DISCONNECTED' && pattern.test(error.message);

describe('RemoteHost flush after a reconnect', () => {
  it('refuses to vouch for writes acknowledged before the link dropped; writes after the reconnect flush normally', async () => {
    const host = new RemoteHost(sshd.alias, { ...testRemoteHostOptions(sshd, dir, join(dir, 'remote')), reconnectAttempts: 3, reconnectDelayMsInitial: 50 });
    try {
      const path = join(dir, 'volume.img');
      await host.volumeCreate(path, 16 * regionBytes, regionBytes);
      await host.writeRegion(path, 1, Buffer.alloc(regionBytes, 1));
      await host.flush(path); // same session: fine
      await host.writeRegion(path, 2, Buffer.alloc(regionBytes, 2));
      await host.writeRegion(path, 3, Buffer.alloc(regionBytes, 3));
      expect(sshd.dropConnections()).toBeGreaterThan(0);
      await expectNotVouched(() => host.flush(path));
      // The caller sends them again on the new session; that flush vouches for them.
      await host.writeRegion(path, 2, Buffer.alloc(regionBytes, 2));
      await host.writeRegion(path, 3, Buffer.alloc(regionBytes, 3));
      await host.flush(path);
      await host.flush(path);
    } finally {
      await host.dispose();
    }
  });

  it("a cycle's staged regions are applied only on the session that staged them", async () => {
    const host = new RemoteHost(sshd.alias, { ...testRemoteHostOptions(sshd, dir, join(dir, 'remote')), reconnectAttempts: 3, reconnectDelayMsInitial: 50 });
    try {
      const path = join(dir, 'staged.img');
      await host.volumeCreate(path, 16 * regionBytes, regionBytes);
      const member = {
        pairId: '00000000-0000-4000-8000-0000000000aa',
        name: 'staged',
        role: 'secondary' as const,
        generation: 1,
        regionBytes,
        regionCount: 16,
        hash: 'xxh3-128' as const,
        peer: { volref: '/elsewhere/p.img', volumeId: '0123456789abcdef' },
        createdAt: new Date().toISOString(),
        seed: null,
        lcsSnapshotId: null,
      };
      await host.pairJoin(path, member);
      const auth = { pairId: member.pairId, generation: 1 };
      await host.stageRegion(path, member.pairId, 1, 4, Buffer.alloc(regionBytes, 4), { auth });
      expect(sshd.dropConnections()).toBeGreaterThan(0);
      await expectNotVouched(() => host.stageApply(path, member.pairId, 1, [4], { auth }));
      expect((await host.volumeState(path)).members[0]!.appliedCycle).toBeUndefined();
      await host.stageRegion(path, member.pairId, 1, 4, Buffer.alloc(regionBytes, 4), { auth });
      await host.stageApply(path, member.pairId, 1, [4], { auth });
      expect((await host.volumeState(path)).members[0]!.appliedCycle).toBe(1);
    } finally {
      await host.dispose();
    }
  });
});
