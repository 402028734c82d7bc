// When a tracked primary was last written, durably to within a second (docs/failover.md
// "Split brain"): failback compares it with the failover's instant to tell writes the old
// primary acknowledged before it was lost (copied over, as --force warned) from writes it took
// as a primary after the failover (split brain: a person chooses). A write waits for the
// record only when the persisted time is a second or more behind, so the cost is at most one
// small synced write per second of activity.

import { open, type FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../errors';

const granularityMs = 1_000;

export class LastWriteClock {
  private latestMs = 0;
  private pending: Promise<void> | undefined;

  private constructor(
    private readonly handle: FileHandle,
    private persistedMs: number,
  ) {}

  static async open(path: string): Promise<LastWriteClock> {
    try {
      await (await open(path, 'a', 0o600)).close(); // created if missing; written in place below (not in append mode)
      const handle = await open(path, 'r+');
      const buffer = Buffer.alloc(8);
      const { bytesRead } = await handle.read(buffer, 0, 8, 0);
      const persisted = bytesRead === 8 ? buffer.readDoubleLE(0) : 0;
      return new LastWriteClock(handle, Number.isFinite(persisted) && persisted > 0 ? persisted : 0);
    } catch (error) {
      throw fromSystemError(error, 'open the last-write record', path);
    }
  }

  /** The latest write's time (ms since the epoch), persisted or not; null when never written. */
  get lastWriteAtMs(): number | null {
    const ms = Math.max(this.latestMs, this.persistedMs);
    return ms > 0 ? ms : null;
  }

  /** record()'s fast path: notes the write and answers true when the record is within a second of it already (false: call record). */
  tryRecord(nowMs: number): boolean {
    this.latestMs = Math.max(this.latestMs, nowMs);
    return this.pending === undefined && nowMs - this.persistedMs < granularityMs;
  }

  /** Records a write happening now; resolves once the record is within a second of it, durably. */
  async record(nowMs = Date.now()): Promise<void> {
    this.latestMs = Math.max(this.latestMs, nowMs);
    if (this.pending) await this.pending;
    if (nowMs - this.persistedMs < granularityMs) return;
    // persistedMs moves only once the record is durable: after a failed sync the next write tries again.
    this.pending = this.persist(nowMs)
      .then(() => {
        this.persistedMs = Math.max(this.persistedMs, nowMs);
      })
      .finally(() => (this.pending = undefined));
    await this.pending;
  }

  private async persist(ms: number): Promise<void> {
    const buffer = Buffer.alloc(8);
    buffer.writeDoubleLE(ms, 0);
    // 8 bytes in place within one sector: a crash leaves the old time or the new one.
    await this.handle.write(buffer, 0, 8, 0);
    await this.handle.datasync();
  }

  async close(): Promise<void> {
    await this.pending?.catch(() => undefined);
    await this.handle.close();
  }
}
