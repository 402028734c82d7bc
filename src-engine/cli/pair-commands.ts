// `tidemark pair create | list | show | delete`, `sync` and `verify` (docs/sync.md).

import type { Command } from 'commander';
import { parseVolRef } from '../agent';
import { TidemarkError } from '../errors';
import { formatDurationMs } from '../progress';
import {
  createPair,
  deletePair,
  pairStatus,
  reconciliationText,
  runSync,
  syncMethods,
  verifyPair,
  type PairRecord,
  type PairStatus,
  type SyncMethodChoice,
  type SyncProgress,
  type SyncSummary,
  linkAfterCreate,
  unlinkPair,
} from '../replication';
import { parseHashAlgorithm } from '../signature';
import { formatBytes, formatCount, parseDurationMs, parseRate, parseSize } from '../size';
import { pairEndpointsOf, pairStoreOf, withAgentPool } from './agents';
import { linkText, registerLinkCommand } from './link-command';
import { ExitStatus, StatusLine, bar, cancellable, printResult, type GlobalOptions, type Io } from './output';

const store = pairStoreOf;
const endpointsOf = pairEndpointsOf;

function parseMethod(text: string): SyncMethodChoice {
  const methods: readonly string[] = ['auto', ...syncMethods];
  if (!methods.includes(text)) throw new TidemarkError('USAGE', `unknown sync method "${text}"`, `use one of ${methods.join(', ')}`);
  return text as SyncMethodChoice;
}

function parseMode(text: string): PairRecord['mode'] {
  if (text !== 'continuous' && text !== 'periodic') throw new TidemarkError('USAGE', `unknown mode "${text}"`, 'use continuous or periodic');
  return text;
}

function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new TidemarkError('USAGE', `invalid ${what} "${text}"`, 'write a whole number');
  return Number(text);
}

/** The seed image last exported from the pair, which a resync after its import starts from. */
function referenceLines(record: PairStatus['record']): string[] {
  const reference = record.reference;
  if (!reference) return [];
  return [`  reference: image ${reference.imageId} of generation ${reference.generation}, point in time ${reference.pointInTime}`];
}

/** An unfinished image import on the secondary: sync refuses the pair until it is finished. */
function importLines(status: PairStatus): string[] {
  const marker = status.secondary.importing;
  if (!marker) return [];
  return [
    `  import incomplete: image ${marker.imageId}, ${marker.nextRegion} of ${status.regions} regions — ` +
      `run \`tidemark image import DIR ${status.secondary.volref}\` again with that image's directory to finish`,
  ];
}

function statusText(status: PairStatus): string {
  const { record } = status;
  const side = (name: string, s: PairStatus['primary']) =>
    s.reachable
      ? `  ${name}: ${s.volref} (${s.member ? `member, generation ${s.member.generation}` : 'NOT a member — its agent has no record of the pair'}${
          s.member?.lcsSnapshotId ? `, last consistent snapshot ${s.member.lcsSnapshotId}` : ''
        })`
      : `  ${name}: ${s.volref} (unreachable: ${s.error})`;
  const last = record.lastSync;
  return [
    `pair ${record.name} (${record.mode}, ${status.regions} regions of ${formatBytes(record.regionBytes)}, ${record.hash}, generation ${record.generation})`,
    `  id:        ${record.pairId}`,
    side('primary  ', status.primary),
    side('secondary', status.secondary),
    `  state:     ${status.state}${status.pendingRegions !== null ? `, ${formatCount(status.pendingRegions, 'region')} written since the secondary's point in time` : ''}`,
    `  path:      ${pathText(status)}`,
    `  roles:     ${reconciliationText(status.roles)}`,
    ...staleRecordLines(status),
    last ? `  last sync: ${last.method}, finished ${last.finishedAt}, point in time ${last.pointInTime}` : '  last sync: never',
    ...referenceLines(record),
    ...importLines(status),
    ...(status.syncInProgress
      ? [
          `  unfinished sync: ${status.syncInProgress.method}, round ${status.syncInProgress.round + 1}, ${status.syncInProgress.phase}${
            status.syncInProgress.phase === 'pass' ? ` at region ${status.syncInProgress.nextRegion}` : ''
          } — run \`tidemark sync ${record.name}\` to resume`,
        ]
      : []),
    ...(status.migrateInterrupted
      ? [
          `  unfinished migrate to ${status.migrateInterrupted.newPrimary}, started ${status.migrateInterrupted.startedAt}: writes stay paused — run \`tidemark migrate ${record.name}\` to finish it`,
        ]
      : []),
    ...cycleLines(status),
    ...timelineLines(status),
  ].join('\n');
}

