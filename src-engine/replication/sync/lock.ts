// One sync (or pair delete) per pair at a time, across processes: the holder binds a socket
// in Linux's abstract namespace named after the pair's directory. The kernel frees it when the
// holder exits, however it exits, so a crashed sync never leaves a stale lock to clean up.
// Rejected: a lock file (stale after a crash, needs a liveness check) and a socket file in the
// pair directory (sun_path holds 107 bytes; homes under deep temporary directories exceed it).

import { createHash } from 'node:crypto';
import { connect, createServer, type Server } from 'node:net';
import { resolve } from 'node:path';
import { TidemarkError, errnoCode } from '../../errors';

export interface PairLock {
  release(): Promise<void>;
}

export function pairLockName(pairDir: string): string {
  return `\0tidemark-pair-${createHash('sha256').update(resolve(pairDir)).digest('hex').slice(0, 40)}`;
}

/** Whether some process holds the pair's lock: asks by connecting, never by binding (which could make a starting sync fail with BUSY). */
export function pairLockHeld(pairDir: string): Promise<boolean> {
  return new Promise((resolveHeld) => {
    const socket = connect(pairLockName(pairDir));
    socket.once('connect', () => {
      socket.destroy();
      resolveHeld(true);
    });
    socket.once('error', () => resolveHeld(false));
  });
}

/** Takes the pair's lock, or fails with BUSY naming what holds it. */
export async function acquirePairLock(pairDir: string, pairName: string, what: string): Promise<PairLock> {
  const server: Server = createServer((socket) => socket.end(`${process.pid} ${what}\n`));
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (error) => {
      if (errnoCode(error) === 'EADDRINUSE') {
        reject(
          new TidemarkError(
            'BUSY',
            `pair "${pairName}" is busy: another process is syncing, seeding or deleting it`,
            'wait for it to finish, or stop it (Ctrl-C)',
          ),
        );
      } else reject(error);
    });
    server.listen(pairLockName(pairDir), () => resolveListen());
  });
  server.unref();
  return { release: () => new Promise<void>((done) => server.close(() => done())) };
}
