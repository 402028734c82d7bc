// `tidemark console [--web] [--port N] [--no-open]`: the desktop console in Electron, or web
// mode (the same renderer and API over HTTP + WebSocket on 127.0.0.1) where Electron cannot
// run. On first start the console creates the built-in lab.

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { Engine, TidemarkError, resolveHomeDir, usageError, type GlobalOptions, type Io } from '../src-engine';
import { ConsoleService } from './console-service';
import { findElectron, hasDisplay } from './electron-launch';
import { startWebServer } from './web-server';

interface ConsoleOptions {
  web?: boolean;
  port?: string;
  open: boolean;
}

/** Where the built renderer is: beside the running bundle (dist/renderer). */
export function rendererDir(): string {
  return process.env.TIDEMARK_RENDERER_DIR ?? join(dirname(process.argv[1] ?? '.'), 'renderer');
}

function parsePort(text: string | undefined): number {
  if (text === undefined) return 0;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw usageError(`invalid --port "${text}"`, 'use a TCP port from 1 to 65535, or 0 for any free port');
  return port;
}

function openBrowser(url: string): void {
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(command, [url], { detached: true, stdio: 'ignore' });
  child.on('error', () => undefined); // no browser opener: the URL is printed anyway
  child.unref();
}

export async function runWebConsole(io: Io, global: GlobalOptions, port: number, open: boolean): Promise<void> {
  const engine = await Engine.open(resolveHomeDir(global.home, io.env), { purpose: 'tidemark console --web' });
  const server = await startWebServer({
    service: new ConsoleService(engine),
    staticDir: rendererDir(),
    port,
    log: (line) => io.stderr.write(`${line}\n`),
  }).catch(async (error: unknown) => {
    await engine.dispose();
    throw new TidemarkError('IO', `cannot serve web mode on 127.0.0.1:${port}: ${(error as Error).message}`, 'choose another --port, or 0 for any free port', {
      cause: error,
    });
  });
  try {
    await engine.ensureLab();
    io.stdout.write(`Tidemark console (web mode): ${server.url}\n`);
    if (open) openBrowser(server.url);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    io.stderr.write('stopping: flushing bitmaps and closing volumes\n');
  } finally {
    await server.close();
    await engine.dispose();
  }
}

function runElectron(binaryPath: string, io: Io, global: GlobalOptions): Promise<void> {
  const mainScript = join(dirname(process.argv[1] ?? '.'), 'main', 'main.cjs');
  const args = [mainScript, ...(global.home ? ['--home', global.home] : [])];
  const child = spawn(binaryPath, args, { stdio: 'inherit', env: io.env });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', () => resolve());
  });
}

export function registerConsoleCommand(program: Command, io: Io, globals: () => GlobalOptions): void {
  program
    .command('console')
    .description('open the console: Electron where it can run, else web mode on 127.0.0.1 (creates the lab on first start)')
    .option('--web', 'web mode: serve the console to a browser on 127.0.0.1 with a per-run token')
    .option('--port <n>', 'web mode port (default: any free port)')
    .option('--no-open', 'do not open a browser (web mode)')
    .action(async (options: ConsoleOptions) => {
      const global = globals();
      const port = parsePort(options.port);
      if (!options.web) {
        const electron = hasDisplay(io.env) ? findElectron() : ({ ok: false, reason: 'no display to show a window on' } as const);
        if (electron.ok) return runElectron(electron.binaryPath, io, global);
        io.stderr.write(`tidemark: ${electron.reason}; starting web mode instead\n`);
      }
      await runWebConsole(io, global, port, options.open);
    });
}
