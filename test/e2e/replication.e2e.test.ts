// Continuous replication in the console end to end (Chromium, web mode, a real engine): a pair
// made and synced with the CLI on the console's home; regions written to the primary through
// the console's agent socket show as lag and on the OOS heatmap; Start replication in the Pair
// detail ships exactly the distinct regions written, reaches "in sync", and the CLI agrees
// (map --which oos is empty, verify exits 0, the files are identical); Stop ends it. The crash
// cost shown is the CLI's MOOS count × region size. A periodic pair started in the console
// applies cycles that its cycle history lists, and the secondary ends equal to the primary.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { consoleE2E } from '../helpers/browser';
import { tidemarkAsync } from '../helpers/cli';

const e2e = consoleE2E('tidemark-e2e-replication-');
const { shot, cli } = e2e;

/** Runs the CLI on the console's home (through its agent) and insists it succeeds. */
async function oosSetCount(): Promise<number> {
  return (JSON.parse(await cli(['--json', 'map', 'field', '--which', 'oos'])) as { setCount: number }).setCount;
}

describe('continuous replication in the console (Chromium, web mode)', () => {
  it('writes show as lag → Start → in sync with exactly the written regions shipped → the CLI agrees → Stop', async () => {
    const primary = join(e2e.dir, 'site-a.img');
    const secondary = join(e2e.dir, 'site-b.img');
    await cli(['volume', 'create', primary, '--size', '32MiB']);
    await cli(['volume', 'create', secondary, '--size', '32MiB']);
    await cli(['pair', 'create', 'field', '--primary', primary, '--secondary', secondary, '--region-size', '1MiB', '--mode', 'continuous']);
    await cli(['sync', 'field']);
    expect(await oosSetCount()).toBe(0);

    // Writes through the console's agent, as an NBD client's would be: tracked on the primary.
    // Regions 5 and 2 are written twice: each is shipped once.
    const written = [2, 5, 5, 9, 17, 2, 30, 31];
    const distinct = new Set(written).size;
    await e2e.writeThroughConsole(primary, written, 1000);
    expect(await oosSetCount()).toBe(distinct);

    const { page, pageErrors } = await e2e.openPair('field', { width: 1400, height: 1400 });
    await expect.poll(() => page.getByTestId('replication-state').textContent()).toBe('stopped');
    await expect.poll(() => page.getByTestId('replication-lag').textContent()).toMatch(new RegExp(`^Lag: ${distinct} regions \\(${distinct} MiB\\)`));
    expect(await page.getByTestId('replication-path').textContent()).toBe(
      'Path in use: local — the primary is on this machine; regions go from it to the secondary.',
    );
    // The heatmap's toggle has OOS and MOOS; OOS shows the written regions.
    await page.getByTestId('map-moos').click();
    await expect.poll(() => page.getByTestId('map-count').textContent()).toMatch(/^MOOS: \d+ of 32 regions maybe out of sync/);
    await page.getByTestId('map-oos').click();
    await expect.poll(() => page.getByTestId('map-count').textContent()).toBe(`OOS: ${distinct} of 32 regions out of sync`);
    // Crash cost now: the MOOS the CLI counts, times the region size — both read again on each
    // poll (a background destage may change MOOS between a CLI read and the panel's refresh).
    const moosNow = async () => (JSON.parse(await cli(['--json', 'map', 'field', '--which', 'moos'])) as { setCount: number }).setCount;
    await expect
      .poll(async () => {
        const moos = await moosNow();
        const shown = await page.getByTestId('replication-crash-cost').textContent();
        return moos >= distinct && (shown ?? '').startsWith(`Crash cost now: ${moos} MOOS regions × 1 MiB = ${moos} MiB`);
      })
      .toBe(true);
    await shot(page, 'e2e-replication-lagging');

    await page.getByTestId('replication-start').click();
    await expect.poll(() => page.getByTestId('replication-state').textContent(), { timeout: 60_000 }).toBe('in sync');
    await expect
      .poll(() => page.getByTestId('replication-shipped').textContent())
      .toMatch(new RegExp(`^Shipped ${distinct} regions \\(${distinct} MiB\\) since `));
    expect(await page.getByTestId('replication-lag').textContent()).toBe('Lag: none — every tracked write is on the secondary');
    expect(await page.getByTestId('replication-protect').textContent()).toMatch(/^No protective snapshot held/); // released once in sync
    // The heatmap follows live; the chart fills in as samples come (one a second).
    await expect.poll(() => page.getByTestId('map-count').textContent()).toBe('OOS: 0 of 32 regions out of sync');
    await page.getByTestId('lag-chart').waitFor({ timeout: 10_000 });
    await shot(page, 'e2e-replication-in-sync');

    expect(await oosSetCount()).toBe(0);
    const verified = await tidemarkAsync(['--json', 'verify', 'field'], { TIDEMARK_HOME: join(e2e.dir, 'home') });
    expect(verified.status, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ regions: 32, regionsDiffering: 0 });
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);

    await page.getByTestId('replication-stop').click();
    await expect.poll(() => page.getByTestId('replication-state').textContent()).toBe('stopped');
    expect(await page.getByTestId('replication-shipped').textContent()).toMatch(new RegExp(`^Last run shipped ${distinct} regions`));
    await page.getByTestId('replication-start').waitFor();
    expect(await page.getByTestId('error-note').count()).toBe(0);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 180_000);

  it('a periodic pair started in the console lists its applied cycles; the secondary ends equal to the primary', async () => {
    const primary = join(e2e.dir, 'cycles-a.img');
    const secondary = join(e2e.dir, 'cycles-b.img');
    await cli(['volume', 'create', primary, '--size', '16MiB']);
    await cli(['volume', 'create', secondary, '--size', '16MiB']);
    await cli(['pair', 'create', 'cycles', '--primary', primary, '--secondary', secondary, '--region-size', '1MiB', '--mode', 'periodic', '--interval', '1s']);
    await cli(['sync', 'cycles']);
    const written = [1, 4, 4, 11];
    const distinct = new Set(written).size;
    await e2e.writeThroughConsole(primary, written, 2000);

    const { page, pageErrors } = await e2e.openPair('cycles', { width: 1400, height: 1400 });
    expect(await page.getByTestId('cycle-history-empty').textContent()).toBe('No cycle applied by this console yet.');
    await page.getByTestId('replication-start').click();
    // The first cycle ships exactly the written regions; the next ones (1 s apart) find nothing new.
    const history = page.getByTestId('cycle-history');
    await expect.poll(() => history.locator('[data-testid^="cycle-"]').count(), { timeout: 60_000 }).toBeGreaterThanOrEqual(2);
    const lines = await history.locator('[data-testid^="cycle-"]').allTextContents();
    const oldestFirst = lines.reverse();
    expect(oldestFirst[0]).toMatch(new RegExp(`^Cycle \\d+: ${distinct} regions \\(${distinct} MiB\\) in .+ — the secondary holds the primary as of `));
    expect(oldestFirst[1]).toMatch(/^Cycle \d+: 0 regions \(0 B\) in /);
    await shot(page, 'e2e-replication-cycles');
    await page.getByTestId('replication-stop').click();
    await expect.poll(() => page.getByTestId('replication-state').textContent()).toBe('stopped');
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);
    expect(await page.getByTestId('error-note').count()).toBe(0);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 180_000);
});
