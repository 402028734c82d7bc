// `tidemark failover NAME [--force]`, `failback NAME [--dry-run] [--discard-changes-on VOLREF]` and
// `migrate NAME` (docs/failover.md).

import { resolve } from 'node:path';
import type { Command } from 'commander';
import { formatDurationMs } from '../progress';
import { TidemarkError } from '../errors';
import {
  GroupStore,
  failbackGroup,
  failbackPair,
  failoverGroup,
  failoverPair,
  migratePair,
  replicatePair,
  type FailbackSummary,
  type FailoverSummary,
  type GroupFailbackSummary,
  type GroupFailoverSummary,
  type MigrateProgress,
  type PairStore,
} from '../replication';
import { formatBytes, parseDurationMs, parseRate } from '../size';
import { pairStoreOf, withAgentPool } from './agents';
import { ExitStatus, StatusLine, bar, cancellable, printResult, type GlobalOptions, type Io } from './output';
import { cycleProgressText, shipProgressText, syncProgressText } from './replicate-commands';

function failoverText(s: FailoverSummary): string {
  return [
    `failed over ${s.pair}: ${s.newPrimary} is the primary now (generation ${s.generation}) and takes writes`,
    s.oldPrimaryReachable
      ? `  the old primary ${s.oldPrimary} was demoted (read-only); its ${s.atRiskRegions ?? 0} unshipped regions are copied over at failback`
      : `  the old primary ${s.oldPrimary} was unreachable: whatever it had not shipped is copied over at failback`,
    ...(s.rolledBackRegions > 0 ? [`  ${s.rolledBackRegions} regions rolled back to the protective snapshot (a catch-up was interrupted)`] : []),
    `  every write on the new primary is recorded for failback — run \`tidemark failback ${s.pair}\` when the old primary is back`,
  ].join('\n');
}

function failbackText(s: FailbackSummary): string {
  const map = `${s.resyncRegions} of ${s.regions} regions (${formatBytes(s.resyncBytes)}): ${s.failbackRegions} in the failback map (written on the new primary since the failover, or handed over by a demoted primary), ${s.unshippedRegions} unshipped on the old primary`;
  const split = s.splitBrain
    ? `\n  SPLIT BRAIN: the old primary was written after the failover (last at ${new Date(s.splitBrain.oldPrimaryLastWriteAtMs).toISOString()}): failback needs --discard-changes-on VOLREF`
    : '';
  const saved = s.discarded
    ? `\n  the discarded regions were saved first: ${s.discarded.regions} regions in ${s.discarded.dir} (sha256 ${s.discarded.sha256})`
    : '';
  if (s.dryRun) return `failback of ${s.pair} would copy ${map}; nothing was changed${split}`;
  return `failed back ${s.pair}: copied ${s.regionsTransferred} regions (${formatBytes(s.bytesTransferred)}) in ${formatDurationMs(s.durationMs)} — resync map ${map}; the old primary is the secondary now${saved}`;
}

function groupFailoverText(s: GroupFailoverSummary): string {
  const cycle =
    s.rolledForward.length > 0
      ? `  the group's cycle in progress was applied first on ${s.rolledForward.map((r) => `${r.pair} (cycle ${r.cycle}, from its seal)`).join(', ')}: every secondary holds the same instant`
      : s.abandonedCycle
        ? "  the group's cycle in progress was left (no secondary had applied it): every secondary holds the group's last cycle"
        : "  every secondary holds the group's last cycle";
  return [
    `failed over group ${s.group}: ${s.members.map((m) => `${m.pair} → ${m.newPrimary}`).join(', ')}, all at the same instant of the group`,
    cycle,
    ...s.members.flatMap((m) => failoverText(m).split('\n').slice(1, -1)),
    `  every write on the new primaries is recorded for failback — run \`tidemark failback ${s.group}\` when the old primaries are back`,
  ].join('\n');
}

function groupFailbackText(s: GroupFailbackSummary): string {
  const members = s.members.map((m) => failbackText(m)).join('\n');
  if (!s.cycle) return members;
  return `${members}\nfailed back group ${s.group}: one group cycle (${s.cycle.members.map((m) => `${m.pair} cycle ${m.cycle}`).join(', ')}) — the secondaries hold the primaries as of ${s.cycle.pointInTime}`;
}

