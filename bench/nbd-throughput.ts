// nbd-throughput: Tidemark's NBD server (in this process, a Volume with real MOOS write tracking)
// against `nbdkit file` (its own process) on loopback TCP, same clients, same data, same file
// system, interleaved rounds (the contender going first rotates): nbdcopy of a source file into
// the export (sequential 1 MiB), qemu-img bench of 4 KiB writes at queue depth 16 spread over the
// export, and of 1 MiB sequential writes. Each contender writes its own target file, kept across rounds (so only the
// first round allocates blocks, alike for both); each Tidemark round starts a fresh MOOS. The
// server without tracking is measured too, informational, to separate protocol from tracking.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { NbdServer, volumeNbdExport } from '../src-engine/nbd';
import { WriteTracker } from '../src-engine/tracking';
import { FileBackend, Volume } from '../src-engine/volume';
import { KiB, MiB, scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { makeFigure } from './report';
import { withTempDir } from './temp';
import { writeTestFile } from './test-file';
import { minMs, pairedRatio, percentile } from './timing';

const fileBytesBase = 512 * MiB;
const regionBytes = 1 * MiB;
const predictRegions = 3;
/** Rounds of the paired ratio (a multiple of 4: every seat order of roundOrders equally often). */
const rounds = 8;
const queueDepth = 16;
const smallWriteBytes = 4 * KiB;
/** Odd number of 4 KiB steps plus a region: consecutive writes land in different regions, spread over the export. */
const smallWriteStepBytes = regionBytes + 37 * smallWriteBytes;

type Workload = 'nbdcopy' | 'write4k' | 'write1m';
type Contender = 'tidemark' | 'untracked' | 'nbdkit';
/**
 * The order of each round: tidemark and nbdkit always back to back (their pair is the ratio),
 * each first as often as the other, and untracked (informational) before or after them —
 * going first after the previous workload is not the same as going second.
 */
const roundOrders: readonly (readonly Contender[])[] = [
  ['tidemark', 'nbdkit', 'untracked'],
  ['nbdkit', 'tidemark', 'untracked'],
  ['untracked', 'tidemark', 'nbdkit'],
  ['untracked', 'nbdkit', 'tidemark'],
];

interface Target {
  readonly uri: string;
  stop(): Promise<void>;
}

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs commands through one long-lived `sh`, started while this process is small. Spawning a
 * client straight from this process would fork it, and the copy-on-write faults on every page
 * of the server's memory would then land on the server during the timed run (the peer, in its
 * own process, pays nothing alike): a harness artifact, not a cost of serving NBD.
 */
class Launcher {
  private readonly shell: ChildProcess;
  private pending = '';
  private waiter: ((line: string) => void) | undefined;
  private sequence = 0;

