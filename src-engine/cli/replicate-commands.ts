// `tidemark replicate NAME [--once]` and `pair wait NAME --in-sync` (docs/replication.md);
// `map` is in map-command.ts.

import type { Command } from 'commander';
import { TidemarkError } from '../errors';
import { resolveHomeDir } from '../home';
import { formatDurationMs } from '../progress';
import {
  GroupStore,
  PairStore,
  checkWaitVisible,
  replicatePair,
  replicateGroup,
  waitInSync,
  type CycleProgress,
  type GroupCycleSummary,
  type ReplicateSummary,
  type ShipProgress,
  type SyncProgress,
} from '../replication';
import { formatBytes, parseDurationMs, parseRate } from '../size';
import { isPrivateView, pairEndpointsOf, pairStoreOf, withAgentPool } from './agents';
import { StatusLine, bar, cancellable, printResult, type GlobalOptions, type Io } from './output';

const store = pairStoreOf;
const endpointsOf = pairEndpointsOf;

/** A bare number is seconds here (`--timeout 60`). */
function parseTimeoutMs(text: string): number {
  return parseDurationMs(/^\s*\d+(\.\d+)?\s*$/.test(text) ? `${text}s` : text, '--timeout');
}

export function shipProgressText(p: ShipProgress): string {
  const lagRegions = p.oosRegions + p.inFlightRegions;
  const eta = p.etaMs === undefined ? '--' : formatDurationMs(p.etaMs);
  const catchUp = p.backlogRegions > 0 && p.state !== 'in-sync' ? ` ${bar(1 - Math.min(1, lagRegions / p.backlogRegions))}` : '';
  return (
    `replicate ${p.pair} ${p.state}${catchUp} lag ${lagRegions} regions (${formatBytes(p.lagBytes)}, oldest ${formatDurationMs(p.oldestUnshippedMs)}), ` +
    `sent ${p.regionsTransferred} (${formatBytes(p.bytesTransferred)}) at ${formatBytes(p.bytesPerSecond)}/s, ETA ${eta}, crash cost ${p.moosRegions} regions`
  );
}

export function syncProgressText(p: SyncProgress): string {
  const fraction = p.regionsTotal === 0 ? 1 : p.regionsDone / p.regionsTotal;
  return `sync ${p.pair} first (${p.method}) ${bar(fraction)} ${p.regionsDone}/${p.regionsTotal} regions, ${formatBytes(p.bytesPerSecond)}/s`;
}

/** A periodic pair's cycle: its phase and the regions of the change map shipped so far. */
export function cycleProgressText(p: CycleProgress): string {
  const fraction = p.regionsTotal === 0 ? 1 : p.regionsDone / p.regionsTotal;
  return `replicate ${p.pair} cycle ${p.cycle} ${p.phase} ${bar(fraction)} ${p.regionsDone}/${p.regionsTotal} regions, sent ${formatBytes(p.bytesTransferred)}`;
}

function summaryText(s: ReplicateSummary): string {
  if (s.waitedFor) return `pair ${s.pair} is in sync (replicated by process ${s.waitedFor.pid}; waited ${formatDurationMs(s.durationMs)})`;
  const cycle = s.cycles[s.cycles.length - 1];
  const synced = s.sync ? [`synced ${s.pair} first (${s.sync.method}): ${s.sync.regionsTransferred} regions (${formatBytes(s.sync.bytesTransferred)})`] : [];
  if (cycle) {
    return [
      ...synced,
      `replicated ${s.pair}: cycle ${cycle.cycle} applied, ${cycle.regionsTransferred} regions (${formatBytes(cycle.bytesTransferred)}) in ${formatDurationMs(cycle.durationMs)}`,
      `  the secondary holds the primary as of ${cycle.pointInTime}`,
    ].join('\n');
  }
  return [
    ...synced,
    `replicated ${s.pair}: ${s.regionsTransferred} regions shipped (${formatBytes(s.bytesTransferred)}) in ${formatDurationMs(s.durationMs)}` +
      (s.recoveredRegions > 0 ? `; ${s.recoveredRegions} regions recovered from MOOS after a crash` : '') +
      (s.retries > 0 ? `; ${s.retries} retries` : '') +
      `; path ${s.path}${s.directFallbacks > 0 ? ' (the direct path failed: relayed)' : ''}`,
    s.inSync ? '  in sync: the secondary holds everything acknowledged on the primary' : '  stopped before in sync: what was not shipped stays tracked',
  ].join('\n');
}

function groupSummaryText(result: { group: string; cycles: readonly GroupCycleSummary[] }): string {
  const last = result.cycles[result.cycles.length - 1];
  if (!last) return `group ${result.group}: no cycle ran`;
  return `group ${result.group}: ${last.members.map((m) => `${m.pair} cycle ${m.cycle} (${m.regionsTransferred} regions)`).join(', ')} — the secondaries hold the primaries as of ${last.pointInTime}`;
}