/** The agents agree on a primary this record does not name: another console decided since (or this one's update was lost). */
function staleRecordLines(status: PairStatus): string[] {
  const r = status.roles;
  if (r.verdict !== 'in-step' && r.verdict !== 'behind') return [];
  const agreed = r.primary;
  if (agreed === status.record.primary.volref) return [];
  return [
    `  WARNING:   this record names ${status.record.primary.volref} as the primary (generation ${status.record.generation}), but the members' histories say ${agreed} (generation ${r.generation}): a role change was made elsewhere — do not fail over or fail back from this record`,
  ];
}

/** A periodic pair's last applied cycles (the console's timeline has them too). */
function cycleLines(status: PairStatus): string[] {
  if (status.cycles.length === 0) return [];
  return [
    `  cycles:    the last ${status.cycles.length} applied`,
    ...status.cycles.map(
      (c) =>
        `    ${new Date(c.finishedAtMs).toISOString()}  ${c.group ? `group ${c.group} ` : ''}cycle ${c.cycle}: ${c.regionsTransferred} regions (${formatBytes(c.bytesTransferred)}) in ${formatDurationMs(c.durationMs)}, point in time ${c.pointInTime} (by ${c.by})`,
    ),
  ];
}

/** Role changes recorded by both members, oldest first (docs/failover.md "Generations and history"). */
function timelineLines(status: PairStatus): string[] {
  const events = [
    ...(status.primary.member?.history ?? []).map((e) => ({ ...e, volref: status.primary.volref })),
    ...(status.secondary.member?.history ?? []).map((e) => ({ ...e, volref: status.secondary.volref })),
  ].sort((a, b) => a.atMs - b.atMs || a.generation - b.generation);
  if (events.length === 0) return [];
  return [
    '  timeline:',
    ...events.map((e) => `    ${new Date(e.atMs).toISOString()}  generation ${e.generation}  ${e.event}: ${e.volref} → ${e.role} (by ${e.by})`),
  ];
}

const wantsRemotePrimary = (record: PairRecord) => parseVolRef(record.primary.volref).kind !== 'local';

function pathText(status: PairStatus): string {
  if (status.shipPath === null) return 'unknown (the primary is unreachable)';
  if (status.shipPath === 'local') return 'local: the primary is on this machine, regions go from it to the secondary';
  if (status.shipPath === 'relayed') return 'relayed through this machine (`tidemark pair link` makes it direct)';
  const peer = status.peer!;
  return `direct, the primary's agent → ${peer.target} with the pair's key${peer.lastError ? ` (last error: ${peer.lastError})` : ''}`;
}

