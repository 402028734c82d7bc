// The console API: the one typed contract between the renderer and the engine host, used by
// the Electron preload bridge (IPC) and by web mode (WebSocket) alike. Types only: the
// renderer imports this file with `import type`; runtime validation is console-schema.ts.

export type Severity = 'info' | 'warning' | 'error';
export type MapKind = 'oos' | 'moos' | 'realized' | 'since' | 'conveyed' | 'current' | 'next';
export type SyncMethodDto = 'full' | 'tardy' | 'early' | 'signature' | 'realized';
export type WritePattern = 'random' | 'sequential' | 'hot-spot';

export interface EngineEventDto {
  readonly id: number;
  readonly atMs: number;
  readonly severity: Severity;
  readonly pair: string | null;
  readonly kind: string;
  readonly message: string;
}

export interface VolumeDto {
  readonly path: string;
  readonly volumeId: string;
  readonly sizeBytes: number;
  readonly regionBytes: number;
  readonly regions: number;
  readonly realizedRegions: number;
  readonly pair: string | null;
  readonly role: 'primary' | 'secondary' | null;
}

export interface PairDto {
  readonly name: string;
  readonly mode: 'continuous' | 'periodic';
  readonly primary: string;
  readonly secondary: string;
  readonly regionBytes: number;
  readonly regions: number;
  readonly tracking: boolean;
  readonly oosRegions: number;
  readonly moosRegions: number;
  readonly lagBytes: number;
  readonly writesTracked: number;
  readonly lastSync: { readonly method: string; readonly finishedAt: string; readonly pointInTime: string } | null;
  /** This console's latest sync of the pair (running or finished), or null. */
  readonly sync: SyncStateDto | null;
}

export interface SyncProgressDto {
  readonly method: SyncMethodDto;
  /** 0 for the first pass over the extent; shown counting from 1. */
  readonly round: number;
  readonly phase: 'pass' | 'tail' | 'finish';
  readonly regionsDone: number;
  readonly regionsTotal: number;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly bytesPerSecond: number;
  readonly etaMs: number | null;
  readonly marked: number;
}

export interface SyncSummaryDto {
  readonly method: SyncMethodDto;
  readonly regions: number;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly regionsReclaimed: number;
  readonly pendingRegions: number;
  readonly pointInTime: string;
  readonly durationMs: number;
  readonly rounds: number;
  readonly resumed: boolean;
}

export interface SyncStateDto {
  readonly pair: string;
  readonly method: SyncMethodDto | 'auto';
  readonly running: boolean;
  readonly startedAtMs: number;
  readonly progress: SyncProgressDto | null;
  readonly summary: SyncSummaryDto | null;
  readonly error: ConsoleErrorDto | null;
}

export interface MethodEstimateDto {
  readonly method: SyncMethodDto;
  readonly bytesUpTo: number;
  readonly regionsUpTo: number;
  readonly signatureBytes: number;
  readonly regionsReclaimed: number;
  readonly note: string;
}

export interface SyncEstimateDto {
  readonly regions: number;
  readonly regionBytes: number;
  readonly primaryRealized: number;
  readonly secondaryRealized: number;
  readonly methods: readonly MethodEstimateDto[];
}

export interface VerifyDto {
  readonly pair: string;
  readonly regions: number;
  readonly regionsDiffering: number;
  readonly differing: readonly number[];
  readonly pendingRegions: number | null;
}

export interface PairCreateDto {
  readonly name: string;
  readonly primary: string;
  readonly secondary: string;
  readonly regionBytes?: number;
  readonly mode: 'continuous' | 'periodic';
  readonly hash: 'xxh3-128' | 'sha256';
}

export interface GeneratorSettingsDto {
  readonly pattern: WritePattern;
  readonly writesPerSecond: number;
  readonly writeBytes: number;
  readonly seed: number;
}

export interface GeneratorStateDto {
  readonly running: boolean;
  readonly settings: GeneratorSettingsDto;
  readonly writes: number;
  readonly bytesWritten: number;
  readonly lastError: string | null;
}

export interface OverviewDto {
  readonly homeDir: string;
  readonly volumes: readonly VolumeDto[];
  readonly pairs: readonly PairDto[];
  readonly generator: GeneratorStateDto | null;
  /** Consistency groups: periodic pairs whose cycles share one instant. */
  readonly groups: readonly GroupDto[];
  /** The group records could not be read (a damaged file): named here; the pairs still show. */
  readonly groupsError: ConsoleErrorDto | null;
}

