// AgentApi: the one interface to a host's volumes. The in-process LocalAgent implements it
// directly; RpcAgent implements it over the agent RPC (local socket, stdio, SSH). The same
// contract test suite runs against both (test/integration/agent-contract.test.ts).

import type { HashAlgorithm } from '../signature';
import type { TrackingState } from '../tracking';
import type { VolumeInfo, VolumeRecord, WriteAuth } from '../volume';
import type { ImportMarker, PairMember, PairMemberChange, RoleEvent } from './pair-members';
import type { PeerTarget } from './peer-keys';

export type { WriteAuth } from '../volume';
export type { TrackingState } from '../tracking';

/** Where an NBD export listens: loopback TCP or a Unix socket. */
export type NbdTarget = { readonly host: string; readonly port: number } | { readonly socketPath: string };

export interface NbdExportOptions {
  /** The export name clients ask for (the default export '' is this one too). */
  readonly name: string;
  readonly target: NbdTarget;
  readonly readOnly: boolean;
  /** A primary's pair: its OOS ∪ in-flight regions are served as the `qemu:dirty-bitmap:tidemark-oos` context. */
  readonly pairId?: string;
}

export interface NbdExportInfo {
  readonly exportId: string;
  readonly name: string;
  readonly path: string;
  readonly readOnly: boolean;
  /** Where it listens (a port 0 asked for is the bound one here). */
  readonly address: { readonly host?: string; readonly port?: number; readonly socketPath?: string };
  /** nbd://host:port/name or nbd+unix:///name?socket=path */
  readonly uri: string;
  readonly connections: number;
}

/** A primary's tracking maps: out of sync, maybe out of sync (persisted), taken for shipping. */
export const trackingMapKinds = ['oos', 'moos', 'in-flight'] as const;
export type TrackingMapKind = (typeof trackingMapKinds)[number];
export type { ImportMarker, PairMember, PairMemberChange, RoleEvent } from './pair-members';

export interface AgentInfo {
  readonly agentVersion: string;
  readonly nodeVersion: string;
  readonly hostname: string;
  readonly homeDir: string;
  /** Bytes unprivileged users may still write on the home's filesystem (snapshot stores grow there). */
  readonly homeFreeBytes: number;
  readonly pid: number;
  /** What the owning process is: 'agent', 'Tidemark console (Electron)', … */
  readonly purpose: string;
  /** The agent's clock (ms since the epoch) when it answered: the orchestrator measures skew with it. Absent from older agents. */
  readonly clockMs?: number;
}

export interface RegionData {
  readonly regionIndex: number;
  readonly data: Uint8Array;
}

export interface RegionSignatures {
  readonly regionIndexes: readonly number[];
  /** Signatures of regionIndexes, back to back. */
  readonly signatures: Uint8Array;
}

export interface RealizedMap {
  readonly regionCount: number;
  /** Bit i of word w: region 32·w + i was written. */
  readonly words: Uint32Array;
  readonly source: 'tracked' | 'zero-scan';
}

/** Where reads and signatures come from: the live volume, or one of its snapshots. */
export interface ReadOptions {
  readonly signal?: AbortSignal;
  /** Read the volume as it was when this snapshot was taken. */
  readonly snapshotId?: string;
  /**
   * Live reads only: a region whose bit in this change map is set when its turn comes is
   * skipped (not in the stream). Tardy sync (seed 000): a marked region is sent later anyway.
   */
  readonly skipMarked?: string;
}

/** What the agent knows of a volume's pairs. */
export interface VolumeState {
  readonly path: string;
  readonly volumeId: string | null;
  readonly sizeBytes: number;
  /** The registered region size; null for a volume this home has not registered. */
  readonly regionBytes: number | null;
  readonly members: readonly PairMember[];
  /** An unfinished image import: sync refuses the volume (INCOMPLETE) until it is finished. */
  readonly importing: ImportMarker | null;
}

export interface SnapshotGroupItem {
  readonly path: string;
  readonly label?: string;
  readonly rotateMaps?: readonly [string, string];
}

export interface SnapshotGroupPrepareOptions {
  /** How long the hold may last, from the prepare call, before it is released as an abort. */
  readonly leaseMs: number;
}

export interface SnapshotGroupHold {
  /** Names the hold to snapshotGroupCommit / snapshotGroupAbort (a UUID). */
  readonly holdId: string;
  /** When every member's writes were held (the agent's clock). */
  readonly heldAtMs: number;
}

