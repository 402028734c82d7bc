// The in-process agent: AgentApi over this machine's volumes in one home. Volumes are opened
// on first use and kept open (their write hooks — realization, snapshots' copy-on-write,
// change maps — stay attached) until dispose.

import { hostname } from 'node:os';
import { realpath, statfs } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { assert } from '../assert';
import { runsOf } from '../bitmap';
import { agentReadAheadBytes, agentReadAheadRegionsMax } from '../constants';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { SignaturePool, type HashAlgorithm } from '../signature';
import { checkSnapshotLabel, signSnapshotBatches, type Snapshot } from '../snapshot';
import { VolumeCatalog, zeroScanRealized, type OpenedVolume, type VolumeInfo, type VolumeRecord } from '../volume';
import type { WriteTracker } from '../tracking';
import { tidemarkVersion } from '../version';
import type {
  AgentApi,
  AgentInfo,
  BitmapContents,
  BitmapInfo,
  ReadOptions,
  RealizedMap,
  RegionData,
  RegionSignatures,
  SnapshotInfo,
  SnapshotList,
  SnapshotGroupItem,
  SnapshotGroupHold,
  SnapshotGroupPrepareOptions,
  NbdExportInfo,
  NbdExportOptions,
  TrackingMapKind,
  TrackingState,
  VolumeState,
  WriteAuth,
  PeerShipOptions,
  PeerShipResult,
  PeerStatus,
  RoleChangeResult,
} from './agent-api';
import { changeMapsOf, closeAgentVolume, membersOf, openAgentVolume, snapshotsOf, stagingOf, trackersOf, type AgentVolume } from './agent-volume';
import { GroupHolds } from './group-holds';
import { NbdExports } from './nbd-exports';
import { authorizedKeysLine, authorizedKeysPath, peerAuthorize, peerRevoke, type PeerTarget } from './peer-keys';
import { PeerLinks, type PeerLinkOpener } from './peer-links';
import { roleEventSchema, type ImportMarker, type PairMember, type PairMemberChange, type RoleEvent } from './pair-members';
import { changeRole } from './role-change';

/** Labels of image export snapshots: `tidemark-export <imageId>` (docs/image-format.md). */
export const exportSnapshotLabelPrefix = 'tidemark-export ';

/** Free bytes on the filesystem of `directory`, or of its nearest existing parent (a home not made yet). */
async function freeBytesAt(directory: string): Promise<number> {
  for (let path = resolve(directory); ; path = dirname(path)) {
    try {
      const stats = await statfs(path);
      assert(Number.isSafeInteger(stats.bavail * stats.bsize), 'free bytes are a safe integer');
      return stats.bavail * stats.bsize;
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT' || dirname(path) === path) throw fromSystemError(error, 'measure the free space of', directory);
    }
  }
}

function snapshotInfo(snapshot: Snapshot, regionCount: number): SnapshotInfo {
  const { record } = snapshot;
  const createdAtMs = Date.parse(record.createdAt);
  assert(Number.isFinite(createdAtMs), `snapshot ${record.snapshotId} has a valid creation time`);
  return {
    snapshotId: record.snapshotId,
    kind: record.kind,
    label: record.label,
    createdAtMs,
    sizeBytes: record.sizeBytes,
    regionBytes: record.regionBytes,
    regionCount,
    copiedRegions: snapshot.copiedRegions() ?? null,
  };
}

function* regionRange(firstRegion: number, regionCount: number): Generator<number> {
  for (let r = firstRegion; r < firstRegion + regionCount; r++) yield r;
}

/** The key a volume is held under: its real path, or the path as given when it does not exist (yet). */
const canonicalPath = (path: string) => realpath(resolve(path)).catch(() => resolve(path));

export interface LocalAgentOptions {
  /** What the owning process is (AgentInfo.purpose). */
  readonly purpose?: string;
  /** Opens SSH links for direct shipping (src-engine/ssh's sshPeerLinks); absent: peerShip is UNSUPPORTED. */
  readonly peerLinks?: PeerLinkOpener;
  /** The command that runs this agent's CLI (a per-pair key's forced command starts with it); default: this process's node and script. */
  readonly agentArgv?: readonly string[];
}

