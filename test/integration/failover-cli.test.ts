// The failover commands through the built CLI (docs/failover.md): a local pair whose primary is
// reachable — refused without --force, then failover --force, failback --dry-run changing
// nothing, failback, and the pair replicating the other way round.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tidemark } from '../helpers/cli';
import { randomRegion } from '../helpers/pairs';
import { tempDir } from '../helpers/tmp';

describe('tidemark failover / failback', () => {
  it('refuses a reachable primary without --force, swaps roles with it, and fails back with nothing to copy', async () => {
    const dir = await tempDir();
    const env = { TIDEMARK_HOME: join(dir, 'home') };
    const [a, b] = [join(dir, 'a.img'), join(dir, 'b.img')];
    await writeFile(a, randomRegion(20261124, 4 * 2 ** 20));
    execFileSync('truncate', ['-s', String(4 * 2 ** 20), b]);
    const run = (...args: string[]) => tidemark(args, env);
    expect(run('pair', 'create', 'p', '--primary', a, '--secondary', b, '--region-size', '256KiB').status).toBe(0);
    expect(run('sync', 'p').status).toBe(0);

    const refused = run('failover', 'p');
    expect(refused.status).toBe(2); // a usage error: the command needs --force (or migrate)
    expect(refused.stderr).toMatch(/is reachable/);
    expect(refused.stderr).toMatch(/tidemark migrate p/);

    const failover = run('--json', 'failover', 'p', '--force');
    expect(failover.status, failover.stderr).toBe(0);
    expect(JSON.parse(failover.stdout)).toMatchObject({ pair: 'p', generation: 2, forced: true, oldPrimaryReachable: true, atRiskRegions: 0, newPrimary: b });
    const shown = JSON.parse(run('--json', 'pair', 'show', 'p').stdout) as { record: { primary: { volref: string }; failover: { phase: string } } };
    expect(shown.record.primary.volref).toBe(b);
    expect(shown.record.failover.phase).toBe('promoted');

    const fbMap = run('--json', 'map', 'p', '--which', 'failback');
    expect(fbMap.status, fbMap.stderr).toBe(0);
    expect(JSON.parse(fbMap.stdout)).toMatchObject({ setCount: 0, regions: 16 });
    expect(JSON.parse(run('--json', 'map', 'p', '--which', 'resync').stdout)).toMatchObject({ setCount: 0 });
    const noCurrent = run('map', 'p', '--which', 'current');
    expect(noCurrent.status).toBe(1);
    expect(noCurrent.stderr).toMatch(/has no current map/);

    const dry = run('--json', 'failback', 'p', '--dry-run');
    expect(dry.status, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, resyncRegions: 0, resyncBytes: 0, regions: 16 });
    const back = run('--json', 'failback', 'p');
    expect(back.status, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ dryRun: false, resyncRegions: 0, bytesTransferred: 0 });
    expect(run('verify', 'p').status).toBe(0);
    // The timeline: the failover (both members) and the failback, oldest first.
    const timeline = run('pair', 'show', 'p')
      .stdout.split('\n')
      .filter((l) => /generation \d+ {2}(failover|failback)/.test(l));
    expect(timeline.map((l) => /(failover-forced|failback): (\S+) → (\w+)/.exec(l)!.slice(1))).toEqual([
      ['failover-forced', a, 'secondary'],
      ['failover-forced', b, 'primary'],
    ]);
    expect(run('failback', 'p').stderr).toMatch(/has not failed over/);
  }, 60_000);
});