/** The group of that name when no pair has it (pair and group names never clash). */
async function groupNamed(store: PairStore, name: string): Promise<string | undefined> {
  if (await store.get(name)) return undefined;
  return (await new GroupStore(store.homeDir).get(name))?.name;
}

export function registerFailoverCommands(program: Command, io: Io, globals: () => GlobalOptions): void {
  program
    .command('failover')
    .description('promote the secondary to primary (the primary is lost); --force when the primary cannot be reached')
    .argument('<name>', 'a pair, or a consistency group (every secondary promoted, all at the same instant of the group)')
    .option('--force', 'promote even though the primary is unreachable (its unshipped writes are at risk) or reachable (it is demoted)')
    .action(async (name: string, options: { force?: boolean }) => {
      const global = globals();
      const store = pairStoreOf(io, global);
      if (await groupNamed(store, name)) {
        const summary = await withAgentPool(io, global, (pool) => failoverGroup(store, pool, name, { force: options.force }));
        printResult(io, global, summary, () => groupFailoverText(summary));
        return;
      }
      const summary = await withAgentPool(io, global, (pool) => failoverPair(store, pool, name, { force: options.force }));
      printResult(io, global, summary, () => failoverText(summary));
    });
  program
    .command('failback')
    .description("bring a failed-over pair's old primary back as the secondary, copying only failback ∪ unshipped regions")
    .argument('<name>', 'a pair, or a consistency group (each pair fails back, then one group cycle)')
    .option('--dry-run', 'print the resync map (regions, bytes) and change nothing')
    .option('--discard-changes-on <volref>', 'after a split brain: the side whose writes since the failover are discarded (the other survives)')
    .option('--export-discarded <dir>', "save the discarded side's regions of the resync map in this new directory first")
    .option('--limit-rate <rate>', 'at most this many region bytes per second copied, e.g. 50MiB/s (leaves room on a thin link)')
    .action(async (name: string, options: FailbackCliOptions) => {
      const global = globals();
      const limitRateBytesPerSecond = options.limitRate === undefined ? undefined : parseRate(options.limitRate, '--limit-rate');
      const store = pairStoreOf(io, global);
      const group = await groupNamed(store, name);
      if (group && (options.discardChangesOn !== undefined || options.exportDiscarded !== undefined)) {
        throw new TidemarkError(
          'USAGE',
          `--discard-changes-on and --export-discarded choose one pair's surviving side, and "${group}" is a group`,
          `fail back that pair alone (\`tidemark failback PAIR --discard-changes-on VOLREF\`), then \`tidemark failback ${group}\` for the rest`,
        );
      }
      const line = new StatusLine(io, global);
      // Ctrl-C stops the copy cleanly: the old primary stays demoted, the rest of the map is kept.
      const summary = await withAgentPool(
        io,
        global,
        (pool) =>
          cancellable(async (signal) => {
            const failback = (pairName: string) =>
              failbackPair(store, pool, pairName, {
                dryRun: options.dryRun,
                discardChangesOn: options.discardChangesOn,
                exportDiscarded: options.exportDiscarded === undefined ? undefined : resolve(options.exportDiscarded),
                signal,
                replicate: (pair, endpoints) =>
                  replicatePair({
                    store,
                    pair,
                    endpoints,
                    once: true,
                    failbackCopy: true,
                    signal,
                    limitRateBytesPerSecond,
                    onProgress: (p) => line.draw(() => `failback: ${shipProgressText(p)}`),
                    onSyncProgress: (p) => line.draw(() => `failback: ${syncProgressText(p)}`),
                    onCycleProgress: (p) => line.draw(() => `failback: ${cycleProgressText(p)}`),
                  }),
              });
            try {
              if (!group) return await failback(name);
              return await failbackGroup(store, pool, group, {
                dryRun: options.dryRun,
                signal,
                limitRateBytesPerSecond,
                failbackMember: failback,
                onWarning: (message) => io.stderr.write(`tidemark: warning: ${message}\n`),
              });
            } finally {
              line.finish();
            }
          }),
        'long',
      );
      if ('members' in summary) {
        printResult(io, global, { ...summary, members: summary.members.map(shownFailback) }, () => groupFailbackText(summary));
        return;
      }
      printResult(io, global, shownFailback(summary), () => failbackText(summary));
    });
}