export interface GroupDto {
  readonly name: string;
  readonly pairs: readonly string[];
  readonly createdAt: string;
}

export interface BitmapDto {
  readonly pair: string;
  readonly which: MapKind;
  readonly regionCount: number;
  readonly regionBytes: number;
  readonly setCount: number;
  /** Little-endian 32-bit words, base64: bit i of word w is region 32·w + i. */
  readonly wordsBase64: string;
}

export type HostStateDto = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'failed';

/** A question a host's connection asks a person; answered with `hostAnswer`. */
export type HostQuestionDto =
  | { readonly id: number; readonly kind: 'host-key'; readonly hostPort: string; readonly fingerprint: string }
  | {
      readonly id: number;
      readonly kind: 'passphrase' | 'password' | 'keyboard-interactive';
      readonly prompt: string;
      readonly echo: boolean;
      readonly keyFile: string | null;
      /** The OS keychain that can remember the answer; null: kept in memory only. */
      readonly keychain: string | null;
    };

export interface HostDto {
  readonly name: string;
  readonly target: string | null;
  readonly state: HostStateDto;
  readonly lastError: ConsoleErrorDto | null;
  readonly nodeVersion: string | null;
  readonly agentVersion: string | null;
  readonly homeDir: string | null;
  readonly homeFreeBytes: number | null;
  readonly connections: number;
  readonly question: HostQuestionDto | null;
  readonly addedAtMs: number;
}

export interface HostsDto {
  readonly hosts: readonly HostDto[];
  /** Host aliases of ~/.ssh/config not added yet. */
  readonly candidates: readonly string[];
}

/** A volume a host's agent has registered (the pair wizard's volume picker). */
export interface HostVolumeDto {
  /** The path on its host. */
  readonly path: string;
  /** What to pass as a pair's primary or secondary: the path here, `host:/path` on a host. */
  readonly volref: string;
  readonly sizeBytes: number;
  readonly regionBytes: number;
  /** The pair of this console it is a member of, or null. */
  readonly pair: string | null;
}

export interface HostVolumesDto {
  /** The host of the Hosts screen, or null for this machine. */
  readonly host: string | null;
  readonly volumes: readonly HostVolumeDto[];
}

/** A native directory chooser's options (Electron only). */
export interface PickDirectoryOptionsDto {
  readonly title: string;
  /** Where the chooser opens. */
  readonly defaultPath?: string;
}

/** An error the engine reported: what failed and why, and what to do. */
export interface ConsoleErrorDto {
  readonly code: string;
  readonly message: string;
  readonly hint: string;
}

export interface ImageProgressDto {
  readonly phase: 'export' | 'verify' | 'check' | 'import' | 'finish';
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly bytesPerSecond: number;
  readonly etaMs: number | null;
}

export interface SeedingTaskDto {
  readonly id: number;
  readonly kind: 'export' | 'verify' | 'import';
  readonly dir: string;
  readonly volume: string | null;
  readonly running: boolean;
  readonly startedAtMs: number;
  readonly progress: ImageProgressDto | null;
  /** The command's --json document once it finished (export: manifestSha256, storedRegions…; verify: ok, problems…). */
  readonly result: Record<string, unknown> | null;
  readonly error: ConsoleErrorDto | null;
}

export interface ExportPreflightDto {
  readonly dir: string;
  readonly neededBytes: number;
  readonly availableBytes: number;
  readonly fat: boolean;
  readonly splitBytes: number;
  readonly ok: boolean;
  readonly problem: string | null;
}

export type ShipStateDto = 'catching-up' | 'shipping' | 'in-sync' | 'retrying';

/** Continuous shipping as it runs (the engine's ShipProgress). */
export interface ShipProgressDto {
  readonly state: ShipStateDto;
  /** Out of sync on the primary, not yet taken. */
  readonly oosRegions: number;
  /** Taken and not yet durable on the secondary. */
  readonly inFlightRegions: number;
  /** What a crash of the primary's agent this instant would resend. */
  readonly moosRegions: number;
  readonly lagBytes: number;
  readonly oldestUnshippedMs: number;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly bytesPerSecond: number;
  readonly etaMs: number | null;
  readonly backlogRegions: number;
  readonly protectSnapshotId: string | null;
  /** The path this run's regions take (see ReplicationViewDto.dataPath). */
  readonly path: DataPathDto;
}

