// Failback's progress in the console end to end (Chromium, web mode, a real engine): a pair made
// and synced with the CLI, failed over by force, 160 regions written on the new primary; the
// Failback dialog, rate-limited to 32 MiB/s, starts the copy in the background and the card
// shows its progress — regions of the CLI's dry-run count, bytes, rate, ETA — while it copies;
// Cancel stops it after a batch, saying what is kept; Fail back again copies only the rest and
// shows the result; `tidemark verify` exits 0.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { consoleE2E } from '../helpers/browser';
import { tidemarkAsync } from '../helpers/cli';

const e2e = consoleE2E('tidemark-e2e-failback-progress-');
const { shot, cli, writeThroughConsole } = e2e;

describe('failback progress in the console (Chromium, web mode)', () => {
  it('a rate-limited failback shows its progress with rate and ETA; cancelled, then failed back again, it copies only the rest', async () => {
    const siteA = join(e2e.dir, 'site-a.img');
    const siteB = join(e2e.dir, 'site-b.img');
    await cli(['volume', 'create', siteB, '--size', '256MiB']);
    await cli(['volume', 'create', siteA, '--size', '256MiB']);
    await cli(['pair', 'create', 'field', '--primary', siteB, '--secondary', siteA, '--region-size', '1MiB']);
    await cli(['sync', 'field']);
    await cli(['failover', 'field', '--force']);
    const written = Array.from({ length: 160 }, (_, i) => 20 + i);
    await writeThroughConsole(siteA, written, 900);
    const plan = JSON.parse(await cli(['--json', 'failback', 'field', '--dry-run'])) as { resyncRegions: number };
    expect(plan.resyncRegions).toBe(written.length);

    const { page, pageErrors } = await e2e.openPair('field', { width: 1400, height: 1800 });
    await expect.poll(() => page.getByTestId('role-options').textContent(), { timeout: 30_000 }).toMatch(/^Failed over \(forced\)/);
    await page.getByTestId('failback-open').click();
    await expect
      .poll(() => page.getByTestId('failback-count').textContent(), { timeout: 30_000 })
      .toMatch(new RegExp(`^Resync map: ${plan.resyncRegions} of 256 regions`));
    await page.getByTestId('failback-limit').fill('32');
    await page.getByTestId('failback-confirm-name').fill('field');
    await page.getByTestId('failback-confirm').click();
    // 160 MiB at 32 MiB/s: five seconds; continuous shipping reports after each 64 MiB batch, so
    // the first report stands for two seconds: Cancel lands in the second batch.
    await expect
      .poll(() => page.getByTestId('role-task-line').textContent(), { timeout: 30_000, interval: 100 })
      .toMatch(new RegExp(`^Failing back: copying — 64 of ${plan.resyncRegions} regions, 64 MiB copied at [\\d.]+ MiB/s, ETA \\d+s$`));
    const copiedBefore = 64;
    await page.getByTestId('role-task-cancel').click();
    await expect
      .poll(() => page.getByTestId('error-note').textContent(), { timeout: 30_000 })
      .toMatch(new RegExp(`^failback of field cancelled after copying 64 of ${plan.resyncRegions} regions: ${siteB} is demoted and the rest`));
    await shot(page, 'e2e-failback-cancelled');
    await expect.poll(() => page.getByTestId('role-options').textContent(), { timeout: 30_000 }).toMatch(/^Failed over \(forced\)/);
    await page.getByTestId('failback-open').click();
    await page.getByTestId('failback-confirm-name').fill('field');
    await page.getByTestId('failback-confirm').click();
    await expect.poll(() => page.getByTestId('failover-result').textContent(), { timeout: 60_000 }).toMatch(/^Failed back: copied \d+ regions/);
    const copiedAfter = Number(/^Failed back: copied (\d+) regions/.exec((await page.getByTestId('failover-result').textContent()) ?? '')![1]);
    // The rest only: at most what follows the cancelled run's last whole batch, and not nothing.
    expect(copiedAfter).toBeGreaterThan(0);
    expect(copiedAfter).toBeLessThanOrEqual(plan.resyncRegions - copiedBefore);
    const verified = await tidemarkAsync(['--json', 'verify', 'field'], { TIDEMARK_HOME: join(e2e.dir, 'home') });
    expect(verified.status, verified.stderr).toBe(0);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 180_000);
});