/** This process's node and script, when it is the tidemark CLI or agent bundle (not the console's Electron). */
function defaultAgentArgv(): readonly string[] {
  const script = process.argv[1];
  if (process.versions.electron || !script || !isAbsolute(script))
    throw new TidemarkError(
      'UNSUPPORTED',
      'this agent runs inside another program and cannot name itself in a forced command',
      'run the host agent with `tidemark agent serve`',
    );
  return [process.execPath, script];
}

export class LocalAgent implements AgentApi {
  private readonly catalog: VolumeCatalog;
  private readonly opened = new Map<string, Promise<AgentVolume>>();
  /** Canonical paths being retired (closed and removed): nobody may open them meanwhile. */
  private readonly retiring = new Set<string>();
  private readonly pools = new Map<HashAlgorithm, Promise<SignaturePool>>();
  private readonly nbd = new NbdExports();
  private readonly holds = new GroupHolds();
  private readonly peers: PeerLinks;
  private disposed = false;

  constructor(
    readonly homeDir: string,
    private readonly options: LocalAgentOptions = {},
  ) {
    this.catalog = new VolumeCatalog(homeDir);
    this.peers = new PeerLinks(homeDir, options.peerLinks);
  }

  async info(): Promise<AgentInfo> {
    return {
      agentVersion: tidemarkVersion,
      nodeVersion: process.versions.node,
      hostname: hostname(),
      homeDir: this.homeDir,
      homeFreeBytes: await freeBytesAt(this.homeDir),
      pid: process.pid,
      purpose: this.options.purpose ?? 'agent',
      clockMs: Date.now(),
    };
  }

  async volumeCreate(path: string, sizeBytes: number, regionBytes: number): Promise<VolumeRecord> {
    // Fenced like a removal: a client opening the new file before its record is written would
    // hold it open unregistered (no realization tracking, no snapshots or pair records).
    return this.retire([path], () => this.catalog.create(path, sizeBytes, regionBytes));
  }

  async volumeList(): Promise<VolumeRecord[]> {
    return this.catalog.list();
  }