export function registerReplicateCommands(program: Command, io: Io, globals: () => GlobalOptions): void {
  program
    .command('replicate')
    .description("ship a pair's tracked changes to its secondary (syncs first if it never was); --once: until in sync")
    .argument('<name>', 'the pair')
    .option('--once', 'stop at the first moment the secondary is in sync')
    .option('--limit-rate <rate>', 'at most this many region bytes per second to the secondary, e.g. 50MiB/s')
    .option('--no-protect', 'skip the protective snapshot of the secondary before a catch-up')
    .action(async (name: string, options: { once?: boolean; limitRate?: string; protect: boolean }) => {
      const global = globals();
      const limitRateBytesPerSecond = options.limitRate === undefined ? undefined : parseRate(options.limitRate, '--limit-rate');
      const pairs = store(io, global);
      if (!(await pairs.get(name))) {
        const groups = new GroupStore(resolveHomeDir(global.home, io.env));
        const group = await groups.require(name);
        const result = await withAgentPool(
          io,
          global,
          (pool) =>
            cancellable((signal) =>
              replicateGroup(pairs, pool, group, {
                once: options.once === true,
                signal,
                limitRateBytesPerSecond,
                onCycle: (cycle) => {
                  if (options.once !== true) io.stderr.write(`tidemark: ${groupSummaryText({ group: group.name, cycles: [cycle] })}\n`);
                },
                onWarning: (message) => io.stderr.write(`tidemark: warning: ${message}\n`),
              }),
            ),
          'long',
        );
        printResult(io, global, result, () => groupSummaryText(result));
        return;
      }
      const record = await pairs.require(name);
      const line = new StatusLine(io, global);
      const summary = await withAgentPool(
        io,
        global,
        async (pool) =>
          cancellable(async (signal) => {
            try {
              const endpoints = await endpointsOf(pool, record);
              return await replicatePair({
                store: pairs,
                pair: record,
                endpoints,
                privateView: isPrivateView(endpoints),
                once: options.once === true,
                reopenEndpoints: async () => {
                  await pool.reopenLocal();
                  return endpointsOf(pool, record);
                },
                protect: options.protect,
                limitRateBytesPerSecond,
                signal,
                onProgress: (p) => line.draw(() => shipProgressText(p)),
                onSyncProgress: (p) => line.draw(() => syncProgressText(p)),
                onCycleProgress: (p) => line.draw(() => cycleProgressText(p), p.phase === 'done'),
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

  const group = program.command('group').description('consistency groups: periodic pairs whose cycles share one instant');
  group
    .command('create')
    .description('group periodic pairs (their primaries on one host or several)')
    .argument('<name>')
    .argument('<pairs...>', 'two or more periodic pairs')
    .action(async (name: string, pairNames: string[]) => {
      const global = globals();
      const home = resolveHomeDir(global.home, io.env);
      const created = await new GroupStore(home).create(name, pairNames, new PairStore(home));
      printResult(
        io,
        global,
        created,
        () => `created group ${name}: ${pairNames.join(', ')} — \`tidemark replicate ${name}\` runs their cycles at one instant`,
      );
    });
  group
    .command('list')
    .description('the consistency groups of this home')
    .action(async () => {
      const global = globals();
      const groups = await new GroupStore(resolveHomeDir(global.home, io.env)).list();
      printResult(io, global, groups, () => (groups.length === 0 ? 'no groups' : groups.map((g) => `${g.name}: ${g.pairs.join(', ')}`).join('\n')));
    });
  group
    .command('delete')
    .description('forget a group (its pairs stay)')
    .argument('<name>')
    .action(async (name: string) => {
      const global = globals();
      const home = resolveHomeDir(global.home, io.env);
      await new GroupStore(home).delete(name, new PairStore(home));
      printResult(io, global, { group: name, deleted: true }, () => `deleted group ${name}; its pairs stay`);
    });

  const pair = program.commands.find((c) => c.name() === 'pair');
  if (!pair) throw new Error('the pair command is registered before replicate');
  pair
    .command('wait')
    .description('wait until the pair is in sync (nothing written on the primary is unshipped)')
    .argument('<name>', 'the pair')
    .option('--in-sync', 'the condition to wait for (the only one so far)')
    .option('--timeout <duration>', 'give up after this long (e.g. 60s, 5m); exit 1', '60s')
    .action(async (name: string, options: { inSync?: boolean; timeout: string }) => {
      if (!options.inSync) throw new TidemarkError('USAGE', 'pair wait needs a condition', 'add --in-sync');
      const global = globals();
      const timeoutMs = parseTimeoutMs(options.timeout);
      const pairs = store(io, global);
      const record = await pairs.require(name);
      const line = new StatusLine(io, global);
      const startMs = performance.now();
      const state = await withAgentPool(io, global, async (pool) =>
        cancellable(async (signal) => {
          try {
            const endpoints = await endpointsOf(pool, record);
            await checkWaitVisible(pairs, record, isPrivateView(endpoints));
            return await waitInSync(pairs, record, endpoints, {
              timeoutMs,
              signal,
              onState: (s) => line.draw(() => `wait ${name}: ${s.oosRegions + s.inFlightRegions} regions unshipped`),
            });
          } finally {
            line.finish();
          }
        }),
      );
      const waitedMs = Math.round(performance.now() - startMs);
      printResult(io, global, { pair: name, inSync: true, waitedMs, tracking: state }, () => `pair ${name} is in sync (waited ${formatDurationMs(waitedMs)})`);
    });
}
