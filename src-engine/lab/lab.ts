// The built-in lab: two sparse volumes in the home, paired as a local continuous pair, so
// everything can be tried with no server. `tidemark lab` and the console's first start.

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GiB, MiB, moosPredictDefault } from '../constants';
import type { EventLog } from '../events';
import { hashAlgorithmDefault } from '../signature';
import type { AgentApi } from '../agent';
import { createPair, type PairRecord, type PairStore } from '../replication';
import type { VolumeCatalog } from '../volume';

export const labPairName = 'lab';

export interface LabOptions {
  readonly volumeBytes: number;
  readonly regionBytes: number;
}

export const labDefaults: LabOptions = { volumeBytes: 1 * GiB, regionBytes: 1 * MiB };

export interface LabLayout {
  readonly dir: string;
  readonly primaryPath: string;
  readonly secondaryPath: string;
}

export function labLayout(homeDir: string): LabLayout {
  const dir = join(homeDir, 'lab');
  return { dir, primaryPath: join(dir, 'primary.img'), secondaryPath: join(dir, 'secondary.img') };
}

/** Creates the lab volumes and pair if they are missing; returns the pair and whether it was new. */
export async function ensureLab(
  homeDir: string,
  agent: AgentApi,
  pairs: PairStore,
  events: EventLog,
  options: LabOptions = labDefaults,
): Promise<{ record: PairRecord; created: boolean }> {
  const existing = await pairs.get(labPairName);
  if (existing) return { record: existing, created: false };
  const layout = labLayout(homeDir);
  await rm(layout.dir, { recursive: true, force: true }); // leftovers of an interrupted creation
  const primary = await agent.volumeCreate(layout.primaryPath, options.volumeBytes, options.regionBytes);
  const secondary = await agent.volumeCreate(layout.secondaryPath, options.volumeBytes, options.regionBytes);
  // Through createPair like any pair: both members recorded, the secondary locked.
  const local = { resolve: async (volref: string) => ({ volref, agent, path: volref, where: 'this machine' }) };
  const record = await createPair(pairs, local, {
    name: labPairName,
    primary: primary.path,
    secondary: secondary.path,
    mode: 'continuous',
    regionBytes: options.regionBytes,
    hash: hashAlgorithmDefault,
    predictRegions: moosPredictDefault,
    intervalMs: 60_000,
  });
  events.emit({
    severity: 'info',
    pair: labPairName,
    kind: 'lab.created',
    message: `lab created: two sparse volumes of ${options.volumeBytes / GiB} GiB in ${layout.dir}, paired as "${labPairName}"`,
  });
  return { record, created: true };
}

/** Removes the lab pair, its volumes and their registrations. */
export async function removeLab(homeDir: string, catalog: VolumeCatalog, pairs: PairStore): Promise<void> {
  const layout = labLayout(homeDir);
  if (await pairs.get(labPairName)) await pairs.delete(labPairName);
  for (const path of [layout.primaryPath, layout.secondaryPath]) await catalog.forget(path);
  await rm(layout.dir, { recursive: true, force: true });
}
