// The agent's NBD exports (docs/nbd.md): a server per export, in the process that owns the
// volume, so every write runs the volume's hooks (MOOS tracking before the data lands).

import { randomUUID } from 'node:crypto';
import { TidemarkError } from '../errors';
import { NbdServer, volumeNbdExport } from '../nbd';
import type { NbdExportInfo, NbdExportOptions } from './agent-api';
import type { AgentVolume } from './agent-volume';

/** The metadata context of a primary's out-of-sync regions (as qemu names its dirty bitmaps). */
export const oosContextName = 'qemu:dirty-bitmap:tidemark-oos';

interface Entry {
  readonly info: Omit<NbdExportInfo, 'connections'>;
  /** The volume's key in the agent: its exports stop when it closes. */
  readonly volumeKey: string;
  readonly server: NbdServer;
}

export class NbdExports {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly log: (line: string) => void = () => undefined) {}

  async start(volume: AgentVolume, volumeKey: string, options: NbdExportOptions): Promise<NbdExportInfo> {
    const v = volume.opened.volume;
    const lock = v.lockedBy;
    if (!options.readOnly && lock) throw new TidemarkError('PERMISSION', lock.message, `export it read-only, or ${lock.hint}`);
    const tracker = options.pairId === undefined ? undefined : volume.trackers?.get(options.pairId);
    const realized = volume.opened.realized;
    const nbdExport = volumeNbdExport(v, {
      name: options.name,
      readOnly: options.readOnly,
      ...(realized ? { allocated: () => realized.bitmap.bits } : {}),
      ...(tracker ? { dirty: { name: oosContextName, bits: () => tracker.oos.clone().unionWith(tracker.predictor.inFlight) } } : {}),
    });
    const server = new NbdServer([nbdExport], { onError: (error) => this.log(`nbd ${options.name}: ${error.message}`) });
    const listening = await server.listen(options.target);
    const exportId = randomUUID();
    const address = { ...listening };
    const uri =
      listening.socketPath !== undefined
        ? `nbd+unix:///${encodeURIComponent(options.name)}?socket=${listening.socketPath}`
        : `nbd://${listening.host?.includes(':') ? `[${listening.host}]` : listening.host}:${listening.port}/${encodeURIComponent(options.name)}`;
    const info = { exportId, name: options.name, path: v.path, readOnly: options.readOnly, address, uri };
    this.entries.set(exportId, { info, volumeKey, server });
    return { ...info, connections: 0 };
  }

  async stop(exportId: string): Promise<void> {
    const entry = this.entries.get(exportId);
    if (!entry) throw new TidemarkError('NOT_FOUND', `no NBD export ${exportId} on this agent`, 'list the exports; it may have stopped already');
    this.entries.delete(exportId);
    await entry.server.close();
  }

  list(): NbdExportInfo[] {
    return [...this.entries.values()].map((e) => ({ ...e.info, connections: e.server.connectionCount }));
  }

  /** Stops the exports of a volume that is closing. */
  async stopVolume(volumeKey: string): Promise<void> {
    for (const [exportId, entry] of this.entries) if (entry.volumeKey === volumeKey) await this.stop(exportId);
  }

  async stopAll(): Promise<void> {
    for (const exportId of [...this.entries.keys()]) await this.stop(exportId);
  }
}