/**
 * How region data travels: `local`, the primary is on this machine (read here, written to
 * the secondary); `direct`, a remote primary's agent writes to the secondary's over the
 * pair's own SSH key; `relayed`, a remote primary's regions pass through this console.
 */
export type DataPathDto = 'local' | 'direct' | 'relayed';

/** One point of the lag chart (one a second, the last ten minutes). */
export interface LagSampleDto {
  readonly atMs: number;
  readonly lagRegions: number;
  readonly lagBytes: number;
  readonly oldestUnshippedMs: number;
  readonly bytesPerSecond: number;
  readonly moosRegions: number;
}

/** How a replication run ended (stopped, or gave up). */
export interface ReplicationSummaryDto {
  readonly regions: number;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly recoveredRegions: number;
  readonly backlogRegions: number;
  readonly requeuedRegions: number;
  readonly protectSnapshots: number;
  readonly retries: number;
  readonly durationMs: number;
  readonly inSync: boolean;
  /** Regions the sync run first sent (a fresh or interrupted sync), or null when none ran. */
  readonly syncRegionsTransferred: number | null;
}

export interface ReplicationStateDto {
  readonly pair: string;
  readonly running: boolean;
  /** Paused: not shipping; Resume carries on with the same rate limit, history and cycles. */
  readonly paused: boolean;
  readonly startedAtMs: number;
  readonly limitRateBytesPerSecond: number | null;
  readonly progress: ShipProgressDto | null;
  /** Oldest first. */
  readonly history: readonly LagSampleDto[];
  readonly summary: ReplicationSummaryDto | null;
  readonly error: ConsoleErrorDto | null;
  /** A periodic pair's applied cycles, newest last. */
  readonly cycles: readonly CycleDto[];
  /** The consistency group this run replicates (every member pair shows it), else null. */
  readonly group: string | null;
  /** One cycle (or, continuous, until in sync), not a run that goes on. */
  readonly once: boolean;
  /** The periodic cycle under way (for a group, the member at work), null between cycles. */
  readonly cycleProgress: CycleProgressDto | null;
  readonly cycleStartedAtMs: number | null;
  /** A group run's latest finished cycle. */
  readonly lastGroupCycle: GroupCycleDto | null;
  /** A periodic run's cycle failed and is being retried (resumed from its cursor): why, since when. */
  readonly retrying: { readonly message: string; readonly sinceMs: number } | null;
}

/** A periodic cycle under way: freezing the primary, shipping its regions into the secondary's staging area, applying them. */
export interface CycleProgressDto {
  readonly pair: string;
  readonly cycle: number;
  readonly phase: 'freezing' | 'shipping' | 'applying' | 'done';
  readonly regionsDone: number;
  readonly regionsTotal: number;
  readonly bytesTransferred: number;
}

export interface CycleDto {
  readonly cycle: number;
  readonly pointInTime: string;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly durationMs: number;
  readonly finishedAtMs: number;
}

/** The primary's write tracking of a pair, as its agent reports it. */
export interface TrackingStateDto {
  readonly regionCount: number;
  readonly oosRegions: number;
  readonly inFlightRegions: number;
  readonly moosRegions: number;
  readonly oldestUnshippedMs: number;
  readonly recoveredRegions: number;
  readonly writes: number;
  readonly moosDestages: number;
  readonly predictRegions: number;
}

export interface ReplicationViewDto {
  readonly pair: string;
  /** The path of the running replication, else the one the next run will take (from the primary's agent). */
  readonly dataPath: DataPathDto;
  /** This console's latest replication run of the pair, or null when none ran. */
  readonly state: ReplicationStateDto | null;
  /** Null when the primary's agent could not be asked; `trackingError` says why. */
  readonly tracking: TrackingStateDto | null;
  readonly trackingError: ConsoleErrorDto | null;
  /** A failback or migrate of the pair running in this console: it does the copying, and replication waits for it. */
  readonly roleChange: 'failback' | 'migrate' | null;
  /**
   * The consistency group the pair cycles with: its cycles are the group's (Start group
   * replication, Run one group cycle), not its own; `failedOver` names members failed over (no group cycle until they fail back).
   */
  readonly group: { readonly name: string; readonly pairs: readonly string[]; readonly failedOver: readonly string[] } | null;
  /** The group records could not be read (a damaged file): named here; the pair's own figures still show. */
  readonly groupError: ConsoleErrorDto | null;
}

