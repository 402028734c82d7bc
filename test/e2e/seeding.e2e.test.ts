// Seeding in the console end to end (Chromium, web mode, a real engine): a pair made with the
// CLI on the console's home; the Seeding screen checks the media, exports the primary with
// progress to "safe to remove", verifies the image, imports it into the secondary, and the
// resync it offers leaves the volumes identical by the CLI's verify.
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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

    const page = await e2e.browser.newPage({ viewport: { width: 1400, height: 1200 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(e2e.web.url);
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
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 180_000); // its waits allow 60 s each: a loaded machine makes one slow step, not a failure
});
