// `tidemark image export | verify | import` (docs/image-format.md): seed a remote secondary from
// removable media. The data files are written and read by this process; the volumes may be remote.

import type { Command } from 'commander';
import { resolveHomeDir } from '../home';
import {
  abandonExport,
  exportImage,
  importImage,
  problemText,
  splitBytesDefault,
  verifyImage,
  type ImageExportSummary,
  type ImageImportSummary,
  type ImageProgress,
  type ImageVerifyResult,
} from '../image';
import { formatDurationMs } from '../progress';
import { PairStore } from '../replication';
import { parseHashAlgorithm } from '../signature';
import { formatBytes, formatCount, parseSize } from '../size';
import { withAgentPool, type AgentPool } from './agents';
import { ExitStatus, StatusLine, bar, cancellable, printResult, type GlobalOptions, type Io } from './output';

const store = (io: Io, global: GlobalOptions) => new PairStore(resolveHomeDir(global.home, io.env));

const phaseNames: Record<ImageProgress['phase'], string> = { export: 'export', verify: 'verify', check: 'check ', import: 'import', finish: 'finish' };

function progressText(p: ImageProgress): string {
  const fraction = p.bytesTotal === 0 ? 1 : p.bytesDone / p.bytesTotal;
  const eta = p.etaMs === undefined ? '--' : formatDurationMs(p.etaMs);
  return (
    `${phaseNames[p.phase]} ${bar(fraction)} ${(fraction * 100).toFixed(0).padStart(3)}% ` +
    `${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)} at ${formatBytes(p.bytesPerSecond)}/s, ETA ${eta}`
  );
}

/** Runs long work with a progress line on a TTY, cancellable, agents reconnecting with backoff. */
async function withProgress<T>(
  io: Io,
  global: GlobalOptions,
  work: (pool: AgentPool, signal: AbortSignal, onProgress: (p: ImageProgress) => void) => Promise<T>,
): Promise<T> {
  const line = new StatusLine(io, global);
  const onProgress = (p: ImageProgress) => line.draw(() => progressText(p), p.bytesDone === p.bytesTotal);
  return withAgentPool(
    io,
    global,
    (pool) =>
      cancellable(async (signal) => {
        try {
          return await work(pool, signal, onProgress);
        } finally {
          line.finish();
        }
      }),
    'long',
  );
}

const warn = (io: Io) => (message: string) => void io.stderr.write(`tidemark: warning: ${message}\n`);

function exportText(s: ImageExportSummary): string {
  const what = s.pair ? `pair ${s.pair.name} (primary ${s.source})` : s.source;
  return [
    `exported ${what} to ${s.dir}${s.resumed ? ' (resumed)' : ''}: ${s.storedRegions} of ${s.regions} regions stored in ${s.files} data file${s.files === 1 ? '' : 's'} ` +
      `(${formatBytes(s.bytesStored)}) in ${formatDurationMs(s.durationMs)}`,
    `  image ${s.imageId}, point in time ${s.pointInTime}, signatures ${s.hash}`,
    `  manifest SHA-256 ${s.manifestSha256} — \`tidemark image verify\` prints it at the remote site; they must match`,
    '  everything is synced: safe to remove the media',
  ].join('\n');
}

function verifyText(r: ImageVerifyResult): string {
  const head = `image ${r.imageId ?? '(unreadable manifest)'} in ${r.dir}`;
  if (r.ok) {
    return [
      `${head}: OK — ${r.storedRegions} of ${r.regions} regions stored, ${formatBytes(r.bytesVerified)} verified in ${formatDurationMs(r.durationMs)}`,
      `  manifest SHA-256 ${r.manifestSha256} — compare it with what the export printed`,
    ].join('\n');
  }
  const count = `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`;
  return [`${head}: ${count}`, ...r.problems.map((p) => `  ${problemText(p)}`), '  copy the image again from the exporting site, or export it anew'].join('\n');
}

