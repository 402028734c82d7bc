// Finding Electron's binary: `require('electron')` returns its path, downloading it on first
// use; where that cannot work (no binary, no network) we say why in one line and the caller
// falls back to web mode.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export type ElectronLookup = { ok: true; binaryPath: string } | { ok: false; reason: string };

/** Resolves the Electron binary in a child process (the download may print or hang). */
export function findElectron(timeoutMs = 120_000): ElectronLookup {
  const probe = spawnSync(process.execPath, ['-e', "process.stdout.write(require('electron'))"], {
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const binaryPath = probe.stdout?.trim() ?? '';
  if (probe.status === 0 && binaryPath && existsSync(binaryPath)) return { ok: true, binaryPath };
  const detail =
    (probe.stderr ?? '')
      .split('\n')
      .find((line) => /Error|error/.test(line))
      ?.trim() ?? (probe.error ? String(probe.error) : 'the electron package did not report a binary');
  return { ok: false, reason: `Electron's binary is not available (${detail.slice(0, 160)})` };
}

/** Whether an Electron window can be shown at all on this machine. */
export function hasDisplay(env: NodeJS.ProcessEnv = process.env): boolean {
  return process.platform !== 'linux' || Boolean(env.DISPLAY || env.WAYLAND_DISPLAY);
}
