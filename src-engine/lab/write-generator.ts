// The lab's write generator: writes through the engine (so tracking sees every write) at a
// set rate, in a random, sequential or hot-spot pattern, from a seeded PRNG.

import { assert } from '../assert';
import { TidemarkError } from '../errors';
import { seededFractions } from '../random';
import type { Volume } from '../volume';

export const writePatterns = ['random', 'sequential', 'hot-spot'] as const;
export type WritePattern = (typeof writePatterns)[number];

export interface GeneratorSettings {
  readonly pattern: WritePattern;
  readonly writesPerSecond: number;
  readonly writeBytes: number;
  readonly seed: number;
}

export interface GeneratorState {
  readonly running: boolean;
  readonly settings: GeneratorSettings;
  readonly writes: number;
  readonly bytesWritten: number;
  readonly lastError: string | null;
}

export const generatorLimits = { writesPerSecondMax: 5000, writeBytesMin: 512, writeBytesMax: 4 * 1024 * 1024 } as const;
const tickMs = 20;
/** The hot spot: this fraction of writes lands in this fraction of the volume. */
const hotWriteFraction = 0.9;
const hotSpanFraction = 0.05;

export const generatorDefaults: GeneratorSettings = { pattern: 'random', writesPerSecond: 200, writeBytes: 64 * 1024, seed: 1 };

export function validateGeneratorSettings(settings: GeneratorSettings): void {
  const ok =
    Number.isFinite(settings.writesPerSecond) &&
    settings.writesPerSecond > 0 &&
    settings.writesPerSecond <= generatorLimits.writesPerSecondMax &&
    Number.isInteger(settings.writeBytes) &&
    settings.writeBytes >= generatorLimits.writeBytesMin &&
    settings.writeBytes <= generatorLimits.writeBytesMax;
  if (!ok) {
    throw new TidemarkError(
      'USAGE',
      `invalid write generator settings: ${settings.writesPerSecond} writes/s of ${settings.writeBytes} bytes`,
      `use 1 to ${generatorLimits.writesPerSecondMax} writes/s and ${generatorLimits.writeBytesMin} bytes to 4 MiB per write`,
    );
  }
}

export class WriteGenerator {
  private settings: GeneratorSettings = generatorDefaults;
  private running = false;
  private writes = 0;
  private bytesWritten = 0;
  private lastError: string | null = null;
  private loop: Promise<void> | undefined;
  /** Each loop runs only while the token is its own: a stale loop can never outlive a restart. */
  private loopToken = 0;

  constructor(
    private readonly volume: Volume,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  state(): GeneratorState {
    return { running: this.running, settings: this.settings, writes: this.writes, bytesWritten: this.bytesWritten, lastError: this.lastError };
  }

  start(settings: GeneratorSettings): void {
    validateGeneratorSettings(settings);
    assert(settings.writeBytes <= this.volume.sizeBytes, 'a generated write fits in the volume');
    this.settings = settings;
    if (this.running) return; // new settings apply from the next tick
    this.running = true;
    this.lastError = null;
    this.loop = this.run(++this.loopToken);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.loopToken += 1; // the current loop ends at its next check, even if start() follows at once
    const loop = this.loop;
    await loop;
    if (this.loop === loop) this.loop = undefined;
  }

  private async run(token: number): Promise<void> {
    const random = seededFractions(this.settings.seed);
    const data = Buffer.alloc(generatorLimits.writeBytesMax);
    let cursorBytes = 0;
    let startedMs = this.nowMs();
    let dueWrites = 0;
    let settings = this.settings;
    while (this.running && token === this.loopToken) {
      if (settings !== this.settings) {
        settings = this.settings;
        startedMs = this.nowMs();
        dueWrites = 0;
      }
      const target = Math.floor(((this.nowMs() - startedMs) / 1000) * settings.writesPerSecond);
      // Bounded catch-up: never more than one second of writes in one tick.
      const batch = Math.min(target - dueWrites, Math.ceil(settings.writesPerSecond));
      for (let i = 0; i < batch && this.running && token === this.loopToken; i++) {
        const offsetBytes = this.nextOffset(settings, random, cursorBytes);
        cursorBytes = offsetBytes + settings.writeBytes;
        const payload = data.subarray(0, settings.writeBytes);
        payload.writeUInt32LE(this.writes, 0);
        payload.writeUInt32LE((random() * 2 ** 32) >>> 0, 4);
        try {
          await this.volume.write(offsetBytes, payload);
          this.writes += 1;
          this.bytesWritten += payload.length;
        } catch (error) {
          this.lastError = error instanceof TidemarkError ? error.oneLine() : String(error);
          this.running = false;
        }
      }
      dueWrites = target;
      await new Promise((resolve) => setTimeout(resolve, tickMs));
    }
  }

  private nextOffset(settings: GeneratorSettings, random: () => number, cursorBytes: number): number {
    const alignBytes = 4096;
    const spanBytes = this.volume.sizeBytes - settings.writeBytes;
    const aligned = (bytes: number) => Math.min(spanBytes, Math.floor(bytes / alignBytes) * alignBytes);
    switch (settings.pattern) {
      case 'sequential':
        return cursorBytes > spanBytes ? 0 : aligned(cursorBytes);
      case 'hot-spot': {
        const hotStart = spanBytes * 0.3;
        if (random() < hotWriteFraction) return aligned(hotStart + random() * spanBytes * hotSpanFraction);
        return aligned(random() * spanBytes);
      }
      default:
        return aligned(random() * spanBytes);
    }
  }
}
