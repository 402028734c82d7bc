// Migrate in the console end to end (Chromium, web mode, a real engine): a pair made and synced
// with the CLI, regions written through the console's agent left unshipped. The Failover card
// offers Migrate (the primary can be reached); its dialog shows exactly the unshipped count
// `tidemark map NAME --which oos|in-flight --json` reports, with the heatmap; migrating runs in
// the background to a result naming the new primary; the CLI then sees the roles swapped,
// `tidemark verify` exits 0, every written region is on the new primary, and the pair's
// timeline shows the migrate's two role changes.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { consoleE2E } from '../helpers/browser';
import { tidemarkAsync } from '../helpers/cli';
import { randomRegion } from '../helpers/pairs';

const MiB = 2 ** 20;
const e2e = consoleE2E('tidemark-e2e-migrate-');
const { shot, cli, writeThroughConsole } = e2e;

describe('migrate in the console (Chromium, web mode)', () => {
  it('Migrate dialog shows the CLI’s unshipped count → roles swapped, verify 0, the timeline shows the migrate', async () => {
    const primary = join(e2e.dir, 'site-a.img');
    const secondary = join(e2e.dir, 'site-b.img');
    await cli(['volume', 'create', primary, '--size', '64MiB']);
    await cli(['volume', 'create', secondary, '--size', '64MiB']);
    await cli(['pair', 'create', 'field', '--primary', primary, '--secondary', secondary, '--region-size', '1MiB']);
    await cli(['sync', 'field']);
    const written = [3, 5, 6, 40, 41, 63];
    await writeThroughConsole(primary, written, 700);
    const oos = JSON.parse(await cli(['--json', 'map', 'field', '--which', 'oos'])) as { setCount: number };
    const inFlight = JSON.parse(await cli(['--json', 'map', 'field', '--which', 'in-flight'])) as { setCount: number };
    expect(oos.setCount).toBe(written.length);
    expect(inFlight.setCount).toBe(0);

    const { page, pageErrors } = await e2e.openPair('field', { width: 1400, height: 1800 });

    // The primary can be reached: Migrate is offered (and the forced failover says so).
    await expect.poll(() => page.getByTestId('role-options').textContent(), { timeout: 30_000 }).toMatch(/can be reached: Migrate swaps the roles/);
    expect(await page.getByTestId('failover-open').textContent()).toBe('Fail over (forced)…');
    await page.getByTestId('migrate-open').click();
    await expect
      .poll(() => page.getByTestId('migrate-count').textContent(), { timeout: 30_000 })
      .toMatch(new RegExp(`^Unshipped now: ${oos.setCount + inFlight.setCount} of 64 regions \\(6 MiB\\), from the primary’s oos ∪ in-flight`));
    expect(await page.getByTestId('migrate-risk').textContent()).toMatch(/No acknowledged write is lost/);
    await shot(page, 'e2e-migrate-dialog');
    await page.getByTestId('migrate-confirm').click();

    await expect
      .poll(() => page.getByTestId('failover-result').textContent(), { timeout: 60_000 })
      .toMatch(
        new RegExp(
          `^Migrated: ${secondary} is the primary \\(generation 2\\); \\d+ regions drained, \\d+ copied while writes were paused .*; ${primary} is the secondary\\.$`,
        ),
      );
    await shot(page, 'e2e-migrate-done');

    // The CLI sees the swap; both sides are identical and hold every write.
    const show = JSON.parse(await cli(['--json', 'pair', 'show', 'field'])) as {
      record: { generation: number; primary: { volref: string }; secondary: { volref: string } };
    };
    expect(show.record.primary.volref).toBe(secondary);
    expect(show.record.secondary.volref).toBe(primary);
    expect(show.record.generation).toBe(2);
    const verified = await tidemarkAsync(['--json', 'verify', 'field'], { TIDEMARK_HOME: join(e2e.dir, 'home') });
    expect(verified.status, verified.stderr).toBe(0);
    const image = await readFile(secondary);
    for (const [i, r] of written.entries()) expect(image.subarray(r * MiB, (r + 1) * MiB).equals(randomRegion(700 + i, MiB)), `region ${r}`).toBe(true);

    // The timeline: the migrate's role changes at generation 2, by whom.
    const entries = page.getByTestId('timeline-entry');
    await expect
      .poll(() => entries.allTextContents(), { timeout: 30_000 })
      .toEqual(
        expect.arrayContaining([
          expect.stringMatching(new RegExp(`2role changemigrate: ${secondary} became primary.+@.+$`)),
          expect.stringMatching(new RegExp(`2role changemigrate: ${primary} became secondary.+@.+$`)),
        ]),
      );
    // After the swap the card offers Migrate again (back the other way).
    await expect.poll(() => page.getByTestId('role-options').textContent()).toContain(`${secondary} can be reached`);
    await shot(page, 'e2e-migrate-timeline');
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 180_000);
});
