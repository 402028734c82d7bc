// The pair detail's live heatmaps of a periodic pair's change maps, on the host side: the
// console's `bitmap` verb reads `current` and `next` from the primary's agent — real maps of a
// real periodic pair, before any cycle, after one, and with writes in between.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../src-engine';
import { Bitset } from '../../src-engine/bitmap';
import { replicatePair } from '../../src-engine/replication';
import type { BitmapDto } from '../../src-main/console-api';
import { ConsoleService } from '../../src-main/console-service';
import { engineWithLab, until } from '../helpers/engine';
import { writeRandomRegions } from '../helpers/pairs';

const MiB = 2 ** 20;
let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose();
  engine = undefined;
});

/** The regions set in a map as the console sends it. */
function regionsOf(map: BitmapDto): number[] {
  const bytes = Buffer.from(map.wordsBase64, 'base64');
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  return [...new Bitset(map.regionCount, words).indexes()];
}

describe('bitmap current / next of a periodic pair', () => {
  it('next holds what was written since the last cycle began; current is emptied by an apply and records on', async () => {
    const started = await engineWithLab();
    engine = started.engine;
    const [primary, secondary] = [join(started.homeDir, 'p.img'), join(started.homeDir, 's.img')];
    await engine.agent.volumeCreate(primary, 16 * MiB, MiB);
    await engine.agent.volumeCreate(secondary, 16 * MiB, MiB);
    const record = await engine.pairOps.create({ name: 'cycles', primary, secondary, mode: 'periodic', intervalMs: 60_000 });
    await engine.pairOps.startSync('cycles', 'auto');
    await until(() => engine!.pairOps.syncState('cycles')?.running === false, 20_000, 'the first sync');
    const service = new ConsoleService(engine);
    const map = async (which: 'current' | 'next') => {
      const outcome = await service.handle('bitmap', { pair: 'cycles', which });
      if (!outcome.ok) throw new Error(`bitmap ${which}: ${outcome.error.code} ${outcome.error.message}`);
      return outcome.result as BitmapDto;
    };

    await writeRandomRegions(engine.agent, primary, MiB, [2, 3, 11], 7);
    expect(regionsOf(await map('next'))).toEqual([2, 3, 11]);
    expect(await service.handle('bitmap', { pair: 'cycles', which: 'current' })).toMatchObject({
      ok: false,
      error: { code: 'NOT_FOUND', hint: expect.stringMatching(/periodic pair has current and next/) },
    });

    const fresh = await engine.pairs.require('cycles');
    const summary = await replicatePair({ store: engine.pairs, pair: fresh, endpoints: await engine.pairOps.endpoints(fresh), once: true });
    expect(summary.cycles.map((c) => c.regionsTransferred)).toEqual([3]);
    expect(await map('current')).toMatchObject({ setCount: 0, regionCount: 16, regionBytes: MiB });
    expect((await map('next')).setCount).toBe(0);

    await writeRandomRegions(engine.agent, primary, MiB, [5, 15], 8);
    expect(regionsOf(await map('next'))).toEqual([5, 15]);
    // A change map keeps recording: current, emptied by the apply, has these writes too (the next freeze unions next into it).
    expect(regionsOf(await map('current'))).toEqual([5, 15]);
    expect(record.mode).toBe('periodic');
  });
});
