// The pair wizard and sync end to end in Chromium against web mode (a real engine and agent):
// two plain files become a pair through the wizard (its estimate table shows what each method
// would send), the first sync runs rate-limited with live progress and the conveyed heatmap
// lighting up while it runs, then the conveyed count and Verify agree
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
  it('wizard → rate-limited first sync: progress and conveyed heatmap while it runs → conveyed count and Verify agree with the CLI → delete', async () => {
    const primary = join(e2e.dir, 'site-a.img');
    const secondary = join(e2e.dir, 'site-b.img');
    const data = randomRegion(20261123, 24 * MiB);
    data.fill(0, 8 * MiB, 16 * MiB); // a third of the primary never written
    await writeFile(primary, data);
    await writeFile(secondary, '');
    await truncate(secondary, 24 * MiB);

    const { page, pageErrors } = await e2e.openConsole({ width: 1400, height: 1000 });
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
    await page.getByLabel('Start the sync now').uncheck();
    await page.getByTestId('wizard-create').click();

    // The first sync from the pair's Sync card, limited to 3 MiB/s so its 16 MiB take seconds:
    // its progress shows while it runs, and the conveyed heatmap lights cells before it ends.
    await page.getByTestId('sync-start').waitFor();
    await page.getByTestId('sync-method').locator('..').click();
    await page.getByRole('option', { name: /^tardy/ }).click();
    await page.getByTestId('sync-limit').fill('3');
    await page.getByTestId('map-conveyed').click();
    await page.getByTestId('sync-start').click();
    // Every progress line seen until one with figures, for the failure message.
    const progressSeen: string[] = [];
    const progressLine = /^tardy, round \d+, pass: \d+ of 24 regions · sent [\d.]+ (B|KiB|MiB) at [\d.]+ (B|KiB|MiB)\/s · ETA (\d+s|…)/;
    for (const deadline = Date.now() + 30_000; Date.now() < deadline && !progressLine.test(progressSeen.at(-1) ?? '');) {
      progressSeen.push(
        (await page
          .getByTestId('sync-progress')
          .textContent({ timeout: 1000 })
          .catch(() => null)) ?? '(none)',
      );
      await page.waitForTimeout(100);
    }
    expect(progressSeen.at(-1), JSON.stringify([...new Set(progressSeen)])).toMatch(progressLine);
    const litCells = () =>
      page.getByTestId('heatmap-canvas').evaluate((canvas: HTMLCanvasElement) => {
        const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
        let lit = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i]! - data[i + 1]! > 40) lit += 1; // the ramp towards red: a conveyed region
        return lit;
      });
    await expect.poll(litCells, { timeout: 30_000 }).toBeGreaterThan(0);
    const conveyedWhileRunning = Number(/^Conveyed: (\d+) of 24/.exec((await page.getByTestId('map-count').textContent()) ?? '')?.[1]);
    expect(await page.getByTestId('sync-summary').count()).toBe(0); // still running
    expect(await page.getByTestId('sync-progress').isVisible()).toBe(true);
    expect(conveyedWhileRunning).toBeGreaterThan(0);
    expect(conveyedWhileRunning).toBeLessThan(16);
    await shot(page, 'e2e-pair-syncing');

    await page.getByTestId('sync-summary').waitFor({ timeout: 60_000 });
    // Onto an empty secondary, tardy skips the regions the primary never wrote.
    expect(await page.getByTestId('sync-summary').textContent()).toMatch(/^Synced \(tardy\): 16 of 24 regions sent \(16 MiB\)/);
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
  }, 120_000);
});
