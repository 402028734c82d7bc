// sync-signature-vs-rsync: resynchronising a 2 GiB volume after 1 % of its 1 MiB regions were
// rewritten whole, to a secondary on the loopback sshd: Tidemark's pair create + signature
// sync (both sides sign their regions, only the differing regions cross) against
// `rsync --inplace --no-whole-file --stats` over the same sshd, both held to the same cipher.
// Each starts from its own copy of the same pre-change secondary. Figures: bytes on the wire
// (Tidemark: the RPC bytes of its agent connections; rsync: its sent + received) and wall time.
// Small scattered edits would favour rsync's ~46 KiB blocks; this workload is whole regions.
// Design: docs/sync.md "Benchmarks".

import { spawn } from 'node:child_process';
import { copyFile, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalAgent, type AgentApi } from '../src-engine/agent';
import { PairStore, createPair, runSync, type EndpointResolver, type PairEndpoints, type SyncSummary, type VolumeEndpoint } from '../src-engine/replication';
import type { RemoteHost } from '../src-engine/ssh';
import { GiB, MiB, scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { mulberry32, randomBuffer, randomIndexBelow, type RandomUint32 } from './random';
import { makeFigure } from './report';
import { benchCipher, withSshHarness, type SshHarness } from './ssh-harness';
import { percentile, runCommand } from './timing';

const fileBytesBase = 2 * GiB;
const regionBytes = 1 * MiB;
const changedFraction = 0.01;
const writeChunkBytes = 16 * MiB;
const wireGoal = 1;
/** Issue 6: time < rsync's is the goal; 0.5× is the target (recorded in the figure's details). */
const timeGoal = 1;
const timeTarget = 0.5;
/** Rounds of both peers (each from fresh pre-change copies); the figures are medians. One run is noisy on a shared machine. */
const benchRounds = 3;

/** A file of `bytes` seeded random bytes, every byte from one stream (no chunk repeats, so no block of it matches another). */
async function writeRandomFile(path: string, bytes: number, random: RandomUint32): Promise<void> {
  const handle = await open(path, 'w');
  try {
    for (let position = 0; position < bytes; position += writeChunkBytes) {
      const chunk = randomBuffer(random, Math.min(writeChunkBytes, bytes - position));
      await writeAllAt(handle, chunk, position);
    }
  } finally {
    await handle.close();
  }
}

async function writeAllAt(handle: Awaited<ReturnType<typeof open>>, data: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** `count` distinct regions of `regionCount`, seeded, ascending. */
function chooseRegions(random: RandomUint32, regionCount: number, count: number): number[] {
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(randomIndexBelow(random, regionCount));
  return [...chosen].sort((a, b) => a - b);
}

/** Rewrites each region whole with fresh random bytes (the primary is a plain file here: no agent has it yet). */
async function rewriteRegions(path: string, regions: readonly number[], random: RandomUint32): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    for (const r of regions) await writeAllAt(handle, randomBuffer(random, regionBytes), r * regionBytes);
  } finally {
    await handle.close();
  }
}

interface TidemarkRun {
  readonly totalMs: number;
  readonly pairCreateMs: number;
  /** The resync itself: what the figure compares with rsync. */
  readonly syncMs: number;
  readonly summary: SyncSummary;
  readonly wireBytes: number;
}

/**
 * Each round in its own homes here and on the host: a fresh pair (the files registered anew),
 * then the resync. The figure times the resync — the pair exists before it in the field
 * workflow (created once, seeded from an image, resynced after each outage) — and reports pair
 * create's time beside it: creating a pair adopts the two files, reading them for zero regions.
 */
