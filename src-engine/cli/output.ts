// How the CLI speaks: results on stdout (text or one JSON document), errors as one line on
// stderr, progress as a bar with rate and ETA on a TTY.

import { isTidemarkError, type TidemarkError } from '../errors';
import { formatDurationMs, ProgressMeter } from '../progress';
import { formatBytes } from '../size';

export interface GlobalOptions {
  home?: string;
  json?: boolean;
  quiet?: boolean;
  acceptNewHostKey?: boolean;
}

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
}

export const exitCodes = { ok: 0, failed: 1, usage: 2 } as const;

/** Thrown by a command whose result is printed but whose exit code is not 0 (verify: volumes differ). */
export class ExitStatus extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

export function exitCodeFor(error: TidemarkError): number {
  return error.code === 'USAGE' ? exitCodes.usage : exitCodes.failed;
}

/** One line naming what failed, why and what to do; the stack only with TIDEMARK_DEBUG=1. */
export function reportError(io: Io, error: unknown): number {
  const debug = io.env.TIDEMARK_DEBUG === '1';
  if (isTidemarkError(error)) {
    io.stderr.write(`tidemark: ${error.oneLine()}\n`);
    if (debug && error.stack) io.stderr.write(`${error.stack}\n`);
    return exitCodeFor(error);
  }
  const message = error instanceof Error ? error.message : String(error);
  io.stderr.write(`tidemark: unexpected error: ${message.split('\n')[0]} — run again with TIDEMARK_DEBUG=1 and report it\n`);
  if (debug && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
  return exitCodes.failed;
}

export function printResult(io: Io, options: GlobalOptions, json: unknown, text: () => string): void {
  if (options.json) io.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else if (!options.quiet) io.stdout.write(`${text()}\n`);
}

/** One status line redrawn on stderr when it is a TTY (and not --quiet / --json), at most 10 times a second. */
export class StatusLine {
  private readonly enabled: boolean;
  private lastDrawMs = 0;
  private drawn = false;

  constructor(
    private readonly io: Io,
    options: GlobalOptions,
  ) {
    this.enabled = Boolean(io.stderr.isTTY) && !options.quiet && !options.json;
  }

  draw(text: () => string, force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.lastDrawMs < 100) return;
    this.lastDrawMs = now;
    this.drawn = true;
    this.io.stderr.write(`\r${text()}\x1b[K`);
  }

  finish(): void {
    if (this.enabled && this.drawn) this.io.stderr.write('\n');
  }
}

/** `[#####...]` for a fraction in [0, 1]. */
export function bar(fraction: number, width = 24): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/** A progress bar on stderr when it is a TTY (and not --quiet / --json); silent otherwise. */
export class ProgressBar {
  private readonly meter: ProgressMeter;
  private readonly enabled: boolean;
  private lastDrawMs = 0;

  constructor(
    private readonly io: Io,
    options: GlobalOptions,
    private readonly label: string,
    total: number,
    private readonly unit: 'bytes' | 'regions',
  ) {
    this.meter = new ProgressMeter(total);
    this.enabled = Boolean(io.stderr.isTTY) && !options.quiet && !options.json;
  }

  update(done: number): void {
    const snapshot = this.meter.update(done);
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.lastDrawMs < 100 && done < snapshot.total) return;
    this.lastDrawMs = now;
    const width = 24;
    const fraction = snapshot.total === 0 ? 1 : snapshot.done / snapshot.total;
    const filled = Math.round(fraction * width);
    const amount = this.unit === 'bytes' ? `${formatBytes(snapshot.done)}/${formatBytes(snapshot.total)}` : `${snapshot.done}/${snapshot.total} regions`;
    const rate = this.unit === 'bytes' ? `${formatBytes(snapshot.ratePerSecond)}/s` : `${snapshot.ratePerSecond.toFixed(0)} regions/s`;
    const eta = snapshot.etaMs === undefined ? '--' : formatDurationMs(snapshot.etaMs);
    this.io.stderr.write(
      `\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${amount} ${rate} ETA ${eta}\x1b[K`,
    );
  }

  finish(): void {
    if (this.enabled) this.io.stderr.write('\n');
  }
}

/** Ctrl-C (SIGINT) and SIGTERM cancel `work` cleanly through its AbortSignal; a second Ctrl-C is the default (exit). */
export async function cancellable<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
