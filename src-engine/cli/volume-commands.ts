// `tidemark volume create | info | sign`.

import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseVolRef, formatVolRef, type AgentApi } from '../agent';
import { TidemarkError } from '../errors';
import { resolveHomeDir } from '../home';
import { formatBytes, parseSize } from '../size';
import { VolumeCatalog, type Volume } from '../volume';
import { SignaturePool, parseHashAlgorithm, signRegions, type HashAlgorithm } from '../signature';
import { printResult, ProgressBar, type GlobalOptions, type Io } from './output';
import { withAgentPool } from './agents';

/** A local path from a VOLREF, for commands that work on this machine only. */
function localPath(volref: string): string {
  const ref = parseVolRef(volref);
  if (ref.kind === 'ssh') {
    throw new TidemarkError('UNSUPPORTED', `remote volume ${formatVolRef(ref)}: this command works on local volumes only`, `run it on ${ref.host} itself`);
  }
  return resolve(ref.path);
}

/** Runs `work` with the agent that owns the volume a VOLREF names, local or over SSH. */
function withVolumeAgent<T>(io: Io, global: GlobalOptions, volref: string, work: (agent: AgentApi, path: string) => Promise<T>): Promise<T> {
  return withAgentPool(io, global, async (pool) => {
    const endpoint = await pool.resolve(volref);
    return work(endpoint.agent, endpoint.path);
  });
}

export function registerVolumeCommands(program: Command, io: Io, globals: () => GlobalOptions): void {
  const volume = program.command('volume').description('create and inspect volumes (files or block devices)');

  volume
    .command('create')
    .description('create a sparse file volume and register it in the home (realization is tracked)')
    .argument('<volref>', 'where to create the volume file (must not exist): a path or a remote VOLREF')
    .requiredOption('--size <size>', 'volume size, e.g. 4096, 64MiB, 1G, 1.5TiB')
    .option('--region-size <size>', 'region size: a power of two from 4KiB to 64MiB', '1MiB')
    .action(async (volref: string, options: { size: string; regionSize: string }) => {
      const global = globals();
      const sizeBytes = parseSize(options.size, '--size');
      const regionBytes = parseSize(options.regionSize, '--region-size');
      const record = await withVolumeAgent(io, global, volref, (agent, path) => agent.volumeCreate(path, sizeBytes, regionBytes));
      const regions = Math.ceil(sizeBytes / regionBytes);
      printResult(
        io,
        global,
        { path: record.path, volumeId: record.volumeId, sizeBytes, regionBytes, regions },
        () => `created ${record.path}: ${formatBytes(sizeBytes)} in ${regions} regions of ${formatBytes(regionBytes)} (volume ${record.volumeId})`,
      );
    });

  volume
    .command('info')
    .description('size, regions and realized regions of a volume (zero-scanned when not registered)')
    .argument('<volref>', 'a path, [user@]host:/abs/path or ssh://[user@]host[:port]/abs/path')
    .option('--region-size <size>', 'region size for a volume not registered in this home', '1MiB')
    .action(async (volref: string, options: { regionSize: string }) => {
      const global = globals();
      const regionBytes = parseSize(options.regionSize, '--region-size');
      const info = await withVolumeAgent(io, global, volref, (agent, path) => agent.volumeInfo(path, { regionBytes }));
      printResult(io, global, info, () =>
        [
          `path:      ${info.path}`,
          `kind:      ${info.kind}`,
          `volume id: ${info.volumeId ?? '(not registered in this home)'}`,
          `size:      ${formatBytes(info.sizeBytes)} (${info.sizeBytes} bytes)`,
          `regions:   ${info.regions} of ${formatBytes(info.regionBytes)}`,
          `realized:  ${info.realizedRegions} regions (${info.realizedSource === 'tracked' ? 'tracked by Tidemark' : 'by zero scan'})`,
        ].join('\n'),
      );
    });

  volume
    .command('sign')
    .description('region signatures of a volume (compare regions across sites, or with sha256sum/xxhsum)')
    .argument('<volref>', 'a local path')
    .option('--hash <algorithm>', 'xxh3-128 or sha256', 'xxh3-128')
    .option('--region-size <size>', 'region size for a volume not registered in this home', '1MiB')
    .action(async (volref: string, options: { hash: string; regionSize: string }) => {
      const global = globals();
      const algorithm = parseHashAlgorithm(options.hash);
      const regionBytes = parseSize(options.regionSize, '--region-size');
      const catalog = new VolumeCatalog(resolveHomeDir(global.home, io.env));
      const opened = await catalog.open(localPath(volref), { readOnly: true, regionBytes });
      try {
        await signVolume(io, global, opened.volume, algorithm);
      } finally {
        await opened.close();
      }
    });
}

async function signVolume(io: Io, global: GlobalOptions, volume: Volume, algorithm: HashAlgorithm): Promise<void> {
  const pool = await SignaturePool.start(algorithm);
  try {
    const bar = new ProgressBar(io, global, 'signing', volume.sizeBytes, 'bytes');
    const locate = (r: number) => ({ path: volume.path, ...volume.geometry.region(r) });
    const map = await signRegions(pool, volume.regionCount, locate, { onProgress: (p) => bar.update(p.bytesDone) });
    bar.finish();
    const signatures = Array.from({ length: volume.regionCount }, (_, r) => map.hex(r)!);
    printResult(io, global, { path: volume.path, hash: algorithm, regionBytes: volume.regionBytes, regions: volume.regionCount, signatures }, () =>
      signatures.map((hex, r) => `${r}\t${hex}`).join('\n'),
    );
  } finally {
    await pool.dispose();
  }
}
