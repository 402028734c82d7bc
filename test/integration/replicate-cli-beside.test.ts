// CLI commands beside one another on a home no agent daemon serves (docs/home-layout.md): the
// first command owns the home while it runs (its in-process agent serves agent.sock), so a
// later one goes through it and sees the same tracking. Before, each opened the volumes itself:
// writes served by a `serve` started after a `replicate` were tracked where the shipper could
// not see them, and `replicate --once` had to refuse beside it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pairLockHolder } from '../../src-engine/replication';
import { cliBundle, tidemark } from '../helpers/cli';
import { tempDir } from '../helpers/tmp';
import { runClientOk } from './nbd-clients';

const MiB = 1024 * 1024;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A CLI process in the background, with what it wrote on stderr so far. */
function background(env: NodeJS.ProcessEnv, args: string[]): { child: ChildProcess; stderr: () => string; exited: Promise<number> } {
  const child = spawn(process.execPath, [cliBundle, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? -1)));
  return { child, stderr: () => stderr, exited };
}

async function until(what: string, ready: () => boolean | Promise<boolean>, log: () => string): Promise<void> {
  for (const deadlineMs = Date.now() + 30_000; !(await ready());) {
    if (Date.now() > deadlineMs) throw new Error(`${what} never happened: ${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('CLI commands beside a running `replicate` on a home no agent daemon serves', () => {
  it('go through its agent: writes served by a later `serve` are shipped by it, and `--once` and `pair wait` see its progress', async () => {
    const dir = await tempDir();
    const env = { TIDEMARK_HOME: join(dir, 'home') };
    const [a, b] = [join(dir, 'a.img'), join(dir, 'b.img')];
    execFileSync('truncate', ['-s', String(16 * MiB), a, b]);
    const run = (...args: string[]) => tidemark(args, env);
    expect(run('pair', 'create', 'p', '--primary', a, '--secondary', b, '--region-size', '1MiB').status).toBe(0);
    expect(run('sync', 'p').status).toBe(0);
    const shipper = background(env, ['replicate', 'p']);
    let served: ReturnType<typeof background> | undefined;
    try {
      // Asked of the pair's lock itself (a probing `replicate p` could take the pair first and ship).
      const pairDir = join(env.TIDEMARK_HOME, 'pairs', 'p');
      await until('the shipper taking the pair', async () => (await pairLockHolder(pairDir))?.pid === shipper.child.pid, shipper.stderr);
      const port = await freePort();
      served = background(env, ['serve', 'p', '--nbd', `127.0.0.1:${port}`, '--no-replicate']);
      await until('serve listening', () => /serving primary/.test(served!.stderr()), served.stderr);
      expect(served.stderr()).toContain(`using the running agent of ${env.TIDEMARK_HOME} (pid ${shipper.child.pid}, tidemark CLI)`);
      await runClientOk('qemu-io', [
        '-f',
        'raw',
        `nbd://127.0.0.1:${port}/p`,
        '-c',
        'write -P 0x5a 0 1M',
        '-c',
        'write -P 0xa5 5M 8k',
        '-c',
        'write -P 0x33 15M 1M',
      ]);
      const once = run('replicate', 'p', '--once');
      expect(once.stderr).toBe('');
      expect(once.status).toBe(0);
      const wait = run('pair', 'wait', 'p', '--in-sync', '--timeout', '30s');
      expect(wait.status).toBe(0);
      served.child.kill('SIGTERM');
      expect(await served.exited).toBe(0);
      expect(Buffer.compare(await readFile(a), await readFile(b))).toBe(0);
      expect((await readFile(b)).subarray(5 * MiB, 5 * MiB + 8192).every((byte) => byte === 0xa5)).toBe(true);
    } finally {
      served?.child.kill('SIGTERM');
      shipper.child.kill('SIGTERM');
    }
    await shipper.exited;
    expect(shipper.stderr()).not.toContain('go through this process'); // serve had gone: nothing to wait for
    expect(shipper.stderr()).toMatch(/replication of p stopped — run `tidemark replicate p` to resume/); // SIGTERM: a clean stop
  }, 90_000);
});
