// The pair wizard and sync end to end in Chromium against web mode (a real engine and agent):
// two plain files become a pair through the wizard (its estimate table shows what each method
// would send), the first sync runs with live progress, the conveyed heatmap and Verify agree
// with the CLI's verify on the same home, and the pair is deleted by typing its name.
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { consoleE2E } from '../helpers/browser';
import { tidemarkAsync } from '../helpers/cli';
import { randomRegion } from '../helpers/pairs';

const MiB = 2 ** 20;
const e2e = consoleE2E('tidemark-e2e-pairs-');
const { shot } = e2e;

describe('pairs in the console (Chromium, web mode)', () => {
  it('wizard → first sync with progress → conveyed heatmap and Verify agree with the CLI → delete', async () => {
    const primary = join(e2e.dir, 'site-a.img');
    const secondary = join(e2e.dir, 'site-b.img');
    const data = randomRegion(20261123, 24 * MiB);
    data.fill(0, 8 * MiB, 16 * MiB); // a third of the primary never written
    await writeFile(primary, data);
    await writeFile(secondary, '');
    await truncate(secondary, 24 * MiB);

    const page = await e2e.browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(e2e.web.url);
    await page.getByTestId('pair-card-lab').waitFor({ timeout: 60_000 }); // the engine made its lab first
    await page.getByTestId('pair-new').click();
    await page.getByTestId('wizard-name').fill('field');
    await page.getByTestId('wizard-primary').fill(primary);
    await page.getByTestId('wizard-secondary').fill(secondary);
    await page.getByTestId('wizard-next').click();
    await page.getByTestId('wizard-next').click(); // default options: 1 MiB regions, continuous, xxh3-128
    await page.getByTestId('wizard-estimates').waitFor();
    // The files are not registered yet (zero-scanned): full copies every region; realized
    // compares only what both sides wrote — nothing on the empty secondary.
    expect(await page.getByTestId('estimate-bytes-full').textContent()).toBe('24 MiB');
    expect(await page.getByTestId('estimate-bytes-tardy').textContent()).toBe('24 MiB');
    await shot(page, 'e2e-pair-wizard-estimates');
    await page.getByTestId('estimate-tardy').click();
    await page.getByTestId('wizard-create').click();

    await page.getByTestId('sync-summary').waitFor({ timeout: 30_000 });
    // Onto an empty secondary, tardy skips the regions the primary never wrote.
    expect(await page.getByTestId('sync-summary').textContent()).toMatch(/^Synced \(tardy\): 16 of 24 regions sent \(16 MiB\)/);
    await page.getByTestId('map-conveyed').click();
    await expect.poll(() => page.getByTestId('map-count').textContent()).toMatch(/^Conveyed: 16 of 24 regions conveyed/);
    await shot(page, 'e2e-pair-synced');

    await page.getByTestId('verify').click();
    await expect.poll(() => page.getByTestId('verify-result').textContent()).toBe('All 24 regions are identical.');
    const cli = await tidemarkAsync(['--json', 'verify', 'field'], { TIDEMARK_HOME: join(e2e.dir, 'home') });
    expect(cli.status, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ regions: 24, regionsDiffering: 0 });
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);

    await page.getByTestId('pair-delete').click();
    await page.getByTestId('delete-confirm-name').fill('fiel');
    expect(await page.getByTestId('delete-confirm').isDisabled()).toBe(true);
    await page.getByTestId('delete-confirm-name').fill('field');
    await page.getByTestId('delete-confirm').click();
    await page.getByTestId('pair-card-lab').waitFor();
    // The list refreshes its overview on delete; the deleted pair's card must go.
    await page.getByTestId('pair-card-field').waitFor({ state: 'detached', timeout: 5000 });
    expect(pageErrors).toEqual([]);
    await page.close();
  });
});