async function runTidemark(context: BenchContext, harness: SshHarness, primaryPath: string, secondaryPath: string, round: number): Promise<TidemarkRun> {
  const localHome = join(harness.dir, `local-home-${round}`);
  const local = new LocalAgent(localHome, { purpose: 'benchmark' });
  try {
    const host: RemoteHost = await harness.openHost(join(harness.dir, `remote-home-${round}`));
    const secondaryVolref = `${harness.sshd.alias}:${secondaryPath}`;
    const endpoint = (volref: string, agent: AgentApi, path: string, where: string): VolumeEndpoint => ({ volref, agent, path, where });
    const resolver: EndpointResolver = {
      resolve: async (volref) => {
        if (volref === primaryPath) return endpoint(volref, local, primaryPath, 'this machine');
        if (volref === secondaryVolref) return endpoint(volref, host, secondaryPath, harness.sshd.alias);
        throw new Error(`sync-signature-vs-rsync: no endpoint for ${volref}`);
      },
    };
    const store = new PairStore(localHome);
    const wireBefore = host.wireBytes(); // the connection is up: its handshake is not the sync's
    context.log(`tidemark: pair create ${primaryPath} → ${secondaryVolref}, then sync --method signature`);
    const startMs = performance.now();
    const pair = await createPair(store, resolver, { name: 'bench', primary: primaryPath, secondary: secondaryVolref, regionBytes });
    const pairCreateMs = performance.now() - startMs;
    const endpoints: PairEndpoints = { primary: await resolver.resolve(primaryPath), secondary: await resolver.resolve(secondaryVolref) };
    const syncStartMs = performance.now();
    const summary = await runSync({ store, pair, endpoints, method: 'signature' });
    const endMs = performance.now();
    return { totalMs: endMs - startMs, pairCreateMs, syncMs: endMs - syncStartMs, summary, wireBytes: host.wireBytes() - wireBefore };
  } finally {
    await local.dispose();
  }
}

interface RsyncRun {
  readonly elapsedMs: number;
  readonly sentBytes: number;
  readonly receivedBytes: number;
  readonly literalBytes: number | null;
  readonly matchedBytes: number | null;
  readonly stats: string;
}

/** rsync splits its -e command on spaces and honours single quotes (no backslashes). */
function rshWord(word: string): string {
  if (word.includes("'")) throw new Error(`sync-signature-vs-rsync: cannot pass ${word} to rsync -e`);
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word}'`;
}

function runCapture(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(`cannot run ${command}: ${error.message}${error.code === 'ENOENT' ? ` (install ${command})` : ''}`)),
    );
    child.once('close', (code, signal) => {
      if (code === 0) return resolve(stdout);
      reject(new Error(`${command} failed (${signal ?? `exit ${code}`}): ${stderr.trim() || stdout.trim()}`));
    });
  });
}

/** A `--stats` line's number ("Total bytes sent: 1,234"); null when absent. */
function statOf(stats: string, label: string): number | null {
  const match = new RegExp(`^${label}: ([\\d,.]+)`, 'm').exec(stats);
  return match ? Number(match[1]!.replace(/[,.]/g, '')) : null;
}

async function runRsync(context: BenchContext, harness: SshHarness, primaryPath: string, secondaryPath: string): Promise<RsyncRun> {
  const rsh = (await harness.sshCommand()).map(rshWord).join(' ');
  // --ignore-times: the copies and the rewrite fall in the same second, which rsync's quick
  // check (size and whole-second mtime) would take for unchanged; it changes nothing else.
  const args = [
    '--inplace',
    '--no-whole-file',
    '--ignore-times',
    '--stats',
    '--no-human-readable',
    '-e',
    rsh,
    primaryPath,
    `${harness.sshd.alias}:${secondaryPath}`,
  ];
  context.log(
    `rsync: rsync --inplace --no-whole-file --ignore-times --stats ${primaryPath} ${harness.sshd.alias}:${secondaryPath} (through the ssh master connection)`,
  );
  const startMs = performance.now();
  const stats = await runCapture('rsync', args);
  const elapsedMs = performance.now() - startMs;
  const sentBytes = statOf(stats, 'Total bytes sent');
  const receivedBytes = statOf(stats, 'Total bytes received');
  if (sentBytes === null || receivedBytes === null) throw new Error(`sync-signature-vs-rsync: rsync --stats gave no byte totals:\n${stats}`);
  if (statOf(stats, 'Number of regular files transferred') !== 1) throw new Error(`sync-signature-vs-rsync: rsync transferred no file:\n${stats}`);
  return {
    elapsedMs,
    sentBytes,
    receivedBytes,
    literalBytes: statOf(stats, 'Literal data'),
    matchedBytes: statOf(stats, 'Matched data'),
    stats: stats.trim(),
  };
}

