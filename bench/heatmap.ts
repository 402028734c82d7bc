// heatmap: the console's heatmap renderer in Debian's Chromium — a 4M-region bitmap with
// 10 % set painted into a 1600×400 canvas. Densities are computed in a Web Worker; the UI
// thread's cost per frame is compared with a 16 ms frame budget (60 fps), and a whole
// update (worker + paint) with the 100 ms budget of a 10 fps live heatmap.

import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { chromium } from 'playwright-core';
import { scaledCount, type BenchContext, type Benchmark } from './benchmark';
import type {} from '../src-renderer/bench-entry'; // declares window.runHeatmapBench and its result
import { makeFigure } from './report';
import { percentile } from './timing';

const regionCountBase = 4 * 2 ** 20;
const setFraction = 0.1;
const frames = 40;
const frameBudgetMs = 16;
const liveBudgetMs = 100;
const mime: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

function serve(dir: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(join(dir, new URL(req.url ?? '/', 'http://x').pathname));
    if (!path.startsWith(dir + sep)) return void res.writeHead(404).end();
    readFile(path).then(
      (body) => res.writeHead(200, { 'content-type': mime[extname(path)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function run(context: BenchContext): Promise<void> {
  const regionCount = scaledCount(regionCountBase, context.sizeFactor, 32);
  const rendererDir = join(__dirname, 'renderer');
  const server = await serve(rendererDir);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/bench.html`);
    await page.waitForFunction(() => typeof window.runHeatmapBench === 'function');
    context.log(`heatmap: ${regionCount} regions, ${setFraction * 100}% set (seed ${context.seed}), ${frames} frames into 1600×400`);
    const result = await page.evaluate(([n, f, k, s]) => window.runHeatmapBench(n, f, k, s), [regionCount, setFraction, frames, context.seed] as const);
    const steady = (samples: number[]) => samples.slice(3); // the first frames include JIT warm-up
    const uiMedianMs = percentile(steady(result.uiMs), 50);
    const updateMedianMs = percentile(steady(result.updateMs), 50);
    const details = {
      regionCount,
      setCount: result.setCount,
      frames,
      uiP95Ms: percentile(steady(result.uiMs), 95),
      workerDensityMedianMs: percentile(steady(result.densityMs), 50),
      inlineDensityMedianMs: percentile(steady(result.inlineMs), 50),
      updateP95Ms: percentile(steady(result.updateMs), 95),
    };
    context.record(
      makeFigure({
        name: 'heatmap-4M-frame',
        tidemark: { value: uiMedianMs, unit: 'ms UI thread/frame' },
        peer: { name: 'frame-budget-60fps', value: frameBudgetMs, unit: 'ms' },
        ratio: frameBudgetMs / uiMedianMs,
        goal: 1,
        details,
      }),
    );
    context.record(
      makeFigure({
        name: 'heatmap-4M-update',
        tidemark: { value: updateMedianMs, unit: 'ms/update' },
        peer: { name: 'live-budget-10fps', value: liveBudgetMs, unit: 'ms' },
        ratio: liveBudgetMs / updateMedianMs,
        goal: 1,
        details,
      }),
    );
  } finally {
    await browser.close();
    server.close();
  }
}

export const heatmapBenchmark: Benchmark = {
  name: 'heatmap',
  description: 'paint a 4M-region bitmap (10% set) into a 1600×400 canvas in Chromium vs a 16 ms frame budget',
  run,
};
