// The pair wizard's volume picker on the host side: `hostVolumes` lists the volumes an agent has
// registered with the volref to pair each by and the pair it is in; a host that is not
// connected is refused with what to do, never dialled from the wizard.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../src-engine';
import type { HostVolumesDto } from '../../src-main/console-api';
import { ConsoleService } from '../../src-main/console-service';
import { engineWithLab } from '../helpers/engine';

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose();
  engine = undefined;
});

describe('hostVolumes', () => {
  it('this machine: every registered volume with its path as volref and its pair', async () => {
    const started = await engineWithLab();
    engine = started.engine;
    const spare = join(started.homeDir, 'spare.img');
    await engine.agent.volumeCreate(spare, 8 * 2 ** 20, 2 ** 20);
    const service = new ConsoleService(engine);
    const outcome = await service.handle('hostVolumes', {});
    expect(outcome.ok).toBe(true);
    const listed = (outcome as { result: HostVolumesDto }).result;
    expect(listed.host).toBeNull();
    const byName = Object.fromEntries(listed.volumes.map((v) => [v.path.slice(v.path.lastIndexOf('/') + 1), v]));
    expect(Object.keys(byName).sort()).toEqual(['primary.img', 'secondary.img', 'spare.img']);
    expect(byName['primary.img']).toMatchObject({ pair: 'lab', sizeBytes: 64 * 2 ** 20, regionBytes: 2 ** 20 });
    expect(byName['secondary.img']!.pair).toBe('lab');
    expect(byName['spare.img']).toMatchObject({ pair: null, sizeBytes: 8 * 2 ** 20 });
    expect(byName['spare.img']!.volref).toBe(byName['spare.img']!.path);
  });

  it('a host not in the console, and one not connected, are refused with what to do', async () => {
    ({ engine } = await engineWithLab());
    const service = new ConsoleService(engine);
    expect(await service.handle('hostVolumes', { host: 'elsewhere' })).toMatchObject({
      ok: false,
      error: { code: 'NOT_FOUND', hint: expect.stringMatching(/Hosts screen/) },
    });
    await engine.hosts.add('nowhere.invalid');
    expect(await service.handle('hostVolumes', { host: 'nowhere.invalid' })).toMatchObject({
      ok: false,
      error: { code: 'DISCONNECTED', message: expect.stringMatching(/^host nowhere.invalid is not connected/), hint: expect.stringMatching(/type a path/) },
    });
  });
});
