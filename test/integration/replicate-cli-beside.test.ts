// `replicate --once` and `pair wait --in-sync` beside a `replicate` running in another CLI process on a home no agent
// serves: each process opens the volumes itself, so the second cannot see the first's shipping
// (docs/home-layout.md) — it says so and how to fix it, instead of answering "in sync" from its
// own stale copy of the tracking. With `agent serve` running both go through one agent and the
// wait works.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pairLockHolder } from '../../src-engine/replication';
import { cliBundle, tidemark } from '../helpers/cli';
import { tempDir } from '../helpers/tmp';

describe('replicate --once and pair wait beside another CLI process', () => {
  it('are refused with the cause and the fix when no agent serves the home', async () => {
    const dir = await tempDir();
    const env = { TIDEMARK_HOME: join(dir, 'home') };
    const [a, b] = [join(dir, 'a.img'), join(dir, 'b.img')];
    execFileSync('truncate', ['-s', String(16 * 2 ** 20), a, b]);
    const run = (...args: string[]) => tidemark(args, env);
    expect(run('pair', 'create', 'p', '--primary', a, '--secondary', b, '--region-size', '1MiB').status).toBe(0);
    expect(run('sync', 'p').status).toBe(0);
    const shipper = spawn(process.execPath, [cliBundle, 'replicate', 'p'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let shipperErr = '';
    shipper.stderr.on('data', (chunk: Buffer) => (shipperErr += chunk.toString()));
    const exited = new Promise<number>((resolve) => shipper.once('close', (code) => resolve(code ?? -1)));
    try {
      // Asked of the pair's lock itself (a probing `replicate p` could take the pair first and ship).
      const pairDir = join(env.TIDEMARK_HOME, 'pairs', 'p');
      for (const deadlineMs = Date.now() + 30_000; (await pairLockHolder(pairDir))?.pid !== shipper.pid;) {
        if (Date.now() > deadlineMs) throw new Error(`the shipper (process ${shipper.pid}) never took the pair: ${shipperErr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const once = run('replicate', 'p', '--once');
      expect(once.status).toBe(1);
      expect(once.stderr.trim().split('\n')).toHaveLength(1);
      expect(once.stderr).toContain(`pair "p" is replicated by process ${shipper.pid}, whose progress this command cannot see: no agent serves this home`);
      expect(once.stderr).toContain('run `tidemark agent serve` before both commands so they share one agent');
      const wait = run('pair', 'wait', 'p', '--in-sync', '--timeout', '5s');
      expect(wait.status).toBe(1);
      expect(wait.stderr).toContain(`pair "p" is replicated by process ${shipper.pid}, whose progress this command cannot see`);
    } finally {
      shipper.kill('SIGTERM');
    }
    await exited;
    expect(shipperErr).toMatch(/replication of p stopped — run `tidemark replicate p` to resume/); // SIGTERM: a clean stop
  }, 90_000);
});
