// A small file logger for the console host: one line per entry, ISO time first, appended to
// <home>/logs/console.log (rotated to .1 beyond 10 MiB at start).

import { appendFileSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';

const rotateBytes = 10 * 1024 * 1024;

export function createFileLogger(homeDir: string, name = 'console.log'): (line: string) => void {
  const dir = join(homeDir, 'logs');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, name);
  try {
    if (statSync(path).size > rotateBytes) renameSync(path, `${path}.1`);
  } catch {
    // no log yet
  }
  return (line: string) => appendFileSync(path, `${new Date().toISOString()} ${line}\n`, { mode: 0o600 });
}