/** Both copies must end equal to the primary (checked after the timed runs). */
async function checkEqual(primaryPath: string, copies: readonly string[]): Promise<void> {
  for (const copy of copies) {
    await runCommand('cmp', ['--silent', primaryPath, copy]).catch((error: unknown) => {
      throw new Error(`sync-signature-vs-rsync: ${copy} differs from the primary after its run (${error instanceof Error ? error.message : String(error)})`);
    });
  }
}

interface Round {
  readonly tidemark: TidemarkRun;
  readonly rsync: RsyncRun;
}

/** One round: fresh pre-change copies for both, each peer resynchronises its own, both checked against the primary. */
async function runRound(context: BenchContext, harness: SshHarness, basePath: string, primaryPath: string, round: number): Promise<Round> {
  const tidemarkSecondary = join(harness.dir, `secondary-tidemark-${round}.img`);
  const rsyncSecondary = join(harness.dir, `secondary-rsync-${round}.img`);
  await copyFile(basePath, tidemarkSecondary);
  await copyFile(basePath, rsyncSecondary);
  await runCommand('sync', []); // no writeback of the setup inside a timed run
  const runRsyncNow = async () => {
    const result = await runRsync(context, harness, primaryPath, rsyncSecondary);
    context.log(`rsync: ${Math.round(result.elapsedMs)} ms, sent ${result.sentBytes} + received ${result.receivedBytes} bytes`);
    await runCommand('sync', []);
    return result;
  };
  const runTidemarkNow = async () => {
    const result = await runTidemark(context, harness, primaryPath, tidemarkSecondary, round);
    context.log(
      `tidemark: ${Math.round(result.totalMs)} ms (pair create ${Math.round(result.pairCreateMs)} ms, sync ${result.summary.durationMs} ms), ` +
        `${result.summary.regionsTransferred} regions sent, ${result.wireBytes} bytes on the agent connection`,
    );
    await runCommand('sync', []);
    return result;
  };
  // Alternate who goes first, so neither always meets the other's leftovers (writeback, caches).
  let rsync: RsyncRun;
  let tidemark: TidemarkRun;
  if (round % 2 === 0) {
    rsync = await runRsyncNow();
    tidemark = await runTidemarkNow();
  } else {
    tidemark = await runTidemarkNow();
    rsync = await runRsyncNow();
  }
  await checkEqual(primaryPath, [rsyncSecondary, tidemarkSecondary]);
  await Promise.all([rm(tidemarkSecondary, { force: true }), rm(rsyncSecondary, { force: true })]);
  return { tidemark, rsync };
}

const median = (values: readonly number[]) => percentile(values, 50);

