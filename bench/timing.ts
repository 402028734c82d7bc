// Wall-clock timing: of in-process work, of peer commands, and of contenders run in interleaved
// rounds so neither side profits from a warmer cache or a quieter moment.

import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export async function elapsedMsOf(work: () => unknown): Promise<number> {
  const startMs = performance.now();
  await work();
  return performance.now() - startMs;
}

/** The p-th percentile (nearest rank) of some samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function minMs(samplesMs: readonly number[]): number {
  if (samplesMs.length === 0) throw new Error('no timing samples');
  return Math.min(...samplesMs);
}

/**
 * The median over rounds of peer time / our time, each round's two runs back to back: our
 * throughput as a fraction of the peer's. On a host whose speed drifts by 2–3× over minutes
 * (a shared VM's steal time) this compares like with like; best-of-N for each side alone
 * compares whichever quiet moment each happened to get.
 */
export function pairedRatio(oursMs: readonly number[], peerMs: readonly number[]): number {
  if (oursMs.length === 0 || oursMs.length !== peerMs.length) throw new Error(`paired samples: ${oursMs.length} against ${peerMs.length}`);
  const ratios = oursMs.map((ms, i) => peerMs[i]! / ms).sort((a, b) => a - b);
  const middle = ratios.length >> 1;
  return ratios.length % 2 === 1 ? ratios[middle]! : (ratios[middle - 1]! + ratios[middle]!) / 2;
}

/**
 * Runs every contender once per round, `rounds` times, in the order given; returns each
 * contender's elapsed times. The caller takes the best (minimum) of each, for both sides alike.
 */
export async function measureRounds<Name extends string>(rounds: number, contenders: Readonly<Record<Name, () => unknown>>): Promise<Record<Name, number[]>> {
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds ${rounds} must be a positive integer`);
  const names = Object.keys(contenders) as Name[];
  const samplesMs = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<Name, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (const name of names) samplesMs[name].push(await elapsedMsOf(contenders[name]));
  }
  return samplesMs;
}

/** Runs `command args` with output discarded; resolves on exit 0, rejects (with its stderr) otherwise. */
export function runCommand(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderrChunks: Buffer[] = [];
    child.stderr.on('data', (chunk: Buffer) => stderrChunks.push(chunk));
    child.once('error', (error: NodeJS.ErrnoException) => {
      const hint = error.code === 'ENOENT' ? ` (install it: ${command} is in coreutils)` : '';
      reject(new Error(`cannot run ${command}: ${error.message}${hint}`));
    });
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      const stderr = Buffer.concat(stderrChunks).toString('utf8').trim();
      reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr}`));
    });
  });
}
