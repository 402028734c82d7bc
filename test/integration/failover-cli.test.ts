// The failover commands through the built CLI (docs/failover.md): a local pair whose primary is
// reachable — refused without --force, then failover --force, failback --dry-run changing
// nothing, failback, and the pair replicating the other way round; Ctrl-C during a failback's
// copy keeps the demotion and the rest of the map.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliBundle, tidemark } from '../helpers/cli';
import { LocalAgent } from '../../src-engine/agent';
import { randomRegion, writeRandomRegions } from '../helpers/pairs';
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
    expect(JSON.parse(failover.stdout)).toMatchObject({
      pair: 'p',
      generation: 2,
      forced: true,
      oldPrimaryReachable: true,
      atRiskRegions: 0,
      newPrimary: b,
      group: null,
    });
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

  it('replicate GROUP runs the group’s cycles at its interval, a line per cycle, until Ctrl-C; both pairs verify after', async () => {
    const dir = await tempDir();
    const env = { TIDEMARK_HOME: join(dir, 'home') };
    const run = (...args: string[]) => tidemark(args, env);
    for (const [i, name] of ['a', 'b'].entries()) {
      const [primary, secondary] = [join(dir, `p${name}.img`), join(dir, `s${name}.img`)];
      await writeFile(primary, randomRegion(20261126 + i, 2 ** 20));
      execFileSync('truncate', ['-s', String(2 ** 20), secondary]);
      const interval = name === 'a' ? '10m' : '300ms'; // the group cycles at the shorter
      expect(
        run('pair', 'create', name, '--primary', primary, '--secondary', secondary, '--region-size', '256KiB', '--mode', 'periodic', '--interval', interval)
          .status,
      ).toBe(0);
      expect(run('sync', name).status).toBe(0);
    }
    expect(run('group', 'create', 'db', 'a', 'b').status).toBe(0);
    const child = spawn(process.execPath, [cliBundle, 'replicate', 'db'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? -1)));
    const cycleLines = () => stderr.split('\n').filter((l) => l.startsWith('tidemark: group db: '));
    try {
      for (const deadlineMs = Date.now() + 30_000; cycleLines().length < 3;) {
        if (Date.now() > deadlineMs) throw new Error(`fewer than 3 group cycles in 30 s: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      child.kill('SIGINT'); // also when the wait failed: no process outlives the test
    }
    expect(await exited, stderr).not.toBe(0);
    expect(cycleLines()[2]).toMatch(/^tidemark: group db: a cycle 3 \(0 regions\), b cycle 3 \(0 regions\) — the secondaries hold the primaries as of /);
    for (const name of ['a', 'b']) expect(run('verify', name).status).toBe(0);
  }, 60_000);

  it('a consistency group fails over and back as one: its pairs refuse alone, the group promotes every secondary, failback ends with a group cycle', async () => {
    const dir = await tempDir();
    const env = { TIDEMARK_HOME: join(dir, 'home') };
    const run = (...args: string[]) => tidemark(args, env);
    for (const [i, name] of ['a', 'b'].entries()) {
      const [primary, secondary] = [join(dir, `p${name}.img`), join(dir, `s${name}.img`)];
      await writeFile(primary, randomRegion(20261125 + i, 4 * 2 ** 20));
      execFileSync('truncate', ['-s', String(4 * 2 ** 20), secondary]);
      const created = run('pair', 'create', name, '--primary', primary, '--secondary', secondary, '--region-size', '256KiB', '--mode', 'periodic');
      expect(created.status, created.stderr).toBe(0);
      expect(run('sync', name).status).toBe(0);
    }
    expect(run('group', 'create', 'db', 'a', 'b').status).toBe(0);
    expect(run('replicate', 'db', '--once').status).toBe(0);
    const agent = new LocalAgent(env.TIDEMARK_HOME); // the home's agent, while no command runs: writes after the cycle, unshipped (discarded by the forced failover)
    try {
      await writeRandomRegions(agent, join(dir, 'pa.img'), 256 * 1024, [1, 5], 7);
    } finally {
      await agent.dispose();
    }

    const alone = run('failover', 'a', '--force');
    expect(alone.status).toBe(2);
    expect(alone.stderr).toMatch(/in consistency group "db": it fails over with its group.*tidemark failover db/s);
    const refused = run('failover', 'db');
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/primaries of a \(.*\), b \(.*\) in group "db" are reachable.*add --force/s);
    const failover = run('--json', 'failover', 'db', '--force');
    expect(failover.status, failover.stderr).toBe(0);
    const summary = JSON.parse(failover.stdout) as {
      group: string;
      rolledForward: unknown[];
      members: { pair: string; generation: number; newPrimary: string }[];
    };
    expect(summary).toMatchObject({ group: 'db', rolledForward: [], abandonedCycle: false }); // no cycle was in progress
    expect(summary.members.map((m) => [m.pair, m.generation, m.newPrimary])).toEqual([
      ['a', 2, join(dir, 'sa.img')],
      ['b', 2, join(dir, 'sb.img')],
    ]);
    expect(run('failover', 'db', '--force').stderr).toMatch(/group "db" already failed over/);

    const splitChoice = run('failback', 'db', '--discard-changes-on', join(dir, 'pa.img'));
    expect(splitChoice.status).toBe(2);
    expect(splitChoice.stderr).toMatch(/"db" is a group/);
    const dry = run('--json', 'failback', 'db', '--dry-run');
    expect(dry.status, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({
      group: 'db',
      cycle: null,
      members: [
        { pair: 'a', dryRun: true, resyncRegions: 2 },
        { pair: 'b', dryRun: true, resyncRegions: 0 },
      ],
    });
    const back = run('--json', 'failback', 'db');
    expect(back.status, back.stderr).toBe(0);
    // The contract's failback figures, summed over the members (2 regions of a came back) and the closing group cycle.
    const backed = JSON.parse(back.stdout) as {
      regions: number;
      resyncRegions: number;
      regionsTransferred: number;
      bytesTransferred: number;
      cycle: { members: { pair: string }[] };
    };
    expect(backed).toMatchObject({ group: 'db', regions: 32, resyncRegions: 2, regionsTransferred: 2, bytesTransferred: 2 * 256 * 1024 });
    expect(backed.cycle.members.map((m) => m.pair)).toEqual(['a', 'b']);
    for (const name of ['a', 'b']) expect(run('verify', name).status).toBe(0);
  }, 120_000);

  it('migrate verifies the pause’s regions in the pause and every region after it: a difference tracking missed is reported, never spread', async () => {
    const dir = await tempDir();
    const env = { TIDEMARK_HOME: join(dir, 'home') };
    const [a, b] = [join(dir, 'a.img'), join(dir, 'b.img')];
    await writeFile(a, randomRegion(20261125, 4 * 2 ** 20));
    execFileSync('truncate', ['-s', String(4 * 2 ** 20), b]);
    const run = (...args: string[]) => tidemark(args, env);
    expect(run('pair', 'create', 'm', '--primary', a, '--secondary', b, '--region-size', '256KiB').status).toBe(0);
    expect(run('sync', 'm').status).toBe(0);
    // A disk that lied: region 5 of the secondary changed behind Tidemark's back.
    const handle = await open(b, 'r+');
    await handle.write(Buffer.alloc(4096, 0x5a), 0, 4096, 5 * 256 * 1024 + 100);
    await handle.close();

    // --verify-in-pause: the whole extent is verified before the swap; the difference stops it, the old primary stays.
    const inPause = run('--json', 'migrate', 'm', '--verify-in-pause');
    expect(inPause.status).toBe(1);
    expect(inPause.stderr).toMatch(/stopped before the swap: 1 region differs/);
    const kept = JSON.parse(run('--json', 'pair', 'show', 'm').stdout) as { record: { primary: { volref: string }; generation: number } };
    expect(kept.record).toMatchObject({ primary: { volref: a }, generation: 3 });

    // The stopped migrate marked the differing region on the restored primary: the next migrate ships it first.
    const repaired = run('--json', 'migrate', 'm');
    expect(repaired.status, repaired.stderr).toBe(0);
    expect(JSON.parse(repaired.stdout)).toMatchObject({ newPrimary: b, checkDifferingRegions: 0, checkedRegions: 16 });
    expect(run('verify', 'm').status).toBe(0);

    // Region 9 of the secondary (now a) changed behind Tidemark's back: the pause verifies only what it
    // copied, and the check after it finds region 9, reports it and exits 1.
    const again = await open(a, 'r+');
    await again.write(Buffer.alloc(4096, 0x6b), 0, 4096, 9 * 256 * 1024 + 100);
    await again.close();
    const migrated = run('--json', 'migrate', 'm');
    expect(migrated.status, migrated.stderr).toBe(1);
    expect(JSON.parse(migrated.stdout)).toMatchObject({ newPrimary: a, checkDifferingRegions: 1, checkDiffering: [9], checkedRegions: 16 });
    // Migrating back (to b) reports the same region in words.
    const text = run('migrate', 'm');
    expect(text.status).toBe(1);
    expect(text.stdout).toMatch(/CHECK FAILED: after the pause 1 of 16 regions .* differ from .*a\.img.* \(regions 9\)/);
    // Nothing was spread either way: the sides still differ in region 9 only.
    const verify = run('--json', 'verify', 'm');
    expect(verify.status).toBe(1);
    expect(JSON.parse(verify.stdout)).toMatchObject({ regionsDiffering: 1, differing: [9] });
  }, 60_000);

  it('Ctrl-C stops a rate-limited failback cleanly: the old primary stays demoted, and failback again copies only the rest', async () => {
    const dir = await tempDir();
    const env = { TIDEMARK_HOME: join(dir, 'home') };
    const [a, b] = [join(dir, 'a.img'), join(dir, 'b.img')];
    const MiB = 2 ** 20;
    execFileSync('truncate', ['-s', String(256 * MiB), a, b]);
    const run = (...args: string[]) => tidemark(args, env);
    expect(run('pair', 'create', 'p', '--primary', a, '--secondary', b, '--region-size', '1MiB').status).toBe(0);
    expect(run('sync', 'p').status).toBe(0);
    expect(run('failover', 'p', '--force').status).toBe(0);
    // 160 regions written on the new primary (b) through the home's agent, as an application through `serve` would: tracked.
    const agent = new LocalAgent(env.TIDEMARK_HOME);
    try {
      await writeRandomRegions(
        agent,
        b,
        MiB,
        Array.from({ length: 160 }, (_, i) => 20 + i),
        20261125,
      );
    } finally {
      await agent.dispose();
    }
    const plan = JSON.parse(run('--json', 'failback', 'p', '--dry-run').stdout) as { resyncRegions: number };
    expect(plan.resyncRegions).toBe(160);

    // 160 MiB at 16 MiB/s in 64 MiB batches: the first lands 4 s into the copy, the second at 8 s;
    // Ctrl-C 5 s after the pair is seeded (the copy begins), in the second batch. (Without a
    // terminal the CLI draws no progress to wait on.)
    const child = spawn(process.execPath, [cliBundle, 'failback', 'p', '--limit-rate', '16MiB/s'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? -1)));
    // Read from the pair's record: a `pair show` per poll would start a CLI process that opens the
    // home's volumes beside the failback's (no agent daemon here; docs/home-layout.md) and is slow.
    const phase = () =>
      (JSON.parse(readFileSync(join(env.TIDEMARK_HOME, 'pairs', 'p', 'pair.json'), 'utf8')) as { body: { failover: { phase: string } | null } }).body.failover
        ?.phase;
    for (const deadlineMs = Date.now() + 30_000; phase() !== 'seeded';) {
      if (Date.now() > deadlineMs) throw new Error(`failback never began copying: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 5000));
    child.kill('SIGINT');
    const status = await exited;
    expect(status, stderr).not.toBe(0);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1); // one line: the cause and the fix
    expect(lines[0]).toContain(`failback of p cancelled: ${a} is demoted and the rest of the resync map is kept`);
    expect(stderr).toMatch(/run `tidemark failback p` again to copy only what is left/);
    const shown = JSON.parse(run('--json', 'pair', 'show', 'p').stdout) as { record: { failover: { phase: string } | null } };
    expect(shown.record.failover?.phase).toBe('seeded');

    const back = run('--json', 'failback', 'p');
    expect(back.status, back.stderr).toBe(0);
    const copied = (JSON.parse(back.stdout) as { regionsTransferred: number }).regionsTransferred;
    expect(copied).toBeGreaterThan(0);
    expect(copied).toBeLessThanOrEqual(160 - 64); // the cancelled run's first batch stays copied
    expect(run('verify', 'p').status).toBe(0);
  }, 120_000);
});
