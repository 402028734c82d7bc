// `tidemark map` through the built CLI on a real pair whose primary's agent (serving the home's
// socket from this process) tracked seeded writes: the --json contract unchanged, --png read
// back by an independent decoder, --export then --open, and one-line errors for usage mistakes
// and a damaged file.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentDaemon, type AgentDaemon } from '../../src-engine/agent';
import { heatmapBackground, mapColours } from '../../src-engine/maps';
import { runSync } from '../../src-engine/replication';
import { tidemarkAsync } from '../helpers/cli';
import { makeLocalPair, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { tempDir } from '../helpers/tmp';
import { decodePng } from '../unit/png-decode';

const regionBytes = 64 * 1024;
const regionCount = 256;
const sizeBytes = regionCount * regionBytes;
const seed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);
const daemons: AgentDaemon[] = [];

afterEach(async () => {
  for (const daemon of daemons.splice(0)) await daemon.close();
});

function pick(random: () => number, count: number): number[] {
  const set = new Set<number>();
  while (set.size < count) set.add(Math.floor(random() * regionCount));
  return [...set].sort((a, b) => a - b);
}

function runsOf(regions: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const r of regions) {
    const last = runs.at(-1);
    if (last && last[0] + last[1] === r) last[1] += 1;
    else runs.push([r, 1]);
  }
  return runs;
}

/** A synced pair with `written` regions written since, tracked by the agent serving the home. */
async function trackedPair() {
  const dir = await tempDir();
  const pair = await makeLocalPair(dir, { sizeBytes, regionBytes });
  await runSync({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, method: 'auto' });
  const written = pick(seededRandom(seed), 40);
  await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, written, seed);
  daemons.push(await startAgentDaemon(join(dir, 'home'), undefined, pair.agent));
  const cli = (args: string[]) => tidemarkAsync(['--home', join(dir, 'home'), ...args]);
  return { dir, pair, written, cli };
}

async function ok(run: Promise<{ status: number; stdout: string; stderr: string }>): Promise<string> {
  const result = await run;
  expect(result.status, result.stderr).toBe(0);
  return result.stdout;
}

function oneLineError(result: { status: number; stderr: string }, status: number, pattern: RegExp): void {
  expect(result.status).toBe(status);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^tidemark: .+ — .+/);
  expect(lines[0]).toMatch(pattern);
}

describe('tidemark map', () => {
  it(`prints a tracked map as before, writes its heatmap and exports it; --open reads it back (seed ${seed})`, async () => {
    const { dir, pair, written, cli } = await trackedPair();
    console.log(`[map-cli] seed ${seed}: ${written.length} regions written`);
    const shown = JSON.parse(await ok(cli(['--json', 'map', 'p', '--which', 'oos']))) as Record<string, unknown>;
    expect(Object.keys(shown)).toEqual(['pair', 'which', 'regions', 'regionBytes', 'setCount', 'bytes', 'runs', 'recoveredRegions']);
    expect(shown).toEqual({
      pair: 'p',
      which: 'oos',
      regions: regionCount,
      regionBytes,
      setCount: written.length,
      bytes: written.length * regionBytes,
      runs: runsOf(written),
      recoveredRegions: 0,
    });
    const text = await ok(cli(['map', 'p', '--which', 'oos']));
    expect(text.split('\n')[0]).toBe(
      `oos of p: ${written.length} of ${regionCount} regions set (${(written.length * 64) / 1024} MiB) in ${runsOf(written).length} runs`,
    );

    const [png, exported] = [join(dir, 'oos.png'), join(dir, 'oos.tmmap')];
    const withFiles = JSON.parse(await ok(cli(['--json', 'map', 'p', '--which', 'oos', '--png', png, '--export', exported]))) as Record<string, unknown>;
    expect(withFiles).toEqual({ ...shown, png, export: exported });
    const decoded = decodePng(await readFile(png));
    expect([decoded.widthPx, decoded.heightPx]).toEqual([512, 2]); // 256 cells of one region, 2 px each
    const writtenSet = new Set(written);
    for (let r = 0; r < regionCount; r++)
      expect(decoded.pixel(2 * r + 1, 1), `region ${r}`).toEqual([...(writtenSet.has(r) ? mapColours.oos! : heatmapBackground)]);

    const opened = JSON.parse(await ok(cli(['--json', 'map', '--open', exported]))) as Record<string, unknown>;
    expect(opened).toMatchObject({ file: exported, pair: 'p', pairId: pair.record.pairId, regions: regionCount, regionBytes, volumeBytes: sizeBytes });
    expect(opened.maps).toEqual([
      {
        name: 'oos',
        setCount: written.length,
        bytes: written.length * regionBytes,
        runCount: runsOf(written).length,
        largestRun: runsOf(written).reduce((a, b) => (b[1] > a[1] ? b : a)),
        runs: runsOf(written),
      },
    ]);
    const openedText = await ok(cli(['map', '--open', exported, '--which', 'oos', '--png', join(dir, 'again.png')]));
    expect(openedText).toMatch(new RegExp(`^oos: ${written.length} of ${regionCount} regions set`, 'm'));
    expect((await readFile(join(dir, 'again.png'))).equals(await readFile(png))).toBe(true); // the same map, the same heatmap
  });

  it('exports MOOS (a superset of what was written) and refuses mistakes with one line', async () => {
    const { dir, written, cli } = await trackedPair();
    const exported = join(dir, 'moos.tmmap');
    const moos = JSON.parse(await ok(cli(['--json', 'map', 'p', '--which', 'moos', '--export', exported]))) as { setCount: number; runs: [number, number][] };
    expect(moos.setCount).toBeGreaterThanOrEqual(written.length);
    const opened = JSON.parse(await ok(cli(['--json', 'map', '--open', exported, '--which', 'moos']))) as { maps: { setCount: number; runs: unknown }[] };
    expect(opened.maps[0]).toMatchObject({ setCount: moos.setCount, runs: moos.runs });

    oneLineError(await cli(['map', 'p']), 2, /map NAME needs --which/);
    oneLineError(await cli(['map', 'p', '--which', 'bogus']), 2, /unknown map "bogus" — use one of oos, moos, in-flight/);
    oneLineError(await cli(['map']), 2, /map needs a pair NAME or --open FILE/);
    oneLineError(await cli(['map', 'p', '--open', exported]), 2, /not both/);
    oneLineError(await cli(['map', '--open', exported, '--which', 'oos']), 2, new RegExp(`map file ${exported} holds no map "oos" — use one of moos`));

    const bytes = await readFile(exported);
    bytes[bytes.length - 40]! ^= 0x01;
    const damaged = join(dir, 'damaged.tmmap');
    await writeFile(damaged, bytes);
    oneLineError(await cli(['map', '--open', damaged]), 1, new RegExp(`map file ${damaged} is damaged: checksum mismatch`));
    oneLineError(await cli(['map', '--open', join(dir, 'missing.tmmap')]), 1, /missing\.tmmap: no such file/);
  });
});
