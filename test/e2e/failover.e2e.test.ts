// Failover and failback in the console end to end (Chromium, web mode, a real engine): a pair
// made and synced with the CLI; regions written to the primary through the console's agent are
// left unshipped; the Failover dialog (confirmed by typing the pair's name) promotes the
// secondary and demotes the primary, keeping those regions for failback; regions written on
// the new primary; the Failback dialog shows exactly the count `tidemark failback --dry-run`
// reports, and failing back copies exactly that many; `verify` exits 0. Then a pair in a
// consistency group: the dialog names the group, Fail over promotes both secondaries, and the
// CLI's `failback GROUP` brings both back.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { consoleE2E } from '../helpers/browser';
import { tidemarkAsync } from '../helpers/cli';

const MiB = 2 ** 20;
const e2e = consoleE2E('tidemark-e2e-failover-');
const { shot, cli, writeThroughConsole } = e2e;

describe('failover and failback in the console (Chromium, web mode)', () => {
  it('Failover dialog → writes on the new primary → Failback dialog shows the CLI’s count → identical', async () => {
    const primary = join(e2e.dir, 'site-a.img');
    const secondary = join(e2e.dir, 'site-b.img');
    await cli(['volume', 'create', primary, '--size', '32MiB']);
    await cli(['volume', 'create', secondary, '--size', '32MiB']);
    await cli(['pair', 'create', 'field', '--primary', primary, '--secondary', secondary, '--region-size', '1MiB']);
    await cli(['sync', 'field']);
    const unshipped = [1, 4, 4, 9];
    await writeThroughConsole(primary, unshipped, 500);

    const { page, pageErrors } = await e2e.openPair('field', { width: 1400, height: 1600 });

    await page.getByTestId('failover-open').click();
    expect(await page.getByTestId('failover-risk').textContent()).toMatch(/OOS\/MOOS/);
    expect(await page.getByTestId('failover-confirm').isDisabled()).toBe(true);
    await page.getByTestId('failover-confirm-name').fill('field');
    await shot(page, 'e2e-failover-dialog');
    await page.getByTestId('failover-confirm').click();
    await expect
      .poll(() => page.getByTestId('failover-result').textContent(), { timeout: 30_000 })
      .toMatch(new RegExp(`is the primary \\(generation 2\\); .* was demoted, its ${new Set(unshipped).size} unshipped regions kept for failback`));

    // The new primary takes writes; the CLI's dry run counts the resync map.
    await writeThroughConsole(secondary, [4, 20, 21], 600);
    const plan = JSON.parse(await cli(['--json', 'failback', 'field', '--dry-run'])) as { resyncRegions: number; resyncBytes: number };
    expect(plan.resyncRegions).toBe(new Set([1, 4, 9, 20, 21]).size);

    await page.getByTestId('failback-open').click();
    await expect
      .poll(() => page.getByTestId('failback-count').textContent(), { timeout: 30_000 })
      .toMatch(new RegExp(`^Resync map: ${plan.resyncRegions} of 32 regions \\(${plan.resyncBytes / MiB} MiB\\)`));
    await page.getByTestId('failback-confirm-name').fill('field');
    await shot(page, 'e2e-failback-dialog');
    await page.getByTestId('failback-confirm').click();
    await expect
      .poll(() => page.getByTestId('failover-result').textContent(), { timeout: 60_000 })
      .toMatch(new RegExp(`^Failed back: copied ${plan.resyncRegions} regions`));

    const verified = await tidemarkAsync(['--json', 'verify', 'field'], { TIDEMARK_HOME: join(e2e.dir, 'home') });
    expect(verified.status, verified.stderr).toBe(0);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 180_000);

  it('a pair in a consistency group: the dialog names the group, Fail over promotes both secondaries, the card says how the group comes back', async () => {
    const volumes = ['ga', 'gb'].map((n) => ({ name: `db-${n.slice(1)}`, primary: join(e2e.dir, `${n}-p.img`), secondary: join(e2e.dir, `${n}-s.img`) }));
    for (const v of volumes) {
      await cli(['volume', 'create', v.primary, '--size', '16MiB']);
      await cli(['volume', 'create', v.secondary, '--size', '16MiB']);
      await cli(['pair', 'create', v.name, '--primary', v.primary, '--secondary', v.secondary, '--region-size', '1MiB', '--mode', 'periodic']);
      await cli(['sync', v.name]);
    }
    // The group is made on the Pairs screen: New group, a name, both pairs.
    const { page, pageErrors } = await e2e.openConsole({ width: 1400, height: 1600 });
    await page.getByTestId('group-new').click({ timeout: 60_000 });
    await page.getByTestId('group-name').fill('db');
    await page.getByTestId('group-pick-db-a').click();
    await page.getByTestId('group-pick-db-b').click();
    await page.getByTestId('group-create').click();
    await expect.poll(() => page.getByTestId('group-card-db').textContent(), { timeout: 30_000 }).toMatch(/^db.*db-a.*db-b/);
    expect(await page.getByTestId('pair-group-db-a').textContent()).toBe('group db');
    expect(JSON.parse(await cli(['--json', 'group', 'list']))).toEqual([expect.objectContaining({ name: 'db', pairs: ['db-a', 'db-b'] })]);
    await shot(page, 'e2e-group-created');
    await page.getByTestId('pair-card-db-a').click();
    // The pair replicates with its group: Run one group cycle runs the group's, in the background.
    await expect
      .poll(() => page.getByTestId('replication-group').textContent(), { timeout: 30_000 })
      .toMatch(/^db-a replicates with consistency group db \(db-a, db-b\)/);
    expect(await page.getByTestId('replication-once').textContent()).toBe('Run one group cycle');
    await writeThroughConsole(volumes[1]!.primary, [5], 650);
    await page.getByTestId('replication-once').click();
    await expect
      .poll(() => page.getByTestId('group-cycle-result').textContent(), { timeout: 30_000 })
      .toMatch(/^Group db: db-a cycle 1 \(0 regions\), db-b cycle 1 \(1 regions\)/);
    await expect.poll(() => page.getByTestId('replication-state').textContent(), { timeout: 30_000 }).toBe('stopped'); // one cycle, then done
    expect(JSON.parse(await cli(['--json', 'verify', 'db-b']))).toMatchObject({ regionsDiffering: 0 });
    await writeThroughConsole(volumes[0]!.primary, [2, 3], 700); // after the group's cycle: unshipped, kept for failback
    await expect.poll(() => page.getByTestId('role-options').textContent(), { timeout: 30_000 }).toMatch(/a pair in a consistency group cannot migrate/);
    expect(await page.getByTestId('migrate-open').isDisabled()).toBe(true);
    await page.getByTestId('failover-open').click();
    expect(await page.getByTestId('failover-group').textContent()).toMatch(/^db-a is in consistency group db with db-b: Fail over promotes every secondary/);
    await page.getByTestId('failover-confirm-name').fill('db-a');
    await shot(page, 'e2e-group-failover-dialog');
    await page.getByTestId('failover-confirm').click();
    await expect
      .poll(() => page.getByTestId('failover-result').textContent(), { timeout: 30_000 })
      .toMatch(/Consistency group db failed over with it: the secondaries of db-a and db-b were promoted, all holding the same instant of the group\.$/);
    await expect.poll(() => page.getByTestId('failback-group-note').isVisible(), { timeout: 30_000 }).toBe(true);
    // Both pairs failed over, as the CLI sees them; the group fails back as one and both verify.
    for (const v of volumes) {
      const shown = JSON.parse(await cli(['--json', 'pair', 'show', v.name])) as {
        record: { primary: { volref: string }; failover: { phase: string } | null };
      };
      expect(shown.record.primary.volref).toBe(v.secondary);
      expect(shown.record.failover?.phase).toBe('promoted');
    }
    const back = JSON.parse(await cli(['--json', 'failback', 'db'])) as { resyncRegions: number; cycle: unknown };
    expect(back.resyncRegions).toBe(2);
    expect(back.cycle).not.toBeNull();
    for (const v of volumes) {
      const verified = await tidemarkAsync(['--json', 'verify', v.name], { TIDEMARK_HOME: join(e2e.dir, 'home') });
      expect(verified.status, verified.stderr).toBe(0);
    }
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 180_000);
});
