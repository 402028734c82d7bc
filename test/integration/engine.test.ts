// The engine facade: the lab, the write generator writing through tracking, the event log,
// the home lock, and maps for heatmaps.
import { describe, expect, it } from 'vitest';
import { Engine, TidemarkError } from '../../src-engine';
import { stat } from 'node:fs/promises';
import { type FileBackend, RpcAgent, connectAgentSocket } from '../../src-engine';
import { RpcPeer } from '../../src-engine/transport';
import { agentInfoOf } from '../helpers/agents';
import { tidemarkAsync } from '../helpers/cli';
import { engineWithLab, smallLab, until } from '../helpers/engine';

describe('engine and lab', () => {
  it('creates the lab once: two registered volumes and a tracked continuous pair', async () => {
    const { engine, homeDir } = await engineWithLab();
    const overview = await engine.overview();
    expect(overview.volumes).toHaveLength(2);
    expect(overview.volumes.map((v) => v.role).sort()).toEqual(['primary', 'secondary']);
    expect(overview.pairs).toEqual([expect.objectContaining({ name: 'lab', mode: 'continuous', tracking: true, regions: 64, oosRegions: 0 })]);
    await engine.ensureLab(smallLab); // idempotent
    expect((await engine.overview()).volumes).toHaveLength(2);
    expect(engine.events.list().map((e) => e.kind)).toEqual(['engine.started', 'lab.created', 'tracking.started']);
    await engine.dispose();
    const again = await Engine.open(homeDir);
    await again.ensureLab(smallLab);
    expect(again.events.list().map((e) => e.kind)).not.toContain('lab.created');
    await again.dispose();
  });

  it('the write generator writes through tracking: OOS rises, OOS ⊆ MOOS, realized follows', async () => {
    const { engine } = await engineWithLab();
    await engine.startGenerator({ pattern: 'random', writesPerSecond: 500, writeBytes: 64 * 1024, seed: 7 });
    await until(() => (engine.generatorState()?.writes ?? 0) >= 40, 10_000, '40 generated writes');
    const state = await engine.stopGenerator();
    const oos = await engine.bitmap('lab', 'oos');
    const moos = await engine.bitmap('lab', 'moos');
    const realized = await engine.bitmap('lab', 'realized');
    expect(state?.writes).toBeGreaterThanOrEqual(40);
    expect(oos.setCount).toBeGreaterThan(10);
    for (let w = 0; w < oos.words.length; w++) expect((oos.words[w]! & ~moos.words[w]!) >>> 0).toBe(0);
    expect(realized.setCount).toBe(oos.setCount); // a fresh lab: written = out of sync
    const pair = (await engine.overview()).pairs[0]!;
    expect(pair.writesTracked).toBe(state?.writes);
    expect(engine.events.list().map((e) => e.kind)).toEqual(expect.arrayContaining(['generator.started', 'generator.stopped']));
    await engine.dispose();
  });

  it('a sequential generator marks regions in order', async () => {
    const { engine } = await engineWithLab();
    await engine.startGenerator({ pattern: 'sequential', writesPerSecond: 1000, writeBytes: 256 * 1024, seed: 1 });
    await until(() => (engine.generatorState()?.writes ?? 0) >= 12, 10_000, '12 writes');
    await engine.stopGenerator();
    const oos = await engine.bitmap('lab', 'oos');
    const first = oos.words[0]!;
    expect(first & 0b111).toBe(0b111); // regions 0, 1, 2 written first
    await engine.dispose();
  });

  it('refuses bad generator settings with the limits, and a second engine on the same home', async () => {
    const { engine, homeDir } = await engineWithLab();
    await expect(engine.startGenerator({ pattern: 'random', writesPerSecond: 0, writeBytes: 4096, seed: 1 })).rejects.toThrow(
      expect.objectContaining({ code: 'USAGE', hint: expect.stringMatching(/use 1 to 5000 writes\/s/) }),
    );
    await expect(Engine.open(homeDir)).rejects.toSatisfy((e: unknown) => e instanceof TidemarkError && /in use by process \d+ \(test\)/.test(e.message));
    await engine.dispose();
  });

  it('owns the home through its agent socket: CLI commands are served by it, a second agent is refused', async () => {
    const { engine, homeDir } = await engineWithLab();
    const primary = (await engine.overview()).volumes.find((v) => v.role === 'primary')!;
    await engine.startGenerator({ pattern: 'sequential', writesPerSecond: 500, writeBytes: 4096, seed: 3 });
    await until(async () => (await engine.overview()).volumes.find((v) => v.role === 'primary')!.realizedRegions >= 5);
    await engine.stopGenerator();
    const realized = (await engine.overview()).volumes.find((v) => v.role === 'primary')!.realizedRegions;
    const info = await tidemarkAsync(['--home', homeDir, '--json', 'volume', 'info', primary.path]);
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ realizedSource: 'tracked', realizedRegions: realized }); // the engine's own count
    const owner = await agentInfoOf(homeDir);
    expect(owner).toMatchObject({ pid: process.pid, purpose: 'test' }); // the socket is the engine's own agent
    const agent = await tidemarkAsync(['--home', homeDir, 'agent', 'serve']);
    expect(agent.status).toBe(1);
    expect(agent.stderr).toMatch(/an agent already serves Tidemark home/);
    await engine.dispose();
  });

  it('a lab reset while socket clients write never leaves the engine on the deleted file', async () => {
    const { engine, homeDir } = await engineWithLab();
    const primaryPath = (await engine.overview()).volumes.find((v) => v.role === 'primary')!.path;
    let resetting = true;
    let written = 0;
    const refused = new Set<string>();
    const client = async (seed: number) => {
      const peer = new RpcPeer(await connectAgentSocket(homeDir), { role: 'client', keepaliveMs: 0 });
      await peer.handshake();
      const agent = new RpcAgent(peer);
      for (let i = 0; resetting; i++) {
        await agent
          .writeRegion(primaryPath, (seed * 7 + i) % 64, new Uint8Array(smallLab.regionBytes).fill(seed))
          .then(() => (written += 1))
          .catch((e: TidemarkError) => refused.add(e.code));
      }
      peer.close();
    };
    const clients = [1, 2, 3].map(client);
    await until(() => written >= 6, 10_000, 'the clients to be writing'); // the reset really races them
    await engine.resetLab(smallLab);
    resetting = false;
    await Promise.all(clients);
    const opened = await engine.agent.openedVolume(primaryPath);
    const onDisk = await stat(primaryPath);
    const held = await (opened.volume.backend as FileBackend).identity();
    expect(held.ino).toBe(onDisk.ino); // the engine tracks the file that is there, not a deleted one
    expect(
      [...refused].every((code) => ['BUSY', 'NOT_FOUND', 'INVARIANT', 'CANCELLED'].includes(code)),
      [...refused].join(),
    ).toBe(true);
    await engine.dispose();
  });

  it('reset recreates an empty lab and says so in the log', async () => {
    const { engine } = await engineWithLab();
    await engine.startGenerator({ pattern: 'hot-spot', writesPerSecond: 500, writeBytes: 4096, seed: 3 });
    await until(() => (engine.generatorState()?.writes ?? 0) >= 5);
    await engine.resetLab(smallLab);
    expect((await engine.bitmap('lab', 'oos')).setCount).toBe(0);
    expect(engine.generatorState()).toBeNull();
    expect(engine.events.list().map((e) => e.kind)).toContain('lab.reset');
    await engine.dispose();
  });

  it('restarting after writes recovers OOS from MOOS: those regions are resent, not everything', async () => {
    const { engine, homeDir } = await engineWithLab();
    await engine.startGenerator({ pattern: 'random', writesPerSecond: 500, writeBytes: 4096, seed: 9 });
    await until(() => (engine.generatorState()?.writes ?? 0) >= 20);
    await engine.stopGenerator();
    const oosBefore = await engine.bitmap('lab', 'oos');
    await engine.dispose();
    const again = await Engine.open(homeDir);
    await again.ensureLab(smallLab);
    const recovered = await again.bitmap('lab', 'oos');
    expect(recovered.setCount).toBeGreaterThanOrEqual(oosBefore.setCount);
    expect(recovered.setCount).toBeLessThan(64);
    expect(again.events.list().map((e) => e.kind)).toContain('tracking.recovered');
    await again.dispose();
  });

  it('a Start during a Stop leaves one loop, and two concurrent resets leave one good lab', async () => {
    const { engine } = await engineWithLab();
    await engine.startGenerator({ pattern: 'random', writesPerSecond: 100, writeBytes: 4096, seed: 1 });
    const stopping = engine.stopGenerator();
    const restarting = engine.startGenerator({ pattern: 'random', writesPerSecond: 100, writeBytes: 4096, seed: 2 });
    await stopping;
    await restarting;
    const before = engine.generatorState()!.writes;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const writes = engine.generatorState()!.writes - before;
    // One loop at 100 writes/s makes at most ~200 in 2 s (catching up included), two ~400;
    // a loaded machine may make fewer, never more.
    expect(writes).toBeLessThanOrEqual(300);
    expect(writes).toBeGreaterThan(0);
    await Promise.all([engine.resetLab(smallLab), engine.resetLab(smallLab)]);
    const overview = await engine.overview();
    expect(overview.pairs.map((p) => p.name)).toEqual(['lab']);
    expect(overview.volumes).toHaveLength(2);
    expect((await engine.bitmap('lab', 'oos')).setCount).toBe(0);
    await engine.dispose();
  });
});

