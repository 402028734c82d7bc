// The console end to end in Debian's Chromium against web mode: the lab appears, the write
// generator makes the OOS heatmap rise, hover names a region's bytes, the event log lists
// what happened, and requests without the token or from a foreign Origin are refused.
// Screenshots go to test-results/ for review.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAgentSocket } from '../../src-engine/agent';
import { launchChromium, openConsolePage, startWebConsole, type WebConsole } from '../helpers/browser';
import { repoRoot } from '../helpers/cli';
import { tempDir } from '../helpers/tmp';

const shots = join(repoRoot, 'test-results');
let browser: Browser;
let web: WebConsole;
let homeDir: string;

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function countIn(page: Page, testId: string): Promise<number> {
  const text = (await page.getByTestId(testId).textContent()) ?? '';
  return Number(/(\d+) of/.exec(text)?.[1] ?? NaN);
}

beforeAll(async () => {
  await mkdir(shots, { recursive: true });
  homeDir = join(await tempDir('tidemark-e2e-'), 'home');
  web = await startWebConsole(homeDir);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  if (web) expect(await web.stop()).toBe(0);
  expect(existsSync(join(homeDir, 'agent.sock'))).toBe(false); // clean shutdown released the home
  await expect(connectAgentSocket(homeDir)).rejects.toThrow(); // and nothing serves it any more
});

describe('console in Chromium (web mode)', () => {
  it('shows the lab, tracks generated writes on the OOS heatmap, names hovered regions, logs events', async () => {
    const { page, pageErrors } = await openConsolePage(browser, web.url, { width: 1400, height: 1000 });
    await expect.poll(() => page.url()).not.toContain('token='); // removed from the address bar
    await page.getByTestId('pair-card-lab').waitFor();
    await shot(page, 'e2e-pairs');

    await page.getByTestId('pair-card-lab').click();
    await expect.poll(() => countIn(page, 'map-count')).toBe(0);
    await page.getByTestId('generator-rate').fill('300');
    await page.getByTestId('generator-start').click();
    await expect.poll(() => countIn(page, 'map-count'), { timeout: 15_000 }).toBeGreaterThan(20);
    const first = await countIn(page, 'map-count');
    await expect.poll(() => countIn(page, 'map-count'), { timeout: 15_000 }).toBeGreaterThan(first);
    await shot(page, 'e2e-heatmap-oos');

    const canvas = await page.getByTestId('heatmap-canvas').boundingBox();
    expect(canvas).not.toBeNull();
    await page.mouse.move(canvas!.x + 5, canvas!.y + 5);
    await expect.poll(() => page.getByTestId('heatmap-hover').textContent()).toMatch(/^region 0: bytes 0 B – 1 MiB \(offset 0\): (out of sync|in sync)$/);
    await page.getByTestId('map-moos').click();
    await expect.poll(() => page.getByTestId('map-count').textContent()).toMatch(/^MOOS: \d+ of 1024 regions maybe out of sync/);
    await page.getByTestId('generator-stop').click();
    await shot(page, 'e2e-heatmap-moos');

    await page.getByTestId('nav-events').click();
    await page.getByTestId('event-row').first().waitFor();
    const log = await page.locator('[data-testid=event-row]').allTextContents();
    expect(log.join('\n')).toMatch(/lab created/);
    expect(log.join('\n')).toMatch(/write generator started: 300 writes\/s/);
    expect(log.join('\n')).toMatch(/write generator stopped after \d+ writes/);
    await page.getByTestId('events-filter').fill('stopped');
    await expect.poll(() => page.locator('[data-testid=event-row]').count()).toBe(1);
    await shot(page, 'e2e-events');

    await page.getByTestId('nav-volumes').click();
    await expect.poll(() => page.locator('[data-testid=volume-row]').count()).toBe(2);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('refuses the page without the token, and the API from a foreign origin', async () => {
    const page = await browser.newPage();
    const bare = await page.goto(`http://127.0.0.1:${web.port}/`);
    expect(bare?.status()).toBe(401);
    expect(await page.locator('body').textContent()).toContain('missing or wrong token');

    // A page from another origin that knows the token still cannot open the API socket.
    const foreign = createServer((_req, res) => res.end('<!doctype html><title>foreign</title>'));
    await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', () => resolve()));
    try {
      await page.goto(`http://127.0.0.1:${(foreign.address() as AddressInfo).port}/`);
      const outcome = await page.evaluate(
        (target) =>
          new Promise<string>((resolve) => {
            const ws = new WebSocket(target);
            ws.onopen = () => resolve('open');
            ws.onerror = () => resolve('refused');
          }),
        `ws://127.0.0.1:${web.port}/api?token=${web.token}`,
      );
      expect(outcome).toBe('refused');
    } finally {
      foreign.close();
    }
    expect(web.stderr()).toMatch(/refused an API connection \(refused: foreign Origin\)/);
    await page.close();
  });
});
