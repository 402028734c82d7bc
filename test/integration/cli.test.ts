// The `tidemark` CLI contract (DESIGN.md): exit codes 0/1/2, one-line errors on stderr with
// no stack trace, --json documents, --home and TIDEMARK_HOME.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp';
import { tidemark } from '../helpers/cli';

function expectOneLineError(stderr: string, pattern: RegExp) {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^tidemark: /);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('tidemark CLI', () => {
  it('prints help and version', () => {
    const help = tidemark(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Usage: tidemark/);
    expect(help.stdout).toMatch(/volume/);
    const version = tidemark(['--version']);
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(tidemark(['volume', 'create', '--help']).stdout).toMatch(/--size <size>/);
  });

  it('volume create + info, human and --json, with --home', async () => {
    const dir = await tempDir();
    const home = join(dir, 'home');
    const path = join(dir, 'a.img');
    const created = tidemark(['--home', home, 'volume', 'create', path, '--size', '64MiB', '--region-size', '256KiB']);
    expect(created.status).toBe(0);
    expect(created.stdout).toMatch(/created .*a\.img: 64 MiB in 256 regions of 256 KiB/);
    const info = tidemark(['--home', home, '--json', 'volume', 'info', path]);
    expect(info.status).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({
      sizeBytes: 64 * 2 ** 20,
      regionBytes: 256 * 1024,
      regions: 256,
      realizedRegions: 0,
      realizedSource: 'tracked',
      kind: 'file',
    });
    const text = tidemark(['--home', home, 'volume', 'info', path]);
    expect(text.stdout).toMatch(/realized: +0 regions \(tracked by Tidemark\)/);
  });

  it('TIDEMARK_HOME is the default home', async () => {
    const dir = await tempDir();
    const home = join(dir, 'envhome');
    const created = tidemark(['volume', 'create', join(dir, 'b.img'), '--size', '1M'], { TIDEMARK_HOME: home });
    expect(created.status).toBe(0);
    expect(existsSync(join(home, 'volumes'))).toBe(true);
  });

  it('usage errors exit 2 with one line; failures exit 1 with one line', async () => {
    const dir = await tempDir();
    const home = join(dir, 'home');
    const cases: [string[], number, RegExp][] = [
      [['volume', 'create', join(dir, 'c.img'), '--size', '12 parsecs'], 2, /invalid --size "12 parsecs".*64MiB/],
      [['volume', 'create', join(dir, 'c.img'), '--size', '1G', '--region-size', '3KiB'], 2, /invalid region size.*power of two/],
      [['volume', 'create', join(dir, 'c.img')], 2, /required option '--size <size>' not specified/],
      [['volume', 'frobnicate'], 2, /unknown command 'frobnicate'/],
      [['volume'], 2, /`tidemark volume` needs a subcommand: create, info or sign — see `tidemark volume --help`/],
      [[], 2, /`tidemark` needs a command: volume/],
      [['volume', 'create', join(dir, 'c.img'), '--size', '8PiB'], 2, /invalid --size "8PiB": too large, the limit is 9007199254740991 bytes/],
      [['volume', 'create', join(dir, 'c.img'), '--size', '99999999999999999999'], 2, /too large/],
      [['volume', 'create', join(dir, 'c.img'), '--size', '1.00000000000000001KiB'], 2, /not a whole number of bytes/],
      [
        ['volume', 'create', join(dir, 'c.img'), '--size', '9TiB', '--region-size', '4KiB'],
        2,
        /more than the 2147483647 .*use a larger --region-size, at least 8KiB/,
      ],
      [['--bogus'], 2, /unknown option '--bogus'/],
      [['volume', 'info', join(dir, 'missing.img')], 1, /no such file or directory — check the path/],
      [['volume', 'info', dir], 1, /is a directory — give the path of a regular file or a block device/],
    ];
    for (const [args, status, pattern] of cases) {
      const result = tidemark(['--home', home, ...args]);
      expect(result.status, args.join(' ')).toBe(status);
      expectOneLineError(result.stderr, pattern);
    }
    expect(existsSync(join(dir, 'c.img'))).toBe(false); // refused before anything was created
  });

  it('refuses to overwrite an existing file and leaves it untouched', async () => {
    const dir = await tempDir();
    const path = join(dir, 'd.img');
    expect(tidemark(['--home', join(dir, 'h'), 'volume', 'create', path, '--size', '1M']).status).toBe(0);
    const again = tidemark(['--home', join(dir, 'h'), 'volume', 'create', path, '--size', '2M']);
    expect(again.status).toBe(1);
    expectOneLineError(again.stderr, /already there/);
    expect(JSON.parse(tidemark(['--home', join(dir, 'h'), '--json', 'volume', 'info', path]).stdout).sizeBytes).toBe(2 ** 20);
  });

  it('TIDEMARK_DEBUG=1 adds the stack after the one line', async () => {
    const dir = await tempDir();
    const result = tidemark(['volume', 'info', join(dir, 'nope.img')], { TIDEMARK_DEBUG: '1' });
    expect(result.status).toBe(1);
    expect(result.stderr.split('\n')[0]).toMatch(/^tidemark: cannot open volume/);
    expect(result.stderr).toMatch(/\n\s+at /);
  });
});
