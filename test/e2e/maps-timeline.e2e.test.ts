// The map inspector and the pair timeline end to end (Chromium, web mode, a real engine): a
// pair made and synced with the CLI, regions written through the console's agent left
// unshipped. The inspector shows exactly the counts `tidemark map NAME --which … --json`
// prints (OOS, then OOS compared with MOOS: OOS ⊆ MOOS), zooms into a run, opens a map file
// the CLI exported (uploaded by the file chooser) and compares it with the pair's map; after a
// forced failover (CLI) and writes on the new primary, its resync and failback maps match the
// CLI's; the pair's timeline shows both role changes of the failover with who and when.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { consoleE2E } from '../helpers/browser';

const e2e = consoleE2E('tidemark-e2e-maps-');
const { shot, cli, writeThroughConsole } = e2e;

async function cliMap(which: string): Promise<{ setCount: number; regions: number; runs: [number, number][] }> {
  return JSON.parse(await cli(['--json', 'map', 'field', '--which', which])) as { setCount: number; regions: number; runs: [number, number][] };
}

describe('map inspector and pair timeline (Chromium, web mode)', () => {
  it('shows the CLI’s counts for pair maps and an exported file, compares them, and the timeline shows the failover', async () => {
    const primary = join(e2e.dir, 'site-a.img');
    const secondary = join(e2e.dir, 'site-b.img');
    await cli(['volume', 'create', primary, '--size', '32MiB']);
    await cli(['volume', 'create', secondary, '--size', '32MiB']);
    await cli(['pair', 'create', 'field', '--primary', primary, '--secondary', secondary, '--region-size', '1MiB']);
    await cli(['sync', 'field']);
    await writeThroughConsole(primary, [2, 3, 7, 8, 9, 20], 100);
    const oos = await cliMap('oos');
    expect(oos.setCount).toBe(6);
    const moos = await cliMap('moos');

    const { page, pageErrors } = await e2e.openPair('field', { width: 1400, height: 1800 });
    await page.getByTestId('pair-inspect-maps').click();

    // OOS of the pair: the CLI's count and runs.
    const count = page.getByTestId('inspector-count');
    await expect
      .poll(() => count.textContent(), { timeout: 30_000 })
      .toMatch(new RegExp(`^oos of field: ${oos.setCount} of 32 regions set \\(6 MiB\\) in ${oos.runs.length} runs`));
    expect(await page.getByTestId('inspector-run').count()).toBe(oos.runs.length);
    expect(await page.getByTestId('inspector-run').first().textContent()).toMatch(/^2–3\s*2\s*2097152\s*2 MiB/);
    // A run zooms the heatmap to it (with as many regions either side as the run is long, at least 4).
    await page.getByRole('button', { name: 'zoom to regions 7 to 9' }).click();
    await expect.poll(() => page.getByTestId('heatmap-view').textContent()).toMatch(/^showing regions 3–13 of 32/);

    // Compared with MOOS: OOS ⊆ MOOS, so A ∩ B is OOS and A \ B is empty.
    await page.getByRole('switch', { name: 'compare with a second map' }).click();
    await page.getByRole('combobox', { name: /^B: from/ }).click();
    await page.getByRole('option', { name: 'pair field' }).click();
    await page.getByTestId('inspector-b-which-moos').click();
    await expect.poll(() => page.getByTestId('inspector-compare-b').textContent(), { timeout: 30_000 }).toBe(String(moos.setCount));
    expect(await page.getByTestId('inspector-compare-a').textContent()).toBe(String(oos.setCount));
    expect(await page.getByTestId('inspector-compare-intersection').textContent()).toBe(String(oos.setCount));
    expect(await page.getByTestId('inspector-compare-a-minus-b').textContent()).toBe('0');
    expect(await page.getByTestId('inspector-compare-union').textContent()).toBe(String(moos.setCount));
    await shot(page, 'e2e-map-inspector-compare');

    // A map file the CLI exported, uploaded through the file chooser: its count, then compared with the pair's OOS.
    const exported = join(e2e.dir, 'field-oos.tmmap');
    await cli(['map', 'field', '--which', 'oos', '--export', exported]);
    const opened = JSON.parse(await cli(['--json', 'map', '--open', exported])) as { maps: { name: string; setCount: number }[] };
    await page.getByTestId('inspector-file-input').setInputFiles(exported);
    await expect.poll(() => page.getByTestId('inspector-compare').textContent(), { timeout: 30_000 }).toContain('A = oos of field-oos.tmmap');
    expect(await page.getByTestId('inspector-compare-a').textContent()).toBe(String(opened.maps[0]!.setCount));
    await page.getByTestId('inspector-b-which-oos').click();
    await expect.poll(() => page.getByTestId('inspector-compare-b').textContent()).toBe(String(oos.setCount));
    expect(await page.getByTestId('inspector-compare-intersection').textContent()).toBe(String(oos.setCount));
    expect(await page.getByTestId('inspector-compare-b-minus-a').textContent()).toBe('0');

    // A forced failover (CLI), writes on the new primary: resync and failback as the CLI counts them.
    await cli(['failover', 'field', '--force']);
    await writeThroughConsole(secondary, [9, 30, 31], 200);
    const resync = await cliMap('resync');
    const failback = await cliMap('failback');
    expect(resync.setCount).toBe(new Set([2, 3, 7, 8, 9, 20, 30, 31]).size);
    await page.getByRole('switch', { name: 'compare with a second map' }).click();
    await page.getByRole('combobox', { name: /^A: from/ }).click();
    await page.getByRole('option', { name: 'pair field' }).click();
    await page.getByTestId('inspector-a-which-resync').click();
    await expect.poll(() => count.textContent(), { timeout: 30_000 }).toMatch(new RegExp(`^resync of field: ${resync.setCount} of 32 regions set`));
    await page.getByTestId('inspector-a-which-failback').click();
    await expect.poll(() => count.textContent(), { timeout: 30_000 }).toMatch(new RegExp(`^failback of field: ${failback.setCount} of 32 regions set`));
    // A map the pair does not have: the engine's one-line reason, in context.
    await page.getByTestId('inspector-a-which-current').click();
    await expect.poll(() => page.getByTestId('error-note').textContent()).toMatch(/has no current map/);
    await shot(page, 'e2e-map-inspector-failback');

    // The timeline: the failover's two role changes at generation 2, who asked, after the creation.
    await page.getByTestId('nav-pairs').click();
    await page.getByTestId('pair-card-field').click();
    const entries = page.getByTestId('timeline-entry');
    await expect
      .poll(() => entries.allTextContents(), { timeout: 30_000 })
      .toEqual(
        expect.arrayContaining([
          expect.stringMatching(/created.*pair created/),
          expect.stringMatching(new RegExp(`^.*2role changeforced failover: ${secondary} became primary.+@.+$`)),
          expect.stringMatching(new RegExp(`^.*2role changeforced failover: ${primary} became secondary.+@.+$`)),
        ]),
      );
    const show = await cli(['pair', 'show', 'field']);
    expect(show).toMatch(/generation 2 {2}failover-forced/);
    await shot(page, 'e2e-pair-timeline');
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 180_000);
});