export interface SnapshotInfo {
  readonly snapshotId: string;
  readonly kind: 'reflink' | 'cow';
  readonly label: string;
  readonly createdAtMs: number;
  readonly sizeBytes: number;
  readonly regionBytes: number;
  readonly regionCount: number;
  /** Regions copied aside since the snapshot was taken (copy-on-write); null for a reflink clone. */
  readonly copiedRegions: number | null;
}

/** A snapshot that could not be reopened (its error); it can only be deleted. */
export interface DamagedSnapshotInfo {
  readonly snapshotId: string;
  readonly code: string;
  readonly message: string;
  readonly hint: string;
}

export interface SnapshotList {
  /** Oldest first. */
  readonly snapshots: readonly SnapshotInfo[];
  readonly damaged: readonly DamagedSnapshotInfo[];
}

/** A named tracking bitmap: every region written through the agent since it was created or cleared. */
export interface BitmapInfo {
  readonly name: string;
  /** The bitmap file's id; bitmapSwap exchanges the ids of two names. */
  readonly bitmapId: string;
  readonly regionCount: number;
  readonly setCount: number;
}

export interface BitmapContents {
  readonly regionCount: number;
  readonly setCount: number;
  /** Bit i of word w: region 32·w + i was written. */
  readonly words: Uint32Array;
}

export interface RoleChangeResult {
  readonly member: PairMember;
  /** Regions restored from the protective snapshot (a catch-up interrupted by the failover). */
  readonly rolledBackRegions: number;
  /** The change map recording writes on a new primary from its promotion on (null for a demotion). */
  readonly failbackMap: string | null;
  /** A demotion: what its tracking held unshipped (OOS ∪ in flight) once the lock stopped writes — what a migrate still copies. */
  readonly unshippedRegions?: readonly number[];
}

/** Direct shipping of a pair's regions by its primary's agent (peerShip). */
export interface PeerShipOptions {
  readonly auth: WriteAuth;
  readonly limitRateBytesPerSecond?: number;
  readonly signal?: AbortSignal;
}

export interface PeerShipResult {
  readonly regionsWritten: number;
  readonly bytesWritten: number;
}

/** The primary's agent's view of a pair's direct link. */
export interface PeerStatus {
  /** A per-pair key and target are recorded on this host. */
  readonly configured: boolean;
  /** `user@host:port` the key leads to. */
  readonly target: string | null;
  readonly connected: boolean;
  readonly connections: number;
  readonly lastError: string | null;
}

export interface AgentApi {
  info(): Promise<AgentInfo>;
  volumeCreate(path: string, sizeBytes: number, regionBytes: number): Promise<VolumeRecord>;
  volumeInfo(path: string, options?: { regionBytes?: number }): Promise<VolumeInfo>;
  /**
   * Registers an existing file or block device in the home, its data untouched: realization
   * is seeded by a zero scan and tracked from then on. A registered volume is returned as is.
   */
  volumeAdopt(path: string, regionBytes: number): Promise<VolumeRecord>;
  /** The volumes registered in this agent's home (created or adopted), by path. */
  volumeList(): Promise<VolumeRecord[]>;
  /** Streams regions [firstRegion, firstRegion + regionCount) in order, of the volume or of one of its snapshots. */
  readRegions(path: string, firstRegion: number, regionCount: number, options?: ReadOptions): AsyncIterable<RegionData>;
  /** Writes one whole region; a pair's secondary takes only writes with its pair's `auth` (PERMISSION, or STALE for an old generation). */
  writeRegion(path: string, regionIndex: number, data: Uint8Array, options?: { auth?: WriteAuth }): Promise<void>;
  flush(path: string): Promise<void>;
  /**
   * Regions [firstRegion, +regionCount) read as zeros and are unrealized afterwards: a hole is
   * punched where possible, else zeros are written. Locked like writeRegion. `punched`: a hole.
   */
  reclaimRegions(path: string, firstRegion: number, regionCount: number, options?: { auth?: WriteAuth }): Promise<{ punched: boolean }>;
  realizedMap(path: string): Promise<RealizedMap>;
  /**
   * Marks regions realized before they are written, in one durable metadata write instead of
   * one per first write (a replication batch to a secondary). Locked like writeRegion.
   */
  realizeRegions(path: string, regionIndexes: readonly number[], options?: { auth?: WriteAuth }): Promise<void>;
  /** Streams the signatures of regions [firstRegion, firstRegion + regionCount), batch by batch. */
  signatures(path: string, hash: HashAlgorithm, firstRegion: number, regionCount: number, options?: ReadOptions): AsyncIterable<RegionSignatures>;

