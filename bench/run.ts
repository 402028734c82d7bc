// Benchmark runner (`npm run bench`): runs the named benchmarks (all by default), prints one BENCH
// line per figure and writes every figure of the run to bench-results/latest.json.

import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchContext, Benchmark } from './benchmark';
import { bitscanBenchmark } from './bitscan';
import { consoleApiBenchmark } from './console-api';
import { continuousShipBenchmark } from './continuous-ship';
import { failbackBenchmark } from './failback';
import { heatmapBenchmark } from './heatmap';
import { imageExportBenchmark } from './image-export';
import { moosDestageBenchmark } from './moos-destage';
import { nbdThroughputBenchmark } from './nbd-throughput';
import { formatBenchLine, writeResults, type Figure } from './report';
import { signatureBenchmark } from './signature';
import { sshBulkReadBenchmark } from './ssh-bulk-read';
import { sshInfoLatencyBenchmark } from './ssh-info-latency';
import { syncSignatureVsRsyncBenchmark } from './sync-signature-vs-rsync';
import { syncTardyVsEarlyBenchmark } from './sync-tardy-vs-early';
import { trackingCostBenchmark } from './tracking-cost';
import { removeTempDirsNow } from './temp';

const benchmarks: readonly Benchmark[] = [
  signatureBenchmark,
  bitscanBenchmark,
  moosDestageBenchmark,
  heatmapBenchmark,
  consoleApiBenchmark,
  sshBulkReadBenchmark,
  sshInfoLatencyBenchmark,
  syncTardyVsEarlyBenchmark,
  syncSignatureVsRsyncBenchmark,
  imageExportBenchmark,
  trackingCostBenchmark,
  continuousShipBenchmark,
  failbackBenchmark,
  nbdThroughputBenchmark,
];
const seedDefault = 0x7d1de;

interface RunOptions {
  readonly help: boolean;
  readonly names: readonly string[];
  readonly sizeFactor: number;
  readonly seed: number;
}

class UsageError extends Error {}

function usage(): string {
  const width = Math.max(...benchmarks.map((b) => b.name.length));
  return [
    'usage: node dist/bench.cjs [NAME ...] [--size N] [--seed N]',
    '',
    'Runs the named benchmarks (all by default), prints one line per figure:',
    '  BENCH <name>: tidemark <value> <unit> | <peer> <value> <unit> | ratio <r> (goal <g>) PASS|BELOW-GOAL',
    'and writes every figure to bench-results/latest.json.',
    '',
    'benchmarks:',
    ...benchmarks.map((b) => `  ${b.name.padEnd(width)}  ${b.description}`),
    '',
    'options:',
    '  --size N   multiply every data size by N (default 1)',
    `  --seed N   seed of all random data, an unsigned 32-bit integer (default ${seedDefault})`,
    '  --help     print this help',
  ].join('\n');
}

function parseNumberOption(text: string | undefined, option: string, valid: (value: number) => boolean, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !valid(value)) throw new UsageError(`${option} ${JSON.stringify(text)} is not valid`);
  return value;
}

function parseOptions(argv: readonly string[]): RunOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { help: { type: 'boolean', short: 'h' }, size: { type: 'string' }, seed: { type: 'string' } },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  const unknown = positionals.filter((name) => !benchmarks.some((b) => b.name === name));
  if (unknown.length > 0) throw new UsageError(`unknown benchmark ${unknown.join(', ')}; choose from ${benchmarks.map((b) => b.name).join(', ')}`);
  return {
    help: values.help === true,
    names: positionals,
    sizeFactor: parseNumberOption(values.size, '--size', (n) => Number.isFinite(n) && n > 0, 1),
    seed: parseNumberOption(values.seed, '--seed', (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, seedDefault),
  };
}

function selectBenchmarks(names: readonly string[]): readonly Benchmark[] {
  return names.length === 0 ? benchmarks : benchmarks.filter((b) => names.includes(b.name));
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const hint = 'hint' in error && typeof error.hint === 'string' && error.hint !== '' ? ` — ${error.hint}` : '';
  return `${error.message}${hint}`;
}

/** bench-results/ beside the bundle's folder: the repository root for dist/bench.cjs and bench/run.ts alike. */
function resultsDir(): string {
  const script = process.argv[1];
  return script ? join(resolve(dirname(script), '..'), 'bench-results') : resolve('bench-results');
}

function exitOnSignals(): void {
  for (const [signal, exitCode] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      removeTempDirsNow();
      process.exit(exitCode);
    });
  }
}

/** Runs each benchmark in turn; one failing does not stop the rest. Returns the names that failed. */
async function runBenchmarks(selected: readonly Benchmark[], options: RunOptions, figures: Figure[]): Promise<string[]> {
  const context: BenchContext = {
    sizeFactor: options.sizeFactor,
    seed: options.seed,
    log: (message) => console.log(`# ${message}`),
    record: (figure) => {
      figures.push(figure);
      console.log(formatBenchLine(figure));
    },
  };
  const failed: string[] = [];
  for (const benchmark of selected) {
    try {
      await benchmark.run(context);
    } catch (error) {
      failed.push(benchmark.name);
      console.error(`bench ${benchmark.name} failed: ${describeError(error)}`);
    }
  }
  return failed;
}

async function main(argv: readonly string[]): Promise<number> {
  const options = parseOptions(argv);
  if (options.help) {
    console.log(usage());
    return 0;
  }
  exitOnSignals();
  const selected = selectBenchmarks(options.names);
  console.log(`# bench: ${selected.map((b) => b.name).join(', ')}; seed ${options.seed}; size ×${options.sizeFactor}; node ${process.version}`);
  const figures: Figure[] = [];
  const failed = await runBenchmarks(selected, options, figures);
  const path = await writeResults(resultsDir(), figures);
  console.log(`# bench: ${figures.length} figures written to ${path}`);
  if (failed.length > 0) console.error(`bench: failed: ${failed.join(', ')}`);
  return failed.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (exitCode) => {
    process.exitCode = exitCode;
  },
  (error: unknown) => {
    removeTempDirsNow();
    if (error instanceof UsageError) {
      console.error(`bench: ${error.message} (see --help)`);
      process.exitCode = 2;
    } else {
      console.error(`bench: ${describeError(error)}`);
      process.exitCode = 1;
    }
  },
);