  async volumeInfo(path: string, options: { regionBytes?: number } = {}): Promise<VolumeInfo> {
    const canonical = await canonicalPath(path);
    const open = this.opened.get(canonical);
    if (!open) return this.catalog.info(path, options);
    const { volume, record, realized } = (await open).opened;
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

  async volumeAdopt(path: string, regionBytes: number): Promise<VolumeRecord> {
    const key = await realpath(resolve(path)).catch((error: unknown) => {
      throw fromSystemError(error, 'adopt volume', path);
    });
    const registered = await this.catalog.lookup(key);
    if (registered) return this.catalog.adopt(key, regionBytes); // checks the region size
    // Opened unregistered (no hooks): closed, so it is reopened with its new realization tracking.
    return this.retire([key], () => this.catalog.adopt(key, regionBytes));
  }

  /** One open Volume per file, whatever path names it: two would each own the realization map. */
  private async open(path: string): Promise<AgentVolume> {
    assert(!this.disposed, 'agent used after dispose');
    const key = await realpath(resolve(path)).catch((error: unknown) => {
      throw fromSystemError(error, 'open volume', path);
    });
    if (this.retiring.has(key)) {
      throw new TidemarkError('BUSY', `volume ${path} is being created or removed right now`, 'wait a moment and try again');
    }
    let open = this.opened.get(key);
    if (!open) {
      open = openAgentVolume(this.catalog, key);
      this.opened.set(key, open);
      open.catch(() => this.opened.delete(key));
    }
    return open;
  }

  /**
   * The open volume behind a path, for an in-process owner (the Engine's tracking and lab):
   * its writes go through the same volume, hooks and records as the agent's own.
   */
  async openedVolume(path: string): Promise<OpenedVolume> {
    return (await this.open(path)).opened;
  }

  /** The write tracker of a pair on its primary, for an in-process owner (the Engine's heatmaps and lab). */
  async pairTracker(path: string, pairId: string): Promise<WriteTracker> {
    return trackersOf(await this.open(path), this.homeDir).get(pairId);
  }

  /**
   * Closes these volumes and runs `work` (which removes their files) while nobody can open
   * them: a client of the socket arriving meanwhile gets BUSY, never the file being deleted.
   */
  async retire<T>(paths: readonly string[], work: () => Promise<T>): Promise<T> {
    const keys = await Promise.all(paths.map(canonicalPath));
    keys.forEach((key) => this.retiring.add(key));
    try {
      for (const key of keys) await this.closeKey(key);
      return await work();
    } finally {
      keys.forEach((key) => this.retiring.delete(key));
    }
  }

  private async closeKey(key: string): Promise<void> {
    const open = this.opened.get(key);
    if (!open) return;
    await this.nbd.stopVolume(key);
    this.opened.delete(key);
    const volume = await open.catch(() => undefined);
    if (volume) await closeAgentVolume(volume);
  }

  private checkRegions({ opened }: AgentVolume, firstRegion: number, regionCount: number): void {
    const total = opened.volume.regionCount;
    if (!Number.isSafeInteger(firstRegion) || !Number.isSafeInteger(regionCount) || firstRegion < 0 || regionCount < 0 || firstRegion + regionCount > total) {
      throw new TidemarkError(
        'USAGE',
        `regions [${firstRegion}, ${firstRegion + regionCount}) are outside ${opened.volume.path} (${total} regions)`,
        'ask for regions within the volume',
      );
    }
  }

  /**
   * Reads a region of the volume, or of snapshot `snapshotId`. A snapshot deleted meanwhile
   * fails the read that was running and every one after it (NOT_FOUND, Snapshot.checkOpen).
   */
  private regionReader(volume: AgentVolume, snapshotId: string | undefined): (regionIndex: number) => Promise<Uint8Array> {
    if (snapshotId === undefined) return (r) => volume.opened.volume.readRegion(r);
    const snapshot = snapshotsOf(volume, this.homeDir).get(snapshotId); // fails before the first region when there is no such snapshot
    return (r) => snapshot.readRegion(r);
  }

  async *readRegions(path: string, firstRegion: number, regionCount: number, options: ReadOptions = {}): AsyncIterable<RegionData> {
    const volume = await this.open(path);
    this.checkRegions(volume, firstRegion, regionCount);
    const read = this.regionReader(volume, options.snapshotId);
    const skip = this.skipper(volume, options);
    // Read ahead a few regions (bounded in bytes) so the file read of the next region overlaps
    // sending this one; a failed read-ahead surfaces when its turn comes.
    const aheadMax = Math.max(1, Math.min(agentReadAheadRegionsMax, Math.floor(agentReadAheadBytes / volume.opened.volume.regionBytes)));
    // A region's mark is checked just before its read is issued: a write after the check marks
    // it, so it is sent again later (tardy sync's rounds), never lost.
    const ahead: { regionIndex: number; data: Promise<Uint8Array> }[] = [];
    let next = firstRegion;
    const end = firstRegion + regionCount;
    for (;;) {
      if (options.signal?.aborted) throw new TidemarkError('CANCELLED', `reading ${path} cancelled`, '');
      while (next < end && ahead.length <= aheadMax) {
        const regionIndex = next++;
        if (skip(regionIndex)) continue;
        const data = read(regionIndex);
        data.catch(() => undefined); // awaited below in order; never an unhandled rejection
        ahead.push({ regionIndex, data });
      }
      const head = ahead.shift();
      if (!head) return;
      yield { regionIndex: head.regionIndex, data: await head.data };
    }
  }

  /** Whether a region is to be skipped (ReadOptions.skipMarked). */
  private skipper(volume: AgentVolume, options: ReadOptions): (regionIndex: number) => boolean {
    const name = options.skipMarked;
    if (name === undefined) return () => false;
    if (options.snapshotId !== undefined) {
      throw new TidemarkError('USAGE', 'skipMarked applies to live reads, not to reads from a snapshot', 'ask for one or the other');
    }
    const maps = changeMapsOf(volume, this.homeDir);
    maps.marked(name, 0); // fails now, before the first region, when there is no such map
    return (r) => maps.marked(name, r);
  }

  async writeRegion(path: string, regionIndex: number, data: Uint8Array, options: { auth?: WriteAuth } = {}): Promise<void> {
    const volume = await this.open(path);
    this.checkRegions(volume, regionIndex, 1);
    if (options.auth) this.checkCurrentGeneration(volume, options.auth);
    await volume.opened.volume.writeRegion(regionIndex, data, options.auth);
  }

  async reclaimRegions(path: string, firstRegion: number, regionCount: number, options: { auth?: WriteAuth } = {}): Promise<{ punched: boolean }> {
    const volume = await this.open(path);
    this.checkRegions(volume, firstRegion, regionCount);
    if (regionCount === 0) return { punched: false };
    const { volume: v, realized } = volume.opened;
    const punched = await v.reclaim(firstRegion, firstRegion + regionCount, options.auth, async () => {
      // Writes are held here, as when a snapshot is taken: an export snapshot either exists now or sees the zeros.
      if (!this.isExporting(volume)) await realized?.markReclaimed(firstRegion, firstRegion + regionCount - 1);
    });
    return { punched };
  }

  /**
   * An image export reads the live realization map as a superset of the regions holding data at
   * its snapshot (docs/image-format.md). Only a reclaim clears a bit, so while an export snapshot
   * exists a reclaim leaves the bits set (zeros that read as realized: still a superset).
   */
  private isExporting(volume: AgentVolume): boolean {
    return volume.snapshots?.list().snapshots.some((s) => s.record.label.startsWith(exportSnapshotLabelPrefix)) ?? false;
  }

  async flush(path: string): Promise<void> {
    await (await this.open(path)).opened.volume.flush();
  }

  async realizeRegions(path: string, regionIndexes: readonly number[], options: { auth?: WriteAuth } = {}): Promise<void> {
    const volume = await this.open(path);
    for (const r of regionIndexes) this.checkRegions(volume, r, 1);
    volume.opened.volume.checkWriteLock(options.auth);
    await volume.opened.realized?.markWritten(regionIndexes);
  }

  async realizedMap(path: string): Promise<RealizedMap> {
    const { volume, realized } = (await this.open(path)).opened;
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

  async *signatures(path: string, hash: HashAlgorithm, firstRegion: number, regionCount: number, options: ReadOptions = {}): AsyncIterable<RegionSignatures> {
    const opened = await this.open(path);
    this.checkRegions(opened, firstRegion, regionCount);
    // Held for the whole stream: signSnapshotBatches fails it if the snapshot is deleted meanwhile.
    const snapshot = options.snapshotId === undefined ? undefined : snapshotsOf(opened, this.homeDir).get(options.snapshotId);
    const { volume } = opened.opened;
    function* items() {
      for (const r of regionRange(firstRegion, regionCount)) yield { regionIndex: r, location: { path: volume.path, ...volume.geometry.region(r) } };
    }
    const pool = await this.pool(hash);
    const batches = snapshot
      ? signSnapshotBatches(pool, snapshot, regionRange(firstRegion, regionCount), { signal: options.signal })
      : pool.sign(items(), { signal: options.signal });
    for await (const batch of batches) yield { regionIndexes: batch.regionIndexes, signatures: batch.signatures };
  }

  async snapshotCreate(path: string, options: { label?: string; rotateMaps?: readonly [string, string] } = {}): Promise<SnapshotInfo> {
    const volume = await this.open(path);
    const swap = options.rotateMaps;
    const maps = swap ? changeMapsOf(volume, this.homeDir) : undefined;
    if (swap) maps!.checkSwap(swap[0], swap[1]);
    const snapshot = await snapshotsOf(volume, this.homeDir).create(options.label ?? '', swap ? () => maps!.rotateQuiesced(swap[0], swap[1]) : undefined);
    return snapshotInfo(snapshot, volume.opened.volume.regionCount);
  }

  async snapshotCreateGroup(items: readonly SnapshotGroupItem[]): Promise<SnapshotInfo[]> {
    return this.snapshotGroup(items, async () => undefined); // committed as soon as every member is held
  }

  snapshotGroupPrepare(items: readonly SnapshotGroupItem[], options: SnapshotGroupPrepareOptions): Promise<SnapshotGroupHold> {
    return this.holds.prepare(options.leaseMs, (atHeld) => this.snapshotGroup(items, atHeld));
  }

  snapshotGroupCommit(holdId: string): Promise<SnapshotInfo[]> {
    return this.holds.commit(holdId);
  }

  snapshotGroupAbort(holdId: string): Promise<void> {
    return this.holds.abort(holdId);
  }

  /**
   * The group snapshot of snapshotCreateGroup and of a two-phase hold: every volume's writes
   * held (drained and gated) in one global order, each inside the previous one's hold; then,
   * with all held, `atHeld` — the commit point: it throws to release with nothing taken —
   * and each snapshot taken as the holds unwind, its maps rotated just before it. A failure
   * deletes the snapshots already taken.
   */
  private async snapshotGroup(items: readonly SnapshotGroupItem[], atHeld: () => Promise<void>): Promise<SnapshotInfo[]> {
    const ordered = await this.groupOrder(items);
    const taken: { index: number; snapshot: Snapshot; volume: AgentVolume }[] = [];
    const take = async (i: number): Promise<void> => {
      const o = ordered[i];
      if (!o) return atHeld();
      const rotate = o.item.rotateMaps;
      const snapshot = await snapshotsOf(o.volume, this.homeDir).create(o.item.label ?? '', async () => {
        await take(i + 1); // the later members are held, and taken, while this one's writes are held
        if (rotate) await changeMapsOf(o.volume, this.homeDir).rotateQuiesced(rotate[0], rotate[1]);
      });
      taken.push({ index: o.index, snapshot, volume: o.volume });
    };
    try {
      await take(0);
    } catch (error) {
      for (const t of taken)
        await snapshotsOf(t.volume, this.homeDir)
          .delete(t.snapshot.record.snapshotId)
          .catch(() => undefined);
      throw error;
    }
    assert(taken.length === items.length, 'a group snapshot takes every member');
    return taken.sort((a, b) => a.index - b.index).map((t) => snapshotInfo(t.snapshot, t.volume.opened.volume.regionCount));
  }

  /** The group's volumes opened and checked, in one global order (by canonical path): two groups sharing volumes never each hold one the other waits for. */
  private async groupOrder(items: readonly SnapshotGroupItem[]): Promise<{ item: SnapshotGroupItem; index: number; key: string; volume: AgentVolume }[]> {
    const opened = await Promise.all(
      items.map(async (item, index) => ({ item, index, key: await canonicalPath(item.path), volume: await this.open(item.path) })),
    );
    const ordered = [...opened].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    ordered.forEach((o, i) => {
      if (i > 0 && ordered[i - 1]!.key === o.key)
        throw new TidemarkError('USAGE', `volume ${o.item.path} appears twice in one group snapshot`, 'name each volume once');
      if (o.item.label !== undefined) checkSnapshotLabel(o.item.label);
      if (o.item.rotateMaps) changeMapsOf(o.volume, this.homeDir).checkSwap(o.item.rotateMaps[0], o.item.rotateMaps[1]);
    });
    return ordered;
  }

  async snapshotList(path: string): Promise<SnapshotList> {
    const volume = await this.open(path);
    const { snapshots, damaged } = snapshotsOf(volume, this.homeDir).list();
    return {
      snapshots: snapshots.map((s) => snapshotInfo(s, volume.opened.volume.regionCount)),
      damaged: damaged.map(({ snapshotId, error }) => ({ snapshotId, code: error.code, message: error.message, hint: error.hint })),
    };
  }

  async snapshotDelete(path: string, snapshotId: string): Promise<void> {
    await snapshotsOf(await this.open(path), this.homeDir).delete(snapshotId);
  }

  async bitmapCreate(path: string, name: string): Promise<BitmapInfo> {
    return changeMapsOf(await this.open(path), this.homeDir).create(name);
  }

  async bitmapRead(path: string, name: string): Promise<BitmapContents> {
    const bits = changeMapsOf(await this.open(path), this.homeDir).read(name);
    return { regionCount: bits.bitCount, setCount: bits.popcount(), words: bits.words };
  }

  async bitmapClear(path: string, name: string, regionIndexes?: readonly number[]): Promise<void> {
    await changeMapsOf(await this.open(path), this.homeDir).clear(name, regionIndexes);
  }

  async bitmapMark(path: string, name: string, regionIndexes: readonly number[]): Promise<void> {
    await changeMapsOf(await this.open(path), this.homeDir).mark(name, regionIndexes);
  }

  async bitmapDelete(path: string, name: string): Promise<void> {
    await changeMapsOf(await this.open(path), this.homeDir).delete(name);
  }

  async bitmapList(path: string): Promise<BitmapInfo[]> {
    return changeMapsOf(await this.open(path), this.homeDir).list();
  }

  async bitmapSwap(path: string, a: string, b: string): Promise<void> {
    await changeMapsOf(await this.open(path), this.homeDir).swap(a, b);
  }

  async volumeState(path: string): Promise<VolumeState> {
    const volume = await this.open(path);
    const { record } = volume.opened;
    return {
      path: record?.path ?? volume.opened.volume.path,
      volumeId: record?.volumeId ?? null,
      sizeBytes: volume.opened.volume.sizeBytes,
      regionBytes: record?.regionBytes ?? null,
      members: volume.members?.list() ?? [],
      importing: volume.members?.importing ?? null,
    };
  }

  async pairJoin(path: string, member: PairMember): Promise<PairMember> {
    const volume = await this.open(path);
    const joined = await membersOf(volume, this.homeDir).join(member);
    await trackersOf(volume, this.homeDir).attach(joined);
    return joined;
  }

  async pairUpdate(path: string, pairId: string, change: PairMemberChange): Promise<PairMember> {
    const volume = await this.open(path);
    const member = await membersOf(volume, this.homeDir).update(pairId, change);
    if (change.predictRegions !== undefined && member.role === 'primary')
      trackersOf(volume, this.homeDir).get(pairId).predictor.predictRegions = change.predictRegions;
    return member;
  }

  /**
   * A write carrying a pair's auth is a shipper's: refused (STALE) when the pair has changed
   * roles since it began — on a promoted primary too, which its lock no longer guards.
   */
  private checkCurrentGeneration(volume: AgentVolume, auth: WriteAuth): void {
    const member = volume.members?.get(auth.pairId);
    if (member && member.generation !== auth.generation) {
      throw new TidemarkError(
        'STALE',
        `write to ${volume.opened.volume.path} carries generation ${auth.generation} of pair "${member.name}", which is at generation ${member.generation} here`,
        'the pair changed roles since this operation began (a failover?); check `tidemark pair show` and start again',
      );
    }
  }

  async pairRoleChange(path: string, pairId: string, event: RoleEvent): Promise<RoleChangeResult> {
    const volume = await this.open(path);
    const parsed = roleEventSchema.parse(event);
    // Serialized with the pair's staging: a periodic apply is never cut by a promotion, and a
    // promoted member's staged or sealed cycle, never to be applied, goes with its area.
    const staging = stagingOf(volume, this.homeDir);
    return staging.exclusive(pairId, async () => {
      const result = await changeRole(volume, this.homeDir, pairId, parsed);
      if (result.member.role === 'primary') await staging.discardLocked(pairId);
      return result;
    });
  }

  async trackingMark(path: string, pairId: string, regionIndexes: readonly number[]): Promise<void> {
    const volume = await this.open(path);
    for (const r of regionIndexes) this.checkRegions(volume, r, 1);
    const tracker = trackersOf(volume, this.homeDir).get(pairId);
    for (const [first, count] of runsOf([...regionIndexes].sort((a, b) => a - b))) await tracker.beforeWrite(first, first + count - 1);
  }

  async pairLeave(path: string, pairId: string): Promise<void> {
    const volume = await this.open(path);
    if (volume.members) await volume.members.leave(pairId);
    await volume.trackers?.detach(pairId);
  }

  async stageRegion(path: string, pairId: string, cycle: number, regionIndex: number, data: Uint8Array, options: { auth?: WriteAuth } = {}): Promise<void> {
    const volume = await this.open(path);
    this.checkRegions(volume, regionIndex, 1);
    await stagingOf(volume, this.homeDir).stage(pairId, cycle, regionIndex, data, options.auth);
  }

  async stageApply(path: string, pairId: string, cycle: number, regionIndexes: readonly number[], options: { auth?: WriteAuth } = {}): Promise<void> {
    const volume = await this.open(path);
    for (const r of regionIndexes) this.checkRegions(volume, r, 1);
    await stagingOf(volume, this.homeDir).apply(pairId, cycle, regionIndexes, options.auth);
  }

  async stageSeal(path: string, pairId: string, cycle: number, regionIndexes: readonly number[], options: { auth?: WriteAuth } = {}): Promise<void> {
    const volume = await this.open(path);
    for (const r of regionIndexes) this.checkRegions(volume, r, 1);
    await stagingOf(volume, this.homeDir).seal(pairId, cycle, regionIndexes, options.auth);
  }

  async stageApplySealed(path: string, pairId: string, cycle: number, options: { auth?: WriteAuth } = {}): Promise<void> {
    await stagingOf(await this.open(path), this.homeDir).applySealed(pairId, cycle, options.auth);
  }

  async trackingState(path: string, pairId: string): Promise<TrackingState> {
    return trackersOf(await this.open(path), this.homeDir)
      .get(pairId)
      .state();
  }

  async trackingMap(path: string, pairId: string, which: TrackingMapKind): Promise<BitmapContents> {
    const tracker = trackersOf(await this.open(path), this.homeDir).get(pairId);
    const bits = (which === 'oos' ? tracker.oos : which === 'moos' ? tracker.moosBits : tracker.predictor.inFlight).clone();
    return { regionCount: bits.bitCount, setCount: bits.popcount(), words: bits.words };
  }

  async trackingTake(path: string, pairId: string, regionsMax: number, fromRegion: number): Promise<number[]> {
    const volume = await this.open(path);
    this.checkRegions(volume, fromRegion, 0);
    if (!Number.isSafeInteger(regionsMax) || regionsMax < 1) throw new TidemarkError('USAGE', `cannot take ${regionsMax} regions`, 'take at least one region');
    return trackersOf(volume, this.homeDir).get(pairId).take(regionsMax, fromRegion);
  }

  async trackingSettle(path: string, pairId: string, shipped: readonly number[], failed: readonly number[]): Promise<void> {
    const tracker = trackersOf(await this.open(path), this.homeDir).get(pairId);
    for (const r of [...shipped, ...failed]) {
      if (!Number.isSafeInteger(r) || r < 0 || r >= tracker.oos.bitCount || !tracker.predictor.inFlight.get(r))
        throw new TidemarkError('USAGE', `region ${r} of pair ${pairId} was not taken for shipping`, 'settle only regions from trackingTake, once each');
    }
    tracker.settle(shipped, failed);
  }

  async trackingRequeue(path: string, pairId: string): Promise<number> {
    const tracker = trackersOf(await this.open(path), this.homeDir).get(pairId);
    const taken: number[] = [];
    const inFlight = tracker.predictor.inFlight;
    for (let r = inFlight.nextSetBit(0); r !== -1; r = r + 1 < inFlight.bitCount ? inFlight.nextSetBit(r + 1) : -1) taken.push(r);
    tracker.settle([], taken);
    return taken.length;
  }

  async importMark(path: string, marker: ImportMarker | null, options: { auth?: WriteAuth } = {}): Promise<void> {
    await membersOf(await this.open(path), this.homeDir).markImport(marker, options.auth);
  }

  async nbdExportStart(path: string, options: NbdExportOptions): Promise<NbdExportInfo> {
    const volume = await this.open(path);
    if (options.pairId !== undefined) trackersOf(volume, this.homeDir).get(options.pairId); // NOT_FOUND before listening
    return this.nbd.start(volume, await canonicalPath(path), options);
  }

  async nbdExportStop(exportId: string): Promise<void> {
    await this.nbd.stop(exportId);
  }

  async nbdExportList(): Promise<NbdExportInfo[]> {
    return this.nbd.list();
  }

  async peerKeyCreate(pairId: string, target: PeerTarget): Promise<{ publicKey: string }> {
    return { publicKey: await this.peers.create(pairId, target) };
  }

  async peerAuthorize(pairId: string, publicKey: string): Promise<{ authorizedKeysPath: string }> {
    const path = authorizedKeysPath();
    await peerAuthorize(path, pairId, authorizedKeysLine(pairId, publicKey, this.options.agentArgv ?? defaultAgentArgv(), this.homeDir));
    return { authorizedKeysPath: path };
  }

  async peerForget(pairId: string): Promise<void> {
    await this.peers.forget(pairId);
    await peerRevoke(authorizedKeysPath(), pairId);
  }

  peerStatus(pairId: string): Promise<PeerStatus> {
    return this.peers.status(pairId);
  }

  async peerShip(path: string, pairId: string, regionIndexes: readonly number[], options: PeerShipOptions): Promise<PeerShipResult> {
    const member = (await this.volumeState(path)).members.find((m) => m.pairId === pairId);
    if (member?.role !== 'primary')
      throw new TidemarkError('USAGE', `${path} is not the primary of pair ${pairId} on this host`, "ship from the pair's primary");
    const read = (first: number, count: number) => this.readRegions(path, first, count, { signal: options.signal });
    return this.peers.ship(pairId, regionIndexes, read, options);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.holds.abortAll(); // before the volumes close: closing waits for their holds
    await this.peers.closeAll();
    await this.nbd.stopAll();
    for (const open of this.opened.values()) {
      const volume = await open.catch(() => undefined);
      if (volume) await closeAgentVolume(volume);
    }
    for (const pool of this.pools.values()) await (await pool.catch(() => undefined))?.dispose();
    this.opened.clear();
    this.pools.clear();
  }
}