describe('console replication: pause and resume', () => {
  it('pause stops shipping and keeps the run; writes are tracked meanwhile; resume ships them with the same limit and history', async () => {
    const { engine } = await engineWithLab();
    try {
      const lab = await engine.pairs.require('lab');
      const limitRateBytesPerSecond = 64 * 2 ** 20;
      await engine.replication.start('lab', { limitRateBytesPerSecond });
      await until(() => engine.replication.state('lab')?.progress?.state === 'in-sync', 20_000, 'the lab in sync');
      await until(() => (engine.replication.state('lab')?.history.length ?? 0) >= 1, 5_000, 'a lag sample');
      const paused = await engine.replication.pause('lab');
      expect(paused).toMatchObject({ running: false, paused: true, error: null, limitRateBytesPerSecond });
      const historyAtPause = paused.history.length;
      expect(engine.events.list().map((e) => e.kind)).toContain('replication.paused');
      await expect(engine.replication.pause('lab')).rejects.toThrow(/not replicating/);

      for (const r of [1, 2, 3]) await engine.agent.writeRegion(lab.primary.volref, r, Buffer.alloc(lab.regionBytes, r));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await engine.replication.tracking('lab')).oosRegions).toBe(3); // nothing shipped while paused

      const resumed = await engine.replication.resume('lab');
      expect(resumed).toMatchObject({ running: true, paused: false, limitRateBytesPerSecond, startedAtMs: paused.startedAtMs });
      expect(resumed.history.length).toBe(historyAtPause);
      await until(async () => (await engine.replication.tracking('lab')).oosRegions === 0, 20_000, 'the paused writes shipped');
      expect(engine.events.list().map((e) => e.kind)).toContain('replication.resumed');
      await expect(engine.replication.resume('lab')).rejects.toThrow(/not paused/);
      const stopped = await engine.replication.stop('lab');
      expect(stopped).toMatchObject({ running: false, paused: false });
    } finally {
      await engine.dispose();
    }
  });
});