  /**
   * Takes a crash-consistent snapshot (writes held while it is taken); it lasts until deleted,
   * across restarts. `rotateMaps: [current, next]`: at the snapshot's instant `current` takes
   * what `next` recorded and `next` starts empty (a periodic cycle).
   */
  snapshotCreate(path: string, options?: { label?: string; rotateMaps?: readonly [string, string] }): Promise<SnapshotInfo>;
  /**
   * Snapshots of several volumes at one instant (a consistency group): each volume's writes
   * are held from its snapshot until every later one is taken, so any write acknowledged on
   * one before a write was issued on another is in the snapshots whenever the later one is.
   * Volumes are taken in a fixed order; a failure leaves no snapshot of the group.
   */
  snapshotCreateGroup(items: readonly SnapshotGroupItem[]): Promise<SnapshotInfo[]>;
  /**
   * First phase of a group snapshot spanning hosts (docs/replication.md "Consistency groups"):
   * checks `items` as snapshotCreateGroup does, then holds every volume's writes (drained and
   * gated, in the same fixed order) and resolves once all are held — taking nothing yet. The
   * hold lasts until snapshotGroupCommit or snapshotGroupAbort, or until `leaseMs` (from this
   * call) runs out, which releases it as an abort.
   */
  snapshotGroupPrepare(items: readonly SnapshotGroupItem[], options: SnapshotGroupPrepareOptions): Promise<SnapshotGroupHold>;
  /**
   * Takes the held group's snapshots (rotating their maps) under the still-held writes, then
   * releases them; in `items` order. EXPIRED when the lease ran out first, NOT_FOUND for a hold
   * this agent does not know; a failure leaves no snapshot of the group.
   */
  snapshotGroupCommit(holdId: string): Promise<SnapshotInfo[]>;
  /** Releases a held group with nothing taken. Idempotent: an unknown or ended hold is fine. */
  snapshotGroupAbort(holdId: string): Promise<void>;
  snapshotList(path: string): Promise<SnapshotList>;
  snapshotDelete(path: string, snapshotId: string): Promise<void>;

  /** Creates an empty bitmap `name` (1–32 of a-z, 0-9, -) that records every write from now on. */
  bitmapCreate(path: string, name: string): Promise<BitmapInfo>;
  bitmapRead(path: string, name: string): Promise<BitmapContents>;
  /** Clears the given regions, or every region when none are given. */
  bitmapClear(path: string, name: string, regionIndexes?: readonly number[]): Promise<void>;
  bitmapDelete(path: string, name: string): Promise<void>;
  /** Sets the given regions, durably, as writes to them would have. */
  bitmapMark(path: string, name: string, regionIndexes: readonly number[]): Promise<void>;
  /** By name. */
  bitmapList(path: string): Promise<BitmapInfo[]>;
  /** Exchanges the contents of bitmaps `a` and `b`, atomically (a crash leaves one mapping or the other). */
  bitmapSwap(path: string, a: string, b: string): Promise<void>;

  volumeState(path: string): Promise<VolumeState>;
  /** Records that the (registered) volume is a member of a pair (idempotent); a secondary is locked before this resolves. */
  pairJoin(path: string, member: PairMember): Promise<PairMember>;
  pairUpdate(path: string, pairId: string, change: PairMemberChange): Promise<PairMember>;
  /**
   * A role change (failover, failback, migrate: docs/failover.md). To primary: a periodic
   * secondary is already at its last applied cycle (an interrupted apply finishes when the
   * volume opens); a continuous one interrupted mid catch-up is rolled back to its protective
   * snapshot; the failback map starts recording before the lock is lifted, and tracking
   * attaches. To secondary: tracking detaches and the volume is locked at the new generation.
   * Repeating a change already made returns the member as it is.
   */
  pairRoleChange(path: string, pairId: string, event: RoleEvent): Promise<RoleChangeResult>;
  /** Marks regions out of sync on a tracking primary, durably (MOOS) before it resolves: a failback's resync map. */
  trackingMark(path: string, pairId: string, regionIndexes: readonly number[]): Promise<void>;
  /** Forgets the membership (unlocking a secondary); the data is untouched. Idempotent. */
  pairLeave(path: string, pairId: string): Promise<void>;
  /** Sets the volume's import marker, or removes it (null: the import finished). A locked volume needs its pair's auth. */
  importMark(path: string, marker: ImportMarker | null, options?: { auth?: WriteAuth }): Promise<void>;

