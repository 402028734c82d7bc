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

export interface PairLockHolder {
  readonly pid: number;
  /** What it does: 'sync', 'replicate', 'delete', … */
  readonly what: string;
}

/** How long a holder has to answer: one that accepted and says nothing (stopped with SIGSTOP) is 'unknown'. */
const holderAnswerMs = 2_000;

/** Who holds the pair's lock (it answers with its pid and task), or null. */
export function pairLockHolder(pairDir: string): Promise<PairLockHolder | null> {
  return new Promise((resolveHolder) => {
    const socket = connect(pairLockName(pairDir));
    socket.setTimeout(holderAnswerMs, () => {
      socket.destroy();
      resolveHolder({ pid: 0, what: 'unknown' });
    });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk.slice(0, 256);
    });
    socket.once('end', () => {
      const match = /^(\d+) (.{1,64})\n/.exec(text);
      resolveHolder(match ? { pid: Number(match[1]), what: match[2]! } : { pid: 0, what: 'unknown' });
    });
    socket.once('error', () => resolveHolder(null));
  });
}

/** Takes the pair's lock, or fails with BUSY naming what holds it. */
export async function acquirePairLock(pairDir: string, pairName: string, what: string): Promise<PairLock> {
  const server: Server = createServer((socket) => socket.end(`${process.pid} ${what}\n`));
  const bound = await new Promise<boolean>((resolveListen, reject) => {
    server.once('error', (error) => {
      if (errnoCode(error) === 'EADDRINUSE') resolveListen(false);
      else reject(error);
    });
    server.listen(pairLockName(pairDir), () => resolveListen(true));
  });
  if (!bound) {
    const holder = await pairLockHolder(pairDir);
    const doing =
      holder && holder.pid > 0
        ? `process ${holder.pid} is running ${holder.what} on it`
        : holder
          ? 'a process holds its lock and does not answer (stopped?)'
          : 'another process is syncing, replicating, seeding or deleting it';
    throw new TidemarkError('BUSY', `pair "${pairName}" is busy: ${doing}`, 'wait for it to finish, or stop it (Ctrl-C)');
  }
  server.unref();
  return { release: () => new Promise<void>((done) => server.close(() => done())) };
}