function importText(s: ImageImportSummary): string {
  const what = s.pair ? `${s.target} (the secondary of pair ${s.pair.name})` : s.target;
  return [
    `imported image ${s.imageId} into ${what}${s.resumed ? ' (resumed)' : ''}: ${formatCount(s.regionsTransferred, 'region')} written (${formatBytes(s.bytesTransferred)})` +
      `${s.regionsReclaimed > 0 ? `, ${s.regionsReclaimed} reclaimed` : ''} in ${formatDurationMs(s.durationMs)}`,
    `  the volume holds its source as of ${s.pointInTime}` +
      (s.pair ? `; run \`tidemark sync ${s.pair.name}\` to bring it up to date (only what changed since is sent)` : ''),
  ].join('\n');
}

export function registerImageCommands(program: Command, io: Io, globals: () => GlobalOptions): void {
  const image = program.command('image').description('seed images: export a snapshot to removable media, verify it, import it at the remote site');

  image
    .command('export')
    .description("snapshot a volume (a pair's primary) and store its data in DIR: split, sparse, checksummed; the same command resumes")
    .argument('<source>', 'a pair of this home (its primary is exported) or a VOLREF')
    .argument('<dir>', 'an empty directory on the media (created if missing)')
    .option('--split <size>', `largest data file (default ${splitBytesDefault / 2 ** 20}MiB: FAT32 files stay below 4 GiB)`)
    .option('--hash <algorithm>', "region signatures: xxh3-128 or sha256 (default: the pair's, else xxh3-128; sha256 where data must be authentic)")
    .option('--region-size <size>', 'region size for a volume this home has not registered (it gets registered)')
    .option('--restart', 'abandon an unfinished export in DIR and begin anew')
    .option('--abandon', 'abandon an unfinished export in DIR (its snapshot and files are deleted) and export nothing')
    .action(async (source: string, dir: string, options: { split?: string; hash?: string; regionSize?: string; restart?: boolean; abandon?: boolean }) => {
      const global = globals();
      if (options.abandon) return abandon(io, global, dir);
      const summary = await withProgress(io, global, (pool, signal, onProgress) =>
        exportImage({
          source,
          dir,
          resolver: pool,
          pairs: store(io, global),
          splitBytes: options.split === undefined ? undefined : parseSize(options.split, '--split'),
          hash: options.hash === undefined ? undefined : parseHashAlgorithm(options.hash),
          regionBytes: options.regionSize === undefined ? undefined : parseSize(options.regionSize, '--region-size'),
          restart: options.restart,
          signal,
          onProgress,
          onWarning: warn(io),
        }),
      );
      printResult(io, global, summary, () => exportText(summary));
    });

  image
    .command('verify')
    .description('check every file of an image (reads it all); exit 0 sound, 1 with a line per problem')
    .argument('<dir>', 'the image directory')
    .action(async (dir: string) => {
      const global = globals();
      const result = await withProgress(io, global, (_pool, signal, onProgress) => verifyImage(dir, { signal, onProgress }));
      printResult(io, global, result, () => verifyText(result));
      if (!result.ok) throw new ExitStatus(1);
    });

  image
    .command('import')
    .description("write an image into a volume (a pair's secondary, or a new volume created from it); checked whole first; the same command resumes")
    .argument('<dir>', 'the image directory')
    .argument('<volref>', 'the volume to import into: a path or [user@]host:/abs/path')
    .option('--restart', 'abandon an unfinished import on the volume and import this image from the start')
    .action(async (dir: string, volref: string, options: { restart?: boolean }) => {
      const global = globals();
      const summary = await withProgress(io, global, (pool, signal, onProgress) =>
        importImage({ dir, target: volref, resolver: pool, pairs: store(io, global), restart: options.restart, signal, onProgress }),
      );
      printResult(io, global, summary, () => importText(summary));
    });
}

async function abandon(io: Io, global: GlobalOptions, dir: string): Promise<void> {
  const abandoned = await withAgentPool(io, global, (pool) => abandonExport(dir, pool));
  printResult(io, global, { dir, abandoned: abandoned?.imageId ?? null }, () =>
    abandoned
      ? `abandoned the unfinished export of image ${abandoned.imageId} in ${dir}: its snapshot and files are deleted`
      : `${dir} holds no unfinished export`,
  );
}
