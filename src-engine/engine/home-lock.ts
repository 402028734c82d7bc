// One engine per home: an exclusive lock file holding the owner's pid. A lock whose process
// is gone is stale and taken over; a live one is refused with who holds it. (The agent's
// socket becomes the lock when host agents arrive; this file keeps two consoles apart now.)

import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === 'EPERM';
  }
}

export class HomeLock {
  private constructor(readonly path: string) {}

  static async acquire(homeDir: string, purpose: string): Promise<HomeLock> {
    const path = join(homeDir, 'engine.lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(path, 'wx', 0o600);
        await handle.writeFile(`${process.pid} ${purpose}\n`);
        await handle.close();
        return new HomeLock(path);
      } catch (error) {
        if (errnoCode(error) !== 'EEXIST') throw fromSystemError(error, 'lock Tidemark home', homeDir);
        const [pidText, ...what] = (await readFile(path, 'utf8').catch(() => '')).trim().split(' ');
        const pid = Number(pidText);
        if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
          throw new TidemarkError(
            'ALREADY_EXISTS',
            `Tidemark home ${homeDir} is in use by process ${pid} (${what.join(' ') || 'unknown'})`,
            'stop that process, or use another home with --home',
          );
        }
        await rm(path, { force: true }); // stale: its process is gone
      }
    }
    throw new TidemarkError('IO', `cannot lock Tidemark home ${homeDir}`, 'another process keeps replacing the lock; stop other Tidemark processes and retry');
  }

  async release(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
