// Seeding in the console end to end (Chromium, web mode, a real engine): a pair made with the
// CLI on the console's home; the Seeding screen checks the media, exports the primary with
// progress to "safe to remove", verifies the image, imports it into the secondary, and the
// resync it offers (its result shown on the Seeding screen) leaves the volumes identical by the
// CLI's verify; then a 512 MiB export shows its progress line before "safe to remove".
import { open, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { RpcAgent, connectAgentSocket } from '../../src-engine/agent';
import { RpcPeer } from '../../src-engine/transport';
import { consoleE2E } from '../helpers/browser';
import { tidemarkAsync } from '../helpers/cli';
import { randomRegion } from '../helpers/pairs';

const MiB = 2 ** 20;
const e2e = consoleE2E('tidemark-e2e-seeding-');
const { shot } = e2e;

describe('seeding in the console (Chromium, web mode)', () => {
  it('export with a media check → verify → import into the secondary → resync → identical', async () => {
    const env = { TIDEMARK_HOME: join(e2e.dir, 'home') };
    const primary = join(e2e.dir, 'site-a.img');
    const secondary = join(e2e.dir, 'site-b.img');
    const media = join(e2e.dir, 'usb', 'seed');
    const data = randomRegion(20261124, 16 * MiB);
    data.fill(0, 4 * MiB, 12 * MiB); // half of the primary never written: not stored in the image
    await writeFile(primary, data);
    await writeFile(secondary, '');
    await truncate(secondary, 16 * MiB);
    const created = await tidemarkAsync(['pair', 'create', 'seed', '--primary', primary, '--secondary', secondary, '--region-size', '1MiB'], env);
    expect(created.status, created.stderr).toBe(0);

    const { page, pageErrors } = await e2e.openConsole({ width: 1400, height: 1200 });
    await page.getByTestId('pair-card-seed').waitFor({ timeout: 60_000 });
    await page.getByTestId('nav-seeding').click();
    await page.getByTestId('export-source').fill('seed');
    await page.getByTestId('export-dir').fill(media);
    await page.getByTestId('export-check').click();
    await expect.poll(() => page.getByTestId('export-preflight').textContent()).toMatch(/^Needs up to 8 MiB; .* free\.$/);
    await page.getByTestId('export-start').click();
    await page.getByTestId('task-export-done').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('task-export-done').textContent()).toMatch(
      /^Exported 8 of 16 regions \(8 MiB\) into .*seed\. Manifest SHA-256 [0-9a-f]{64}\. Safe to remove the media\.$/,
    );
    await shot(page, 'e2e-seeding-exported');

    // The primary changes after the export: two regions rewritten through the console's agent.
    const peer = new RpcPeer(await connectAgentSocket(join(e2e.dir, 'home')), { role: 'client', keepaliveMs: 0 });
    await peer.handshake();
    const agent = new RpcAgent(peer);
    for (const r of [1, 13]) await agent.writeRegion(primary, r, randomRegion(r, MiB));
    await agent.dispose();

    await page.getByTestId('import-dir').fill(media);
    await page.getByTestId('import-verify').click();
    await page.getByTestId('task-verify-done').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('task-verify-done').textContent()).toMatch(/^The image is intact: 16 regions/);
    await page.getByTestId('import-target').locator('..').click();
    await page.getByRole('option', { name: new RegExp(`^seed: `) }).click();
    await page.getByTestId('import-start').click();
    await page.getByTestId('task-import-done').waitFor({ timeout: 60_000 });
    await page.getByTestId('import-resync').click();
    // The resync's progress and result show on this screen, under its button.
    await expect
      .poll(
        () =>
          page
            .getByTestId('import-resync-view')
            .getByTestId('sync-summary')
            .textContent({ timeout: 1000 })
            .catch(() => ''),
        { timeout: 60_000 },
      )
      .toMatch(/^Synced \(realized\): 2 of 16 regions sent/);
    await shot(page, 'e2e-seeding-imported');

    // The resync (auto → realized after an import) moves only the two changed regions.
    await expect
      .poll(async () => JSON.parse((await tidemarkAsync(['--json', 'pair', 'show', 'seed'], env)).stdout).state as string, { timeout: 60_000 })
      .toBe('in-sync');
    const verified = await tidemarkAsync(['--json', 'verify', 'seed'], env);
    expect(verified.status, verified.stdout).toBe(0);
    expect((await readFile(secondary)).equals(await readFile(primary))).toBe(true);
    await page.getByTestId('nav-pairs').click();
    await page.getByTestId('pair-card-seed').click();
    await expect.poll(() => page.getByTestId('sync-summary').textContent(), { timeout: 30_000 }).toMatch(/^Synced \(realized\): 2 of 16 regions sent/);

    await longExport(page);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 300_000); // its waits allow 60 s each: a loaded machine makes one slow step, not a failure
});

/** A 512 MiB export on the same page: its progress line (bytes, rate, ETA) shows before "safe to remove the media". */
async function longExport(page: Page): Promise<void> {
  const env = { TIDEMARK_HOME: join(e2e.dir, 'home') };
  const primary = join(e2e.dir, 'big-a.img');
  const secondary = join(e2e.dir, 'big-b.img');
  const media = join(e2e.dir, 'usb', 'big');
  const handle = await open(primary, 'w');
  const chunk = randomRegion(20261125, 16 * MiB);
  for (let i = 0; i < 32; i++) await handle.write(chunk, 0, chunk.length, i * chunk.length); // 512 MiB, all written
  await handle.close();
  await writeFile(secondary, '');
  await truncate(secondary, 512 * MiB);
  const created = await tidemarkAsync(['pair', 'create', 'big', '--primary', primary, '--secondary', secondary, '--region-size', '1MiB'], env);
  expect(created.status, created.stderr).toBe(0);

  await page.getByText('← all pairs').click();
  await page.getByTestId('pair-card-big').waitFor({ timeout: 60_000 });
  await page.getByTestId('nav-seeding').click();
  await page.getByTestId('export-source').fill('big');
  await page.getByTestId('export-dir').fill(media);
  await page.getByTestId('export-check').click();
  await page.getByTestId('export-preflight').waitFor();
  // Every export line the page shows, in order, as it shows them (however briefly).
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { exportLines: string[] }).exportLines = seen;
    const record = () => {
      const running = document.querySelector('[data-testid="task-export-running"]')?.textContent;
      const done = document.querySelector('[data-testid="task-export-done"]')?.textContent;
      for (const line of [running, done]) if (line && seen.at(-1) !== line) seen.push(line);
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await page.getByTestId('export-start').click();
  // (The earlier export's result shows until this one's task replaces it.)
  await expect
    .poll(
      () =>
        page
          .getByTestId('task-export-done')
          .textContent({ timeout: 1000 })
          .catch(() => ''),
      { timeout: 120_000 },
    )
    .toMatch(/usb\/big\. /);
  const lines = await page.evaluate(() => (window as unknown as { exportLines: string[] }).exportLines);
  const progress = lines.findIndex((l) => /^export: [\d.]+ (B|KiB|MiB) of 512 MiB at [\d.]+ (B|KiB|MiB|GiB)\/s · ETA (\d+s|…)/.test(l));
  const safe = lines.findIndex((l) => /^Exported 512 of 512 regions \(512 MiB\) into .*usb\/big\. .*Safe to remove the media\.$/.test(l));
  expect(progress, JSON.stringify(lines)).toBeGreaterThanOrEqual(0);
  expect(safe, JSON.stringify(lines)).toBeGreaterThan(progress);
}
