// The in-process agent: AgentApi over this machine's volumes in one home. Volumes are opened
// on first use and kept open (their write hooks stay attached) until dispose.

import { hostname } from 'node:os';
import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { assert } from '../assert';
import { TidemarkError, fromSystemError } from '../errors';
import { SignaturePool, type HashAlgorithm } from '../signature';
import { VolumeCatalog, zeroScanRealized, type OpenedVolume, type VolumeInfo, type VolumeRecord } from '../volume';
import { tidemarkVersion } from '../version';
import type { AgentApi, AgentInfo, RealizedMap, RegionData, RegionSignatures } from './agent-api';

export class LocalAgent implements AgentApi {
  private readonly catalog: VolumeCatalog;
  private readonly opened = new Map<string, Promise<OpenedVolume>>();
  private readonly pools = new Map<HashAlgorithm, Promise<SignaturePool>>();
  private disposed = false;

  constructor(readonly homeDir: string) {
    this.catalog = new VolumeCatalog(homeDir);
  }

  async info(): Promise<AgentInfo> {
    return { agentVersion: tidemarkVersion, nodeVersion: process.versions.node, hostname: hostname(), homeDir: this.homeDir, pid: process.pid };
  }

  async volumeCreate(path: string, sizeBytes: number, regionBytes: number): Promise<VolumeRecord> {
    return this.catalog.create(path, sizeBytes, regionBytes);
  }

  async volumeInfo(path: string, options: { regionBytes?: number } = {}): Promise<VolumeInfo> {
    const canonical = await realpath(resolve(path)).catch(() => resolve(path));
    const open = this.opened.get(canonical);
    if (!open) return this.catalog.info(path, options);
    const { volume, record, realized } = await open;
    const realizedRegions = realized ? realized.bitmap.bits.popcount() : (await zeroScanRealized(volume)).popcount();
    return {
      path: record?.path ?? volume.path,
      kind: volume.backend.kind,
      volumeId: record?.volumeId ?? null,
      sizeBytes: volume.sizeBytes,
      regionBytes: volume.regionBytes,
      regions: volume.regionCount,
      realizedRegions,
      realizedSource: realized ? 'tracked' : 'zero-scan',
    };
  }

  /** One open Volume per file, whatever path names it: two would each own the realization map. */
  private async open(path: string): Promise<OpenedVolume> {
    assert(!this.disposed, 'agent used after dispose');
    const key = await realpath(resolve(path)).catch((error: unknown) => {
      throw fromSystemError(error, 'open volume', path);
    });
    let open = this.opened.get(key);
    if (!open) {
      open = this.catalog.open(key);
      this.opened.set(key, open);
      open.catch(() => this.opened.delete(key));
    }
    return open;
  }

  private checkRegions(opened: OpenedVolume, firstRegion: number, regionCount: number): void {
    const total = opened.volume.regionCount;
    if (!Number.isSafeInteger(firstRegion) || !Number.isSafeInteger(regionCount) || firstRegion < 0 || regionCount < 0 || firstRegion + regionCount > total) {
      throw new TidemarkError(
        'USAGE',
        `regions [${firstRegion}, ${firstRegion + regionCount}) are outside ${opened.volume.path} (${total} regions)`,
        'ask for regions within the volume',
      );
    }
  }

  async *readRegions(path: string, firstRegion: number, regionCount: number, options: { signal?: AbortSignal } = {}): AsyncIterable<RegionData> {
    const opened = await this.open(path);
    this.checkRegions(opened, firstRegion, regionCount);
    for (let r = firstRegion; r < firstRegion + regionCount; r++) {
      if (options.signal?.aborted) throw new TidemarkError('CANCELLED', `reading ${path} cancelled`, '');
      yield { regionIndex: r, data: await opened.volume.readRegion(r) };
    }
  }

  async writeRegion(path: string, regionIndex: number, data: Uint8Array): Promise<void> {
    const opened = await this.open(path);
    this.checkRegions(opened, regionIndex, 1);
    await opened.volume.writeRegion(regionIndex, data);
  }

  async flush(path: string): Promise<void> {
    await (await this.open(path)).volume.flush();
  }

  async realizedMap(path: string): Promise<RealizedMap> {
    const { volume, realized } = await this.open(path);
    const bits = realized ? realized.snapshot() : await zeroScanRealized(volume);
    return { regionCount: bits.bitCount, words: bits.words, source: realized ? 'tracked' : 'zero-scan' };
  }

  private pool(hash: HashAlgorithm): Promise<SignaturePool> {
    let pool = this.pools.get(hash);
    if (!pool) {
      pool = SignaturePool.start(hash);
      this.pools.set(hash, pool);
      pool.catch(() => this.pools.delete(hash));
    }
    return pool;
  }

  async *signatures(
    path: string,
    hash: HashAlgorithm,
    firstRegion: number,
    regionCount: number,
    options: { signal?: AbortSignal } = {},
  ): AsyncIterable<RegionSignatures> {
    const opened = await this.open(path);
    this.checkRegions(opened, firstRegion, regionCount);
    const { volume } = opened;
    function* items() {
      for (let r = firstRegion; r < firstRegion + regionCount; r++) yield { regionIndex: r, location: { path: volume.path, ...volume.geometry.region(r) } };
    }
    const pool = await this.pool(hash);
    for await (const batch of pool.sign(items(), { signal: options.signal })) yield { regionIndexes: batch.regionIndexes, signatures: batch.signatures };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const open of this.opened.values()) await (await open.catch(() => undefined))?.close();
    for (const pool of this.pools.values()) await (await pool.catch(() => undefined))?.dispose();
    this.opened.clear();
    this.pools.clear();
  }
}