async function measure(context: BenchContext, harness: SshHarness, fileBytes: number): Promise<void> {
  const regionCount = fileBytes / regionBytes;
  const basePath = join(harness.dir, 'pre-change.img');
  const primaryPath = join(harness.dir, 'primary.img');
  const random = mulberry32(context.seed);
  context.log(`sync-signature-vs-rsync: writing ${(fileBytes / GiB).toFixed(2)} GiB of random data (seed ${context.seed}) in ${harness.dir}`);
  await writeRandomFile(basePath, fileBytes, random);
  await copyFile(basePath, primaryPath);
  const changed = chooseRegions(random, regionCount, Math.max(1, Math.round(regionCount * changedFraction)));
  await rewriteRegions(primaryPath, changed, random);
  context.log(`sync-signature-vs-rsync: rewrote ${changed.length} of ${regionCount} regions of the primary whole (first ${changed.slice(0, 5).join(', ')}, …)`);
  context.log(`sync-signature-vs-rsync: ${benchRounds} rounds, each from fresh copies of the pre-change file, the first peer alternating; medians`);

  const rounds: Round[] = [];
  for (let round = 0; round < benchRounds; round++) rounds.push(await runRound(context, harness, basePath, primaryPath, round));
  context.log(`sync-signature-vs-rsync: checked — every secondary equals the primary after its run; OpenSSH negotiated ${harness.opensshCipher}`);

  const tidemarkWire = median(rounds.map((r) => r.tidemark.wireBytes));
  const rsyncWire = median(rounds.map((r) => r.rsync.sentBytes + r.rsync.receivedBytes));
  const tidemarkMs = median(rounds.map((r) => r.tidemark.syncMs));
  const tidemarkWithCreateMs = median(rounds.map((r) => r.tidemark.totalMs));
  const rsyncMs = median(rounds.map((r) => r.rsync.elapsedMs));
  const details = {
    seed: context.seed,
    fileBytes,
    regionBytes,
    regionCount,
    changedRegions: changed.length,
    changedBytes: changed.length * regionBytes,
    sshdCiphers: benchCipher,
    opensshNegotiatedCipher: harness.opensshCipher,
    benchRounds,
    statistic: `median of ${benchRounds} rounds`,
    tidemark: rounds.map(({ tidemark }) => ({
      totalMs: Math.round(tidemark.totalMs),
      pairCreateMs: Math.round(tidemark.pairCreateMs),
      syncMs: tidemark.summary.durationMs,
      wireBytes: tidemark.wireBytes,
      regionsTransferred: tidemark.summary.regionsTransferred,
      bytesTransferred: tidemark.summary.bytesTransferred,
      regionsCompared: tidemark.summary.regionsCompared,
      signatureBytes: tidemark.summary.signatureBytes,
      rounds: tidemark.summary.rounds,
    })),
    tidemarkWireCounted: 'RPC bytes both ways on the RemoteHost connection to the secondary’s agent (the primary is this process’s LocalAgent: no connection)',
    rsync: rounds.map(({ rsync }) => ({
      elapsedMs: Math.round(rsync.elapsedMs),
      sentBytes: rsync.sentBytes,
      receivedBytes: rsync.receivedBytes,
      literalBytes: rsync.literalBytes,
      matchedBytes: rsync.matchedBytes,
    })),
    rsyncCommand: 'rsync --inplace --no-whole-file --ignore-times --stats --no-human-readable -e <ssh through the master connection>',
  };
  context.record(
    makeFigure({
      name: 'sync-signature-vs-rsync-wire',
      tidemark: { value: tidemarkWire / MiB, unit: 'MiB' },
      peer: { name: 'rsync', value: rsyncWire / MiB, unit: 'MiB' },
      ratio: tidemarkWire / rsyncWire,
      goal: wireGoal,
      goalRule: 'at-most',
      details: { ...details, note: 'bytes on the wire, Tidemark agent RPC vs rsync sent + received (both before SSH framing); lower is better' },
    }),
  );
  context.record(
    makeFigure({
      name: 'sync-signature-vs-rsync-time',
      tidemark: { value: tidemarkMs / 1000, unit: 's' },
      peer: { name: 'rsync', value: rsyncMs / 1000, unit: 's' },
      ratio: tidemarkMs / rsyncMs,
      goal: timeGoal,
      goalRule: 'at-most',
      details: {
        ...details,
        target: timeTarget,
        meetsTarget: tidemarkMs / rsyncMs <= timeTarget,
        tidemarkWithPairCreateMs: Math.round(tidemarkWithCreateMs),
        ratioWithPairCreate: tidemarkWithCreateMs / rsyncMs,
        note: 'wall time of the resync: Tidemark signature sync of the existing pair vs rsync (pair create, timed apart, in tidemarkWithPairCreateMs); lower is better',
      },
    }),
  );
}

async function run(context: BenchContext): Promise<void> {
  const fileBytes = scaledCount(fileBytesBase, context.sizeFactor, regionBytes);
  await withSshHarness('sync-signature-vs-rsync', benchCipher, (harness) => measure(context, harness, fileBytes));
}

export const syncSignatureVsRsyncBenchmark: Benchmark = {
  name: 'sync-signature-vs-rsync',
  description:
    'resync of a 2 GiB pair with 1% of its 1 MiB regions rewritten, secondary over loopback SSH: signature sync vs rsync --inplace --no-whole-file (wire bytes, time)',
  run,
};