  constructor(private readonly dir: string) {
    this.shell = spawn('sh', [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.shell.stdout!.setEncoding('utf8');
    this.shell.stdout!.on('data', (text: string) => {
      this.pending += text;
      const newline = this.pending.indexOf('\n');
      if (newline === -1 || !this.waiter) return;
      const line = this.pending.slice(0, newline);
      this.pending = this.pending.slice(newline + 1);
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter(line);
    });
  }

  /** Runs `command args`; resolves with its exit status, output (stdout and stderr) and elapsed ms, timed by the shell. */
  async run(command: string, args: readonly string[]): Promise<{ status: number; output: string; elapsedMs: number }> {
    if (this.waiter !== undefined) throw new Error('nbd-throughput: the launcher runs one command at a time');
    const outPath = join(this.dir, `launcher-${++this.sequence}.out`);
    const line = await new Promise<string>((resolve) => {
      this.waiter = resolve;
      const commandLine = [command, ...args].map(shellQuote).join(' ');
      this.shell.stdin!.write(`t0=$(date +%s%N); ${commandLine} > ${shellQuote(outPath)} 2>&1; s=$?; t1=$(date +%s%N); echo "$s $(( (t1 - t0) / 1000 ))"\n`);
    });
    const [status, elapsedUs] = line.trim().split(' ').map(Number);
    const output = await readFile(outPath, 'utf8');
    await rm(outPath, { force: true });
    return { status: status!, output, elapsedMs: elapsedUs! / 1000 };
  }

  async runOk(command: string, args: readonly string[]): Promise<{ output: string; elapsedMs: number }> {
    const result = await this.run(command, args);
    if (result.status !== 0) {
      const hint = result.status === 127 ? ' (install qemu-utils, libnbd-bin and nbdkit)' : '';
      throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status})${hint}: ${result.output.trim()}`);
    }
    return result;
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.shell.once('close', () => resolve()));
    this.shell.stdin!.end();
    await exited;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}

/** A sparse target file, made once and written over in later rounds. */
async function targetFile(path: string, fileBytes: number): Promise<string> {
  if (!existsSync(path)) {
    await writeFile(path, '');
    await truncate(path, fileBytes);
  }
  return path;
}

async function startTidemark(dir: string, fileBytes: number, tracked: boolean): Promise<Target> {
  const path = await targetFile(join(dir, tracked ? 'tidemark.img' : 'untracked.img'), fileBytes);
  const moosPath = join(dir, 'moos.bitmap');
  await rm(moosPath, { force: true });
  const volume = new Volume(await FileBackend.open(path), regionBytes);
  const tracker = tracked ? await WriteTracker.attach(volume, moosPath, predictRegions) : undefined;
  const errors: Error[] = [];
  const server = new NbdServer([volumeNbdExport(volume, { name: 'vol', readOnly: false })], { onError: (e) => errors.push(e) });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    uri: `nbd://127.0.0.1:${port}/vol`,
    stop: async () => {
      await server.close();
      await tracker?.close();
      await volume.close();
      await rm(moosPath, { force: true });
      if (errors.length > 0) throw new Error(`nbd-throughput: the server reported ${errors.length} errors, first: ${errors[0]!.message}`);
    },
  };
}

/** nbdkit daemonizes once it listens, so the launcher's command returns when it is ready. */
async function startNbdkit(launcher: Launcher, dir: string, fileBytes: number): Promise<Target> {
  const path = await targetFile(join(dir, 'nbdkit.img'), fileBytes);
  const pidPath = join(dir, 'nbdkit.pid');
  const port = await freePort();
  await launcher.runOk('nbdkit', ['-P', pidPath, '-i', '127.0.0.1', '-p', String(port), 'file', path]);
  const pid = Number((await readFile(pidPath, 'utf8')).trim());
  return {
    uri: `nbd://127.0.0.1:${port}`,
    stop: async () => {
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 500 && isAlive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      await rm(pidPath, { force: true });
    },
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs one workload against a target; returns the elapsed milliseconds of the client's work. */
async function runWorkload(launcher: Launcher, workload: Workload, uri: string, sourcePath: string, fileBytes: number, smallWrites: number): Promise<number> {
  if (workload === 'nbdcopy') {
    return (await launcher.runOk('nbdcopy', ['--request-size=1048576', `--requests=${queueDepth}`, sourcePath, uri])).elapsedMs;
  }
  const args =
    workload === 'write4k'
      ? ['-c', String(smallWrites), '-s', String(smallWriteBytes), '-S', String(smallWriteStepBytes)]
      : ['-c', String(fileBytes / MiB), '-s', String(MiB)];
  const { output } = await launcher.runOk('qemu-img', ['bench', '-f', 'raw', '-t', 'none', '-w', '-d', String(queueDepth), '--pattern=165', ...args, uri]);
  const seconds = /Run completed in ([\d.]+) seconds/.exec(output);
  if (!seconds) throw new Error(`qemu-img bench printed no run time: ${output}`);
  return Number(seconds[1]) * 1000;
}

async function measure(
  context: BenchContext,
  launcher: Launcher,
  dir: string,
  fileBytes: number,
  smallWrites: number,
): Promise<Record<Workload, Record<Contender, number[]>>> {
  const sourcePath = join(dir, 'source.img');
  await writeTestFile(sourcePath, fileBytes, regionBytes, context.seed);
  // Page cache warm for both sides. (`cat` here sent 512 MiB into the launcher's output file,
  // written to disk and then decoded as UTF-8 in this process before the first round.)
  await launcher.runOk('dd', [`if=${sourcePath}`, 'of=/dev/null', 'bs=1M']);
  const samplesMs: Record<Workload, Record<Contender, number[]>> = {
    nbdcopy: { tidemark: [], untracked: [], nbdkit: [] },
    write4k: { tidemark: [], untracked: [], nbdkit: [] },
    write1m: { tidemark: [], untracked: [], nbdkit: [] },
  };
  for (let round = 1; round <= rounds; round++) {
    for (const workload of ['nbdcopy', 'write4k', 'write1m'] as const) {
      const order = roundOrders[(round - 1) % roundOrders.length]!;
      for (const contender of order) {
        const target = contender === 'nbdkit' ? await startNbdkit(launcher, dir, fileBytes) : await startTidemark(dir, fileBytes, contender === 'tidemark');
        try {
          await launcher.runOk('sync', []);
          samplesMs[workload][contender].push(await runWorkload(launcher, workload, target.uri, sourcePath, fileBytes, smallWrites));
        } finally {
          await target.stop();
        }
      }
      const s = samplesMs[workload];
      context.log(
        `nbd-throughput: round ${round} ${workload}: tidemark ${Math.round(s.tidemark.at(-1)!)} ms, untracked ${Math.round(s.untracked.at(-1)!)} ms, nbdkit ${Math.round(s.nbdkit.at(-1)!)} ms`,
      );
    }
  }
  return samplesMs;
}

function record(context: BenchContext, fileBytes: number, smallWrites: number, samplesMs: Record<Workload, Record<Contender, number[]>>): void {
  const common = { seed: context.seed, fileBytes, regionBytes, predictRegions, rounds, queueDepth, cpus: availableParallelism() };
  const figures: { workload: Workload; name: string; bytes: number; note: string }[] = [
    { workload: 'nbdcopy', name: 'nbd-nbdcopy-vs-nbdkit', bytes: fileBytes, note: 'nbdcopy of a page-cached random file into the export, 1 MiB requests' },
    {
      workload: 'write4k',
      name: 'nbd-write-4k-vs-nbdkit',
      bytes: smallWrites * smallWriteBytes,
      note: `qemu-img bench -w, ${smallWrites} × 4 KiB at depth ${queueDepth}, step ${smallWriteStepBytes} bytes (a different region each write)`,
    },
    { workload: 'write1m', name: 'nbd-write-1m-vs-nbdkit', bytes: fileBytes, note: `qemu-img bench -w, 1 MiB sequential at depth ${queueDepth}` },
  ];
  for (const { workload, name, bytes, note } of figures) {
    const samples = samplesMs[workload];
    const rate = (c: Contender, ms: (samples: number[]) => number) => bytes / MiB / (ms(samples[c]) / 1000);
    const median = (values: number[]) => percentile(values, 50);
    const ratio = pairedRatio(samples.tidemark, samples.nbdkit);
    const bestOfRatio = rate('tidemark', minMs) / rate('nbdkit', minMs);
    context.log(
      `nbd-throughput: ${workload}: ratio ${ratio.toFixed(3)} (median of ${rounds} rounds' back-to-back ratios); best-of-${rounds} ratio ${bestOfRatio.toFixed(3)}`,
    );
    context.record(
      makeFigure({
        name,
        tidemark: { value: rate('tidemark', median), unit: 'MiB/s' },
        peer: { name: 'nbdkit file', value: rate('nbdkit', median), unit: 'MiB/s' },
        ratio,
        goal: 0.8,
        details: {
          ...common,
          tidemarkMs: samples.tidemark,
          nbdkitMs: samples.nbdkit,
          untrackedMs: samples.untracked,
          untrackedRatio: pairedRatio(samples.untracked, samples.nbdkit),
          bestOfRatio,
          note: `${note}; tidemark: in-process server, Volume with MOOS tracking (predict ${predictRegions}), region ${regionBytes} bytes; rates are medians of ${rounds} rounds; ratio = median over rounds of nbdkit time / tidemark time, the two run back to back`,
        },
      }),
    );
  }
}

async function run(context: BenchContext): Promise<void> {
  const fileBytes = scaledCount(fileBytesBase, context.sizeFactor, 16 * MiB);
  const smallWrites = scaledCount(32 * 1024, context.sizeFactor, 1024);
  await withTempDir('nbd-throughput', async (dir) => {
    context.log(`nbd-throughput: ${fileBytes / MiB} MiB source (seed ${context.seed}), ${smallWrites} small writes, in ${dir}`);
    const launcher = new Launcher(dir);
    try {
      record(context, fileBytes, smallWrites, await measure(context, launcher, dir, fileBytes, smallWrites));
    } finally {
      await launcher.close();
    }
  });
}

export const nbdThroughputBenchmark: Benchmark = {
  name: 'nbd-throughput',
  description: 'NBD server with MOOS tracking vs nbdkit file: nbdcopy in, qemu-img bench 4 KiB (depth 16) and 1 MiB writes',
  run,
};
