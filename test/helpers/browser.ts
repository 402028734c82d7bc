// Debian's Chromium driven by playwright-core (never a downloaded browser), and the console
// in web mode as a real process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { RpcAgent, connectAgentSocket } from '../../src-engine/agent';
import { RpcPeer } from '../../src-engine/transport';
import { cliBundle, tidemarkAsync } from './cli';
import { randomRegion } from './pairs';
import { tempDir } from './tmp';
import { requireTool } from './tools';

export async function launchChromium(): Promise<Browser> {
  const executablePath = requireTool('chromium');
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
}

export interface WebConsole {
  readonly url: string;
  readonly port: number;
  readonly token: string;
  readonly process: ChildProcess;
  stderr(): string;
  stop(): Promise<number | null>;
}

/** Starts `tidemark console --web --no-open` on a free port and waits for its URL. */
export function startWebConsole(homeDir: string, env: NodeJS.ProcessEnv = {}): Promise<WebConsole> {
  const child = spawn(process.execPath, [cliBundle, '--home', homeDir, 'console', '--web', '--no-open', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`console did not print its URL in 30 s; stderr: ${stderr}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`console exited with ${code}: ${stderr}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /(http:\/\/127\.0\.0\.1:(\d+)\/\?token=([\w-]+))/.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({
        url: match[1]!,
        port: Number(match[2]),
        token: match[3]!,
        process: child,
        stderr: () => stderr,
        stop: () =>
          new Promise((done) => {
            child.once('exit', (code) => done(code));
            child.kill('SIGTERM');
          }),
      });
    });
  });
}

/** A console page open on the pairs list; every page error is collected (a test ends expecting none). */
export interface ConsolePage {
  readonly page: Page;
  readonly pageErrors: string[];
}

export type Viewport = { readonly width: number; readonly height: number };

/** Opens the console (its URL carries the token) in a new page of `browser`. */
export async function openConsolePage(browser: Browser, url: string, viewport: Viewport): Promise<ConsolePage> {
  const page = await browser.newPage({ viewport });
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(url);
  return { page, pageErrors };
}

export interface ConsoleE2E {
  /** The test's temp dir; the console's home is `<dir>/home`. */
  dir: string;
  web: WebConsole;
  browser: Browser;
  /** A full-page screenshot into test-results/NAME.png. */
  shot(page: Page, name: string): Promise<void>;
  /** `tidemark ARGS` on the console's home; fails the test unless it exits 0. Resolves with stdout. */
  cli(args: string[]): Promise<string>;
  /** Writes 1 MiB regions (seeded data) through the console's own agent, as an NBD client's writes would arrive. */
  writeThroughConsole(path: string, regions: readonly number[], seed: number): Promise<void>;
  /** The console in a new page (openConsolePage). */
  openConsole(viewport: Viewport): Promise<ConsolePage>;
  /** The console in a new page, on the detail of pair `name` (its card clicked once the list shows it: the engine may still be making its lab). */
  openPair(name: string, viewport: Viewport): Promise<ConsolePage>;
}

/**
 * The setup every console E2E file shares: a temp dir, a web-mode console on `<dir>/home`,
 * Chromium; stopped after the file (the console must exit 0). Fields are filled in beforeAll.
 */
export function consoleE2E(prefix: string): ConsoleE2E {
  const shots = join(import.meta.dirname, '..', '..', 'test-results');
  const e2e = {
    shot: (page: Page, name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true }).then(() => undefined),
    cli: async (args: string[]) => {
      const result = await tidemarkAsync(args, { TIDEMARK_HOME: join(e2e.dir, 'home') });
      expect(result.status, `tidemark ${args.join(' ')}: ${result.stderr}`).toBe(0);
      return result.stdout;
    },
    writeThroughConsole: async (path: string, regions: readonly number[], seed: number) => {
      const peer = new RpcPeer(await connectAgentSocket(join(e2e.dir, 'home')), { role: 'client', keepaliveMs: 0 });
      await peer.handshake();
      const agent = new RpcAgent(peer);
      for (const [i, r] of regions.entries()) await agent.writeRegion(path, r, randomRegion(seed + i, 2 ** 20));
      await agent.dispose();
    },
    openConsole: (viewport: Viewport) => openConsolePage(e2e.browser, e2e.web.url, viewport),
    openPair: async (name: string, viewport: Viewport) => {
      const opened = await openConsolePage(e2e.browser, e2e.web.url, viewport);
      await opened.page.getByTestId(`pair-card-${name}`).click({ timeout: 60_000 });
      return opened;
    },
  } as ConsoleE2E;
  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    e2e.dir = await tempDir(prefix);
    e2e.web = await startWebConsole(join(e2e.dir, 'home'));
    e2e.browser = await launchChromium();
  });
  afterAll(async () => {
    await e2e.browser?.close();
    if (e2e.web) expect(await e2e.web.stop()).toBe(0);
  });
  return e2e;
}
