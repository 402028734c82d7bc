// The single-file agent bundle runs from a directory with no node_modules (as it will on a
// remote host), contains no native modules, and its signature workers start from itself.
import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentBundle, cliBundle, runBundle } from '../helpers/cli';
import { tempDir } from '../helpers/tmp';

describe('bundles', () => {
  it('contain no native module loads', async () => {
    for (const bundle of [agentBundle, cliBundle]) {
      const text = await readFile(bundle, 'utf8');
      expect(text).not.toMatch(/require\([^)]*\.node["']\)/);
      expect(text).not.toMatch(/\bbindings\(/);
      expect(text.startsWith('#!/usr/bin/env node')).toBe(true);
    }
  });

  it('the agent runs alone from an empty directory', async () => {
    const dir = await tempDir('tidemark-host-');
    const copy = join(dir, 'agent-copy.cjs');
    await copyFile(agentBundle, copy);
    const version = runBundle(copy, ['--version'], {}, dir);
    expect(version.status).toBe(0);
    const created = runBundle(copy, ['--home', join(dir, 'home'), '--json', 'volume', 'create', join(dir, 'v.img'), '--size', '4MiB'], {}, dir);
    expect(created.status, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ regions: 4 });
    // Signature workers start from the bundle's inlined worker code, not from node_modules.
    const signed = runBundle(copy, ['--home', join(dir, 'home'), '--json', 'volume', 'sign', join(dir, 'v.img')], {}, dir);
    expect(signed.status, signed.stderr).toBe(0);
    const { signatures } = JSON.parse(signed.stdout) as { signatures: string[] };
    // xxhsum -H2 of 1 MiB of zeros (computed with xxhsum, the independent reference).
    expect(signatures).toEqual(Array(4).fill('b6ef17a3448492b6918780b90550bf34'));
  });
});