  /** A periodic cycle's region into the secondary's staging area (the volume is untouched). Locked like writeRegion. */
  stageRegion(path: string, pairId: string, cycle: number, regionIndex: number, data: Uint8Array, options?: { auth?: WriteAuth }): Promise<void>;
  /**
   * Applies a staged cycle under a redo record (a crash finishes it at the next open): the
   * listed regions go into the volume, which is flushed; the member records `appliedCycle`.
   */
  stageApply(path: string, pairId: string, cycle: number, regionIndexes: readonly number[], options?: { auth?: WriteAuth }): Promise<void>;
  /**
   * Seals a staged cycle without applying it: the listed regions are made durable and recorded
   * with the cycle, and the member records `sealedCycle` (a consistency group's prepared vote).
   */
  stageSeal(path: string, pairId: string, cycle: number, regionIndexes: readonly number[], options?: { auth?: WriteAuth }): Promise<void>;
  /** Applies a sealed cycle from its seal alone, as stageApply does (a group failover rolling a member forward). */
  stageApplySealed(path: string, pairId: string, cycle: number, options?: { auth?: WriteAuth }): Promise<void>;

  /** Write tracking of the pair on its primary (seed 003): counts, lag, what a crash would resend. */
  trackingState(path: string, pairId: string): Promise<TrackingState>;
  trackingMap(path: string, pairId: string, which: TrackingMapKind): Promise<BitmapContents>;
  /**
   * Takes up to `regionsMax` out-of-sync regions (from `fromRegion` on, wrapping) for shipping:
   * their OOS bits are cleared with writes held, so reading them afterwards sees every write
   * acknowledged before, and a later write marks them again. They stay in MOOS until settled.
   */
  trackingTake(path: string, pairId: string, regionsMax: number, fromRegion: number): Promise<number[]>;
  /** `shipped` regions are durable on the secondary; `failed` ones are out of sync again. */
  trackingSettle(path: string, pairId: string, shipped: readonly number[], failed: readonly number[]): Promise<void>;
  /** Settles every taken region as failed (out of sync again): a shipper starting over after a lost link or a crash. Returns how many. */
  trackingRequeue(path: string, pairId: string): Promise<number>;

  /**
   * Serves the volume over NBD (docs/nbd.md) from the agent's process, so its writes pass
   * every hook (tracking first). A locked secondary is served read-only or not at all. The
   * export lasts until stopped, or until the client that started it goes away.
   */
  nbdExportStart(path: string, options: NbdExportOptions): Promise<NbdExportInfo>;
  nbdExportStop(exportId: string): Promise<void>;
  nbdExportList(): Promise<NbdExportInfo[]>;

  /**
   * Direct shipping, the primary's agent: makes the pair's SSH key on this host (once; kept
   * when re-targeted) and records where the secondary is and its verified host keys.
   */
  peerKeyCreate(pairId: string, target: PeerTarget): Promise<{ publicKey: string }>;
  /** The secondary's agent: lets the pair's key in through authorized_keys, restricted to the pair's shipping (peer-session.ts). */
  peerAuthorize(pairId: string, publicKey: string): Promise<{ authorizedKeysPath: string }>;
  /** Either side: forgets the pair's key (the primary's key files, the secondary's authorized_keys line). Idempotent. */
  peerForget(pairId: string): Promise<void>;
  peerStatus(pairId: string): Promise<PeerStatus>;
  /**
   * The primary's agent reads `regionIndexes` (sorted) of its volume `path` and writes them
   * straight into the pair's secondary over the pair's key, then flushes there: resolved means
   * durable on the secondary.
   */
  peerShip(path: string, pairId: string, regionIndexes: readonly number[], options: PeerShipOptions): Promise<PeerShipResult>;

  /** Releases what the agent holds for this client (open volumes, workers, connections). */
  dispose(): Promise<void>;
}