export function registerPairCommands(program: Command, io: Io, globals: () => GlobalOptions): void {
  const pair = program.command('pair').description('pair a primary volume with a secondary (local or over SSH)');

  pair
    .command('create')
    .description('pair two volumes: both agents record it, the secondary is locked read-only until failover')
    .argument('<name>', 'the pair name: 1 to 64 letters, digits, ".", "_" or "-"')
    .requiredOption('--primary <volref>', 'the volume applications write to')
    .requiredOption('--secondary <volref>', 'the copy (same size or larger)')
    .option('--region-size <size>', "region size (default: the primary's registered one, else 1MiB)")
    .option('--mode <mode>', 'continuous or periodic', 'continuous')
    .option('--interval <duration>', 'periodic cycle interval', '60s')
    .option('--hash <algorithm>', 'region signatures: xxh3-128 or sha256', 'xxh3-128')
    .option('--predict <n>', 'MOOS predictive superset: regions marked ahead of each write', '16')
    .action(
      async (
        name: string,
        options: { primary: string; secondary: string; regionSize?: string; mode: string; interval: string; hash: string; predict: string },
      ) => {
        const global = globals();
        const { record, link } = await withAgentPool(io, global, async (pool) => {
          const created = await createPair(store(io, global), pool, {
            name,
            primary: options.primary,
            secondary: options.secondary,
            regionBytes: options.regionSize === undefined ? undefined : parseSize(options.regionSize, '--region-size'),
            mode: parseMode(options.mode),
            intervalMs: parseDurationMs(options.interval, '--interval'),
            hash: parseHashAlgorithm(options.hash),
            predictRegions: parseCount(options.predict, '--predict'),
          });
          return { record: created, link: await linkAfterCreate(created, await endpointsOf(pool, created)) };
        });
        if (link.warning) io.stderr.write(`warning: ${link.warning}\n`);
        printResult(io, global, { ...record, shipPath: link.linked ? 'direct' : wantsRemotePrimary(record) ? 'relayed' : 'local' }, () =>
          [
            `created pair ${record.name}: ${record.primary.volref} → ${record.secondary.volref} (${record.mode}, regions of ${formatBytes(record.regionBytes)}); ` +
              `the secondary is read-only until failover — run \`tidemark sync ${record.name}\` next`,
            ...(link.linked ? [linkText(link.linked)] : []),
          ].join('\n'),
        );
      },
    );

  pair
    .command('list')
    .description('the pairs this home orchestrates')
    .action(async () => {
      const global = globals();
      const records = await store(io, global).list();
      printResult(io, global, { pairs: records }, () =>
        records.length === 0
          ? 'no pairs — create one with `tidemark pair create NAME --primary VOLREF --secondary VOLREF`'
          : records
              .map(
                (r) => `${r.name}\t${r.mode}\t${r.primary.volref} → ${r.secondary.volref}\t${r.lastSync ? `synced ${r.lastSync.finishedAt}` : 'never synced'}`,
              )
              .join('\n'),
      );
    });

  pair
    .command('show')
    .description("a pair's record, both members, its state and any unfinished sync")
    .argument('<name>')
    .action(async (name: string) => {
      const global = globals();
      const status = await withAgentPool(io, global, (pool) => pairStatus(store(io, global), pool, name));
      printResult(io, global, status, () => statusText(status));
    });

  pair
    .command('delete')
    .description('remove the pair from both agents and this home; the secondary is unlocked, no data is touched')
    .argument('<name>')
    .option('--force', 'delete here even when a side cannot be reached (prints what to run there)')
    .action(async (name: string, options: { force?: boolean }) => {
      const global = globals();
      const result = await withAgentPool(io, global, async (pool) => {
        const record = await store(io, global).require(name);
        // The pair's key goes first (best effort: an unreachable side keeps a key that opens nothing once the pair is gone).
        await unlinkPair(await endpointsOf(pool, record), record.pairId).catch(() => undefined);
        return deletePair(store(io, global), pool, name, { force: options.force });
      });
      printResult(io, global, { pair: name, deleted: true, leftBehind: result.leftBehind }, () =>
        [
          `deleted pair ${name}; the volumes' data is untouched and the secondary takes writes again`,
          ...result.leftBehind.map(
            (side) => `  not reached: ${side} — its member record stays there until that host is reachable and the pair is deleted again`,
          ),
        ].join('\n'),
      );
    });

  registerLinkCommand(pair, io, globals);
  registerSyncCommands(program, io, globals);
}

function progressText(p: SyncProgress): string {
  if (p.phase === 'finish') return `sync ${p.pair} ${p.method} r${p.round + 1} finishing ${bar(1)} 100%, sent ${formatBytes(p.bytesTransferred)}`;
  const fraction = p.regionsTotal === 0 ? 1 : p.regionsDone / p.regionsTotal;
  const eta = p.etaMs === undefined ? '--' : formatDurationMs(p.etaMs);
  return (
    `sync ${p.pair} ${p.method} r${p.round + 1} ${p.phase} ${bar(fraction)} ${(fraction * 100).toFixed(0).padStart(3)}% ` +
    `${p.regionsDone}/${p.regionsTotal} regions, sent ${formatBytes(p.bytesTransferred)} at ${formatBytes(p.bytesPerSecond)}/s, ETA ${eta}` +
    (p.marked > 0 ? `, ${p.marked} marked` : '')
  );
}