/** A cycle of a consistency group (a group run's `lastGroupCycle`): every member at one instant. */
export interface GroupCycleDto {
  readonly group: string;
  readonly pointInTime: string;
  readonly members: readonly { readonly pair: string; readonly cycle: number; readonly regionsTransferred: number; readonly bytesTransferred: number }[];
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly durationMs: number;
}

/** A failover's outcome (docs/failover.md). */
export interface FailoverDto {
  readonly pair: string;
  readonly newPrimary: string;
  readonly oldPrimary: string;
  readonly generation: number;
  readonly oldPrimaryReachable: boolean;
  /** The old primary's unshipped regions when it could be asked (null: unreachable, unknown). */
  readonly atRiskRegions: number | null;
  readonly rolledBackRegions: number;
  /**
   * The pair's consistency group, which failed over with it (every secondary of the group promoted
   * at one instant), else null: the pairs this failover promoted, and those whose secondary was
   * first brought to the group's cycle in progress from its seal.
   */
  readonly group: {
    readonly name: string;
    readonly pairs: readonly string[];
    readonly rolledForward: readonly { readonly pair: string; readonly cycle: number }[];
    /** The group's cycle in progress was left (no secondary had applied it): every secondary holds the group's last cycle. */
    readonly abandonedCycle: boolean;
  } | null;
  readonly durationMs: number;
}

/** A failback's resync map (a plan, `dryRun`) or its outcome; the same figures `tidemark failback --dry-run --json` prints. */
export interface FailbackDto {
  readonly pair: string;
  /** The promoted volume, and the old primary coming back. */
  readonly newPrimary: string;
  readonly oldPrimary: string;
  readonly regions: number;
  readonly regionBytes: number;
  readonly resyncRegions: number;
  readonly resyncBytes: number;
  readonly failbackRegions: number;
  readonly unshippedRegions: number;
  /** The map as runs [first, count] (the first 500), for its heatmap and list. */
  readonly runs: readonly (readonly [number, number])[];
  readonly runsTotal: number;
  readonly splitBrain: { readonly failoverAtMs: number; readonly oldPrimaryLastWriteAtMs: number } | null;
  readonly dryRun: boolean;
  readonly regionsTransferred: number;
  readonly bytesTransferred: number;
  readonly durationMs: number;
}

/** A migrate's outcome (the figures `tidemark migrate --json` prints). */
export interface MigrateDto {
  readonly pair: string;
  readonly newPrimary: string;
  readonly oldPrimary: string;
  readonly generation: number;
  readonly drainedRegions: number;
  readonly finalRegions: number;
  readonly bytesTransferred: number;
  readonly pauseMs: number;
  readonly durationMs: number;
  readonly resumed: boolean;
  /** The check after the pause: regions compared (0: none ran), how many differed, the first 100. */
  readonly checkedRegions: number;
  readonly checkDifferingRegions: number;
  readonly checkDiffering: readonly number[];
}

/** What a migrate would copy if it started now: the primary's unshipped regions (they grow while applications write). */
export interface MigratePlanDto {
  readonly pair: string;
  readonly regions: number;
  readonly regionBytes: number;
  readonly unshippedRegions: number;
  readonly unshippedBytes: number;
  /** The first 500 runs [first, count], for the heatmap. */
  readonly runs: readonly (readonly [number, number])[];
  /** Which maps make it up: continuous oos + in-flight; periodic current + next. */
  readonly maps: readonly string[];
}

/** A failback or migrate running in the background, or how it ended. */
export interface RoleTaskDto {
  readonly pair: string;
  readonly kind: 'failback' | 'migrate';
  readonly running: boolean;
  readonly startedAtMs: number;
  readonly progress: {
    /** failback: prepare, (sync), copy, done; migrate: drain, pause, copy, verify, done (then check: the whole extent compared, writes already on the new primary). */
    readonly phase: 'prepare' | 'sync' | 'drain' | 'pause' | 'copy' | 'verify' | 'done' | 'check';
    readonly regionsTransferred: number;
    /** Of the phase's work. */
    readonly regionsTotal: number;
    readonly bytesTransferred: number;
    readonly bytesPerSecond: number;
    readonly etaMs: number | null;
  } | null;
  readonly failback: FailbackDto | null;
  readonly migrate: MigrateDto | null;
  readonly error: ConsoleErrorDto | null;
  /** Cancel may stop it now: a failback always, a migrate while it drains (from its pause on it finishes on its own). */
  readonly cancellable: boolean;
  /** Cancel was asked: it stops at its next safe point. */
  readonly cancelling: boolean;
}

