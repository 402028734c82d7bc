// Electron main process: one window, hardened (context isolation, sandbox, no Node in the
// renderer, CSP, navigation and new windows blocked, app content from app://tidemark, not
// file://), the engine in-process, single-instance lock, clean shutdown.

import { app, BrowserWindow, dialog, ipcMain, net, protocol, safeStorage, session } from 'electron';
import { join, normalize, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Engine, isTidemarkError, resolveHomeDir } from '../src-engine';
import { ConsoleService } from './console-service';
import { appOrigin, registerDirectoryPicker, registerIpc, type IpcMainLike } from './ipc';
import { keychainCipher } from './keychain';
import { createFileLogger } from './logger';

const rendererDir = join(__dirname, '..', 'renderer');
const csp =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

protocol.registerSchemesAsPrivileged([{ scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

function homeFromArgs(argv: readonly string[]): string | undefined {
  const index = argv.indexOf('--home');
  return index !== -1 ? argv[index + 1] : undefined;
}

function serveApp(): void {
  protocol.handle('app', async (request) => {
    const url = new URL(request.url);
    const path = normalize(join(rendererDir, decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname)));
    if (url.host !== 'tidemark' || !path.startsWith(rendererDir + sep)) return new Response('not found', { status: 404 });
    const response = await net.fetch(pathToFileURL(path).toString());
    const headers = new Headers(response.headers);
    headers.set('Content-Security-Policy', csp);
    headers.set('X-Content-Type-Options', 'nosniff');
    return new Response(response.body, { status: response.status, headers });
  });
}

function createWindow(): BrowserWindow {
  const window = new BrowserWindow({
    width: 1280,
    height: 860,
    title: 'Tidemark',
    show: false,
    webPreferences: {
      preload: join(__dirname, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webviewTag: false,
      spellcheck: false,
    },
  });
  window.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  window.webContents.on('will-navigate', (event, url) => {
    if (!url.startsWith(`${appOrigin}/`)) event.preventDefault();
  });
  window.once('ready-to-show', () => window.show());
  void window.loadURL(`${appOrigin}/index.html`);
  return window;
}

async function main(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  await app.whenReady();
  session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  const homeDir = resolveHomeDir(homeFromArgs(process.argv));
  const log = createFileLogger(homeDir);
  const engine = await Engine.open(homeDir, {
    purpose: 'Tidemark console (Electron)',
    agentBundlePath: app.isPackaged ? join(process.resourcesPath, 'agent', 'tidemark-agent.cjs') : join(__dirname, '..', 'tidemark-agent.cjs'),
    secretCipher: keychainCipher(safeStorage),
  });
  await engine.ensureLab();
  const service = new ConsoleService(engine);
  serveApp();
  let window: BrowserWindow | undefined = createWindow();
  const unregister = registerIpc(ipcMain as unknown as IpcMainLike, service, () => window?.webContents.id, log);
  const unregisterPicker = registerDirectoryPicker(
    ipcMain as unknown as IpcMainLike,
    async ({ title, defaultPath }) => {
      const options: Electron.OpenDialogOptions = {
        title,
        properties: ['openDirectory', 'createDirectory', 'promptToCreate'],
        ...(defaultPath ? { defaultPath } : {}),
      };
      const chosen = window ? await dialog.showOpenDialog(window, options) : await dialog.showOpenDialog(options);
      return chosen.canceled ? null : (chosen.filePaths[0] ?? null);
    },
    () => window?.webContents.id,
    log,
  );
  const unsubscribe = service.onEvent((event) => window?.webContents.send('tidemark:event', event));
  app.on('second-instance', () => window?.focus());
  app.on('web-contents-created', (_event, contents) => contents.on('will-attach-webview', (e) => e.preventDefault()));
  window.on('closed', () => (window = undefined));
  let disposed = false;
  app.on('before-quit', (event) => {
    if (disposed) return;
    event.preventDefault();
    unsubscribe();
    unregister();
    unregisterPicker();
    log('quit: flushing bitmaps and closing volumes');
    void engine.dispose().finally(() => {
      disposed = true;
      app.quit();
    });
  });
  app.on('window-all-closed', () => app.quit());
  log(`console started on home ${homeDir}`);
}

// A failure to start (the home owned by another process, unwritable, …) is shown and ends
// the app; it must never leave a process with no window running.
main().catch((error: unknown) => {
  const detail = isTidemarkError(error) ? error.oneLine() : error instanceof Error ? error.message : String(error);
  dialog.showErrorBox('Tidemark cannot start', detail);
  app.exit(1);
});