interface FailbackCliOptions {
  dryRun?: boolean;
  discardChangesOn?: string;
  exportDiscarded?: string;
  limitRate?: string;
}

/** A failback's summary as printed with --json: the replication's counts, not its whole summary. */
function shownFailback(summary: FailbackSummary): Omit<FailbackSummary, 'replication'> & { replication: object | null } {
  const { replication, ...shown } = summary;
  return {
    ...shown,
    replication: replication ? { regionsTransferred: replication.regionsTransferred, retries: replication.retries, path: replication.path } : null,
  };
}

export function registerMigrateCommand(program: Command, io: Io, globals: () => GlobalOptions): void {
  program
    .command('migrate')
    .description(
      'planned, lossless role swap: drain, stop writes on the primary, copy the rest, verify, promote the secondary; run again to finish one that was interrupted',
    )
    .argument('<name>')
    .option('--drain-timeout <duration>', 'how long to ship while applications still write before pausing them (e.g. 30s; 0 pauses at once)', '10s')
    .option(
      '--verify-in-pause',
      'verify the whole extent while writes are paused (a longer pause) instead of the copied regions in it and every region after it',
    )
    .action(async (name: string, options: { drainTimeout: string; verifyInPause?: boolean }) => {
      const global = globals();
      const drainMs = parseDurationMs(/^\s*\d+(\.\d+)?\s*$/.test(options.drainTimeout) ? `${options.drainTimeout}s` : options.drainTimeout, '--drain-timeout');
      const line = new StatusLine(io, global);
      const onProgress = (p: MigrateProgress) => line.draw(() => migrateProgressText(p), p.phase !== 'drain' && p.phase !== 'copy');
      const s = await withAgentPool(
        io,
        global,
        async (pool) => {
          try {
            return await migratePair(pairStoreOf(io, global), pool, name, { drainMs, onProgress, verifyInPause: options.verifyInPause });
          } finally {
            line.finish();
          }
        },
        'long',
      );
      printResult(io, global, s, () =>
        [
          `${s.resumed ? 'finished the interrupted migrate of' : 'migrated'} ${s.pair}: ${s.newPrimary} is the primary now (generation ${s.generation}), ${s.oldPrimary} its secondary${s.checkDifferingRegions > 0 ? '' : ', in sync'}`,
          `  writes paused ${formatDurationMs(s.pauseMs)} (${s.finalRegions} regions copied and verified by signature in the pause, ${s.drainedRegions} drained before)`,
          s.checkedRegions === 0
            ? `  no check after the pause (--verify-in-pause verified the whole extent in it, or an earlier run checked)`
            : s.checkDifferingRegions > 0
              ? `  CHECK FAILED: after the pause ${s.checkDifferingRegions} of ${s.checkedRegions} regions of the new primary (as promoted) differ from ${s.oldPrimary}, which holds the pair as it was at the pause (regions ${s.checkDiffering.slice(0, 10).join(', ')}${s.checkDiffering.length > 10 ? ', …' : ''}); nothing was changed — decide which side is right before replicating`
              : `  checked after the pause: all ${s.checkedRegions} regions equal`,
        ].join('\n'),
      );
      if (s.checkDifferingRegions > 0) throw new ExitStatus(1);
    });
}

function migrateProgressText(p: MigrateProgress): string {
  const what = { drain: 'draining', pause: 'writes paused', copy: 'copying', verify: 'verifying', done: 'writes resumed', check: 'checking every region' }[
    p.phase
  ];
  if (p.regionsTotal === 0) return `migrate ${p.pair}: ${what}`;
  const eta = p.etaMs === undefined ? '' : `, ETA ${formatDurationMs(p.etaMs)}`;
  return `migrate ${p.pair}: ${what} ${bar(p.regionsTransferred / p.regionsTotal)} ${p.regionsTransferred}/${p.regionsTotal} regions, ${formatBytes(p.bytesPerSecond)}/s${eta}`;
}