/** What the Failover card offers: the primary reachable (migrate) or not (forced failover), failed over (failback). */
export interface RoleOptionsDto {
  readonly pair: string;
  readonly mode: 'continuous' | 'periodic';
  readonly generation: number;
  readonly failover: { readonly atMs: number; readonly forced: boolean; readonly phase: 'promoted' | 'seeded' } | null;
  readonly unfinishedMigrate: boolean;
  readonly primary: { readonly volref: string; readonly reachable: boolean; readonly error: string | null };
  readonly secondary: { readonly volref: string; readonly reachable: boolean; readonly error: string | null };
  /** The consistency group the pair fails over with (its pairs, this one included; when its last cycle finished), else null. */
  readonly group: { readonly name: string; readonly pairs: readonly string[]; readonly lastCycleAtMs: number | null } | null;
  /** This console's latest failback or migrate of the pair. */
  readonly task: RoleTaskDto | null;
}

/** A pair's maps by name (`tidemark map NAME --which`), as the map inspector offers them. */
export type PairMapNameDto = 'oos' | 'moos' | 'in-flight' | 'current' | 'next' | 'failback' | 'resync';

/** Where the inspector takes a map from: one of a pair's maps, or one map of a file opened with `mapFileOpen`. */
export type MapSourceDto = { readonly pair: string; readonly which: PairMapNameDto } | { readonly fileId: number; readonly map: string };

/** A ∪ B, A ∩ B, A \ B, B \ A. */
export type MapCompareOperationDto = 'union' | 'intersection' | 'a-minus-b' | 'b-minus-a';