function summaryText(s: SyncSummary): string {
  return [
    `synced ${s.pair} (${s.method}${s.resumed ? ', resumed' : ''}): ${s.regionsTransferred} of ${s.regions} regions sent (${formatBytes(s.bytesTransferred)})` +
      `${s.regionsReclaimed > 0 ? `, ${s.regionsReclaimed} reclaimed` : ''}${s.regionsCompared > 0 ? `, ${s.regionsCompared} compared by signature` : ''} in ${formatDurationMs(s.durationMs)}, ${s.rounds} round${s.rounds === 1 ? '' : 's'}`,
    `  the secondary holds the primary as of ${s.pointInTime} (snapshot ${s.secondarySnapshotId})`,
    s.pendingRegions > 0
      ? `  ${formatCount(s.pendingRegions, 'region')} ${s.pendingRegions === 1 ? 'was' : 'were'} written on the primary since then; they go with the next sync or replication`
      : '  nothing is pending: the volumes are identical',
  ].join('\n');
}

function registerSyncCommands(program: Command, io: Io, globals: () => GlobalOptions): void {
  program
    .command('sync')
    .description("bring a pair's secondary up to date (initial sync or resync); resumes an interrupted one")
    .argument('<name>', 'the pair')
    .option('--method <method>', `auto, ${syncMethods.join(', ')}`, 'auto')
    .option('--limit-rate <rate>', 'at most this many region bytes per second to the secondary, e.g. 50MiB/s')
    .option('--restart', 'abandon an unfinished sync and start over')
    .action(async (name: string, options: { method: string; limitRate?: string; restart?: boolean }) => {
      const global = globals();
      const method = parseMethod(options.method);
      const limitRateBytesPerSecond = options.limitRate === undefined ? undefined : parseRate(options.limitRate, '--limit-rate');
      const pairs = store(io, global);
      const record = await pairs.require(name);
      const line = new StatusLine(io, global);
      const summary = await withAgentPool(
        io,
        global,
        async (pool) =>
          cancellable(async (signal) => {
            try {
              return await runSync({
                store: pairs,
                pair: record,
                endpoints: await endpointsOf(pool, record),
                method,
                restart: options.restart,
                limitRateBytesPerSecond,
                signal,
                onProgress: (p) => line.draw(() => progressText(p), p.phase === 'finish'),
                onWarning: (message) => io.stderr.write(`tidemark: warning: ${message}\n`),
              });
            } finally {
              line.finish();
            }
          }),
        'long',
      );
      printResult(io, global, summary, () => summaryText(summary));
    });

  program
    .command('verify')
    .description('compare region signatures of both sides; exit 0 identical, 1 differing')
    .argument('<name>', 'the pair')
    .action(async (name: string) => {
      const global = globals();
      const record = await store(io, global).require(name);
      const line = new StatusLine(io, global);
      const result = await withAgentPool(io, global, async (pool) =>
        cancellable(async (signal) => {
          try {
            return await verifyPair(record, await endpointsOf(pool, record), {
              signal,
              onProgress: (done, total) => line.draw(() => `verify ${name} ${bar(total === 0 ? 1 : done / total)} ${done}/${total} regions`),
            });
          } finally {
            line.finish();
          }
        }),
      );
      const pending = result.pendingRegions
        ? ` (${formatCount(result.pendingRegions, 'region')} written on the primary ${result.pendingRegions === 1 ? 'is' : 'are'} not sent yet)`
        : '';
      printResult(io, global, result, () =>
        result.regionsDiffering === 0
          ? `pair ${name}: all ${result.regions} regions identical`
          : `pair ${name}: ${result.regionsDiffering} of ${result.regions} regions differ, first: ${result.differing.slice(0, 10).join(', ')}${pending}`,
      );
      if (result.regionsDiffering > 0) throw new ExitStatus(1);
    });
}
