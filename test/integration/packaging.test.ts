// electron-builder.yml is checked against electron-builder's own schema (packaging itself
// does not run here), and names the agent bundle as an extra resource.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { validateConfiguration } from 'app-builder-lib/out/util/config/config.js';
import { DebugLogger } from 'builder-util';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli';

async function loadConfig(): Promise<Record<string, unknown>> {
  return yaml.load(await readFile(join(repoRoot, 'electron-builder.yml'), 'utf8')) as Record<string, unknown>;
}

describe('electron-builder config', () => {
  it('passes electron-builder schema validation', async () => {
    await expect(validateConfiguration((await loadConfig()) as never, new DebugLogger(false))).resolves.toBeUndefined();
  });

  it('the validator does refuse a broken config (so the check above can fail)', async () => {
    await expect(validateConfiguration({ ...(await loadConfig()), linux: { notAnOption: true } } as never, new DebugLogger(false))).rejects.toThrow(
      /Invalid configuration/,
    );
  });

  it('targets AppImage, deb, NSIS and dmg, and ships the agent bundle', async () => {
    const config = (await loadConfig()) as {
      linux: { target: string[] };
      win: { target: string[] };
      mac: { target: string[] };
      extraResources: { from: string }[];
    };
    expect(config.linux.target).toEqual(['AppImage', 'deb']);
    expect(config.win.target).toEqual(['nsis']);
    expect(config.mac.target).toEqual(['dmg']);
    expect(config.extraResources.map((r) => r.from)).toContain('dist/tidemark-agent.cjs');
  });
});