/** A run of set regions with its bytes in the volume (offset = firstRegion × regionBytes; the last region may be short). */
export interface MapRunDto {
  readonly firstRegion: number;
  readonly regionCount: number;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/** One map (or the result of comparing two) as the inspector shows it; the same counts `tidemark map --json` prints. */
export interface MapViewDto {
  readonly label: string;
  readonly regionCount: number;
  readonly regionBytes: number;
  readonly volumeBytes: number;
  readonly setCount: number;
  /** setCount × regionBytes. */
  readonly bytes: number;
  readonly runCount: number;
  /** [first region, region count] of the longest run, null when nothing is set. */
  readonly largestRun: readonly [number, number] | null;
  /** The first 1000 runs (runCount says how many there are). */
  readonly runs: readonly MapRunDto[];
  /** Little-endian 32-bit words, base64 (as BitmapDto). */
  readonly wordsBase64: string;
  readonly comparison: {
    readonly a: { readonly label: string; readonly setCount: number };
    readonly b: { readonly label: string; readonly setCount: number };
    readonly operation: MapCompareOperationDto;
    /** Every operation's region count (the view's map is `operation`'s). */
    readonly counts: Readonly<Record<MapCompareOperationDto, number>>;
  } | null;
}

/** A .tmmap file opened in the console (docs/map-format.md). */
export interface MapFileDto {
  readonly fileId: number;
  readonly fileName: string;
  readonly pair: { readonly name: string; readonly pairId: string };
  readonly regionCount: number;
  readonly regionBytes: number;
  readonly volumeBytes: number;
  readonly createdAt: string;
  readonly maps: readonly { readonly name: string; readonly setCount: number }[];
}

/** One line of a pair's timeline, oldest first. */
export interface TimelineEntryDto {
  readonly atMs: number;
  readonly kind: 'created' | 'sync' | 'role' | 'failover' | 'cycle';
  readonly generation: number | null;
  readonly title: string;
  readonly volref: string | null;
  /** user@host of whoever asked, when recorded. */
  readonly by: string | null;
}

export interface PairTimelineDto {
  readonly pair: string;
  readonly generation: number;
  readonly entries: readonly TimelineEntryDto[];
  /** Members whose history could not be read, and why. */
  readonly unreachable: readonly { readonly volref: string; readonly error: string }[];
}

/** Requests: verb → (arguments, result). */
export interface ConsoleRequests {
  overview: [Record<string, never>, OverviewDto];
  bitmap: [{ pair: string; which: MapKind }, BitmapDto];
  events: [{ afterId: number }, EngineEventDto[]];
  labReset: [Record<string, never>, OverviewDto];
  generatorStart: [GeneratorSettingsDto, GeneratorStateDto];
  generatorStop: [Record<string, never>, GeneratorStateDto | null];
  hosts: [Record<string, never>, HostsDto];
  hostAdd: [{ name: string }, HostDto];
  hostRemove: [{ name: string }, HostsDto];
  hostConnect: [{ name: string }, HostDto];
  hostAnswer: [{ name: string; questionId: number; approve?: boolean; secret?: string | null; remember?: boolean }, HostDto];
  /** The volumes a host's agent knows (`host` absent: this machine); a host must be connected. */
  hostVolumes: [{ host?: string }, HostVolumesDto];
  pairEstimate: [{ primary: string; secondary: string; regionBytes: number }, SyncEstimateDto];
  pairCreate: [PairCreateDto, OverviewDto];
  pairDelete: [{ name: string; force?: boolean }, OverviewDto];
  /** Groups periodic pairs into a consistency group (`tidemark group create`). */
  groupCreate: [{ name: string; pairs: string[] }, OverviewDto];
  /** Forgets a consistency group; its pairs stay (`tidemark group delete`). */
  groupDelete: [{ name: string }, OverviewDto];
  syncStart: [{ pair: string; method: SyncMethodDto | 'auto'; limitRateBytesPerSecond?: number }, SyncStateDto];
  syncCancel: [{ pair: string }, SyncStateDto | null];
  verify: [{ pair: string }, VerifyDto];
  /** Starts the pair's replication — its group's, for a pair in a consistency group; `once`: one cycle (continuous: until in sync). */
  replicationStart: [{ pair: string; limitRateBytesPerSecond?: number; once?: boolean }, ReplicationStateDto];
  replicationStop: [{ pair: string }, ReplicationStateDto | null];
  replicationPause: [{ pair: string }, ReplicationStateDto];
  replicationResume: [{ pair: string }, ReplicationStateDto];
  replicationState: [{ pair: string }, ReplicationViewDto];
  failover: [{ pair: string }, FailoverDto];
  failbackPlan: [{ pair: string }, FailbackDto];
  failbackStart: [{ pair: string; discardChangesOn?: string; limitRateBytesPerSecond?: number }, RoleTaskDto];
  migratePlan: [{ pair: string }, MigratePlanDto];
  migrateStart: [{ pair: string }, RoleTaskDto];
  roleTask: [{ pair: string }, RoleTaskDto | null];
  /** Stops a running failback, or a migrate still draining; it ends with a CANCELLED error saying what is kept. */
  roleTaskCancel: [{ pair: string }, RoleTaskDto];
  roleOptions: [{ pair: string }, RoleOptionsDto];
  mapView: [{ source: MapSourceDto; compare?: { source: MapSourceDto; operation: MapCompareOperationDto } }, MapViewDto];
  mapFileOpen: [{ fileName: string; bytesBase64: string }, MapFileDto];
  pairTimeline: [{ pair: string }, PairTimelineDto];
  seedingTasks: [Record<string, never>, SeedingTaskDto[]];
  exportPreflight: [{ source: string; dir: string; splitBytes?: number }, ExportPreflightDto];
  imageExport: [{ source: string; dir: string; splitBytes?: number }, SeedingTaskDto];
  imageVerify: [{ dir: string }, SeedingTaskDto];
  imageImport: [{ dir: string; target: string }, SeedingTaskDto];
  seedingCancel: [{ id: number }, SeedingTaskDto];
}

export type ConsoleVerb = keyof ConsoleRequests;
export type ConsoleArgs<V extends ConsoleVerb> = ConsoleRequests[V][0];
export type ConsoleResult<V extends ConsoleVerb> = ConsoleRequests[V][1];

/** Pushed by the host without a request. */
export interface ConsolePushes {
  event: EngineEventDto;
}

/** What the renderer calls: the preload bridge and the web client both implement it. */
export interface ConsoleApi {
  request<V extends ConsoleVerb>(verb: V, args: ConsoleArgs<V>): Promise<ConsoleResult<V>>;
  onEvent(listener: (event: EngineEventDto) => void): () => void;
  /**
   * Electron only: the native directory chooser; resolves with the chosen path, or null when
   * the user cancelled. Absent in web mode (a browser page cannot learn a local path).
   */
  pickDirectory?(options: PickDirectoryOptionsDto): Promise<string | null>;
}

/** The IPC channel of a verb (Electron): every channel is prefixed `tidemark:`. */
export const channelPrefix = 'tidemark:';
