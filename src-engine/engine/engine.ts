// The engine as one object for a long-lived process (the console, web mode): it owns the
// home's agent (serving agent.sock, which is the home's lock), the event log, the volume
// catalog, the pair store, the pairs it has open (tracking on their primaries, through the
// agent's open volumes), the hosts, and the lab's write generator.

import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Bitset, openBitmapFile } from '../bitmap';
import { TidemarkError, isTidemarkError } from '../errors';
import { EventLog } from '../events';
import { ensureHomeDir } from '../home';
import { WriteGenerator, ensureLab, labPairName, labDefaults, removeLab, type GeneratorSettings, type GeneratorState, type LabOptions } from '../lab';
import { GroupStore, PairStore, readCycleHistory, sinceMapName, type GroupRecord, type PairRecord } from '../replication';
import { PairOperations, type SyncState } from './pair-ops';
import { ReplicationOperations } from './replication-ops';
import { SeedingOperations } from './seeding';
import { MapInspector } from './map-inspector';
import { pairMapSources } from './pair-maps';
import { RoleTasks } from './role-tasks';
import { pairTimeline, type PairTimeline } from './timeline';
import type { WriteTracker } from '../tracking';
import { VolumeCatalog, type OpenedVolume } from '../volume';
import { HostManager, SecretVault, type SecretCipher } from '../hosts';
import { LocalAgent, RpcAgent, connectAgentSocket, parseVolRef, startAgentDaemon, type AgentDaemon } from '../agent';
import { RpcPeer } from '../transport';
import { sshPeerLinks } from '../ssh';

const ownerProbeMs = 2_000;

/** The refusal when another process owns the home, naming it (asked through its own socket). */
async function homeInUse(homeDir: string, cause: TidemarkError): Promise<TidemarkError> {
  let peer: RpcPeer | undefined;
  const ask = (async () => {
    peer = new RpcPeer(await connectAgentSocket(homeDir), { role: 'client', keepaliveMs: 0 });
    await peer.handshake(ownerProbeMs);
    return new RpcAgent(peer).info();
  })();
  // A stalled owner must not stall this refusal: one deadline for connect, hello and info.
  const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ownerProbeMs).unref());
  const owner = await Promise.race([ask.catch(() => undefined), timeout]);
  peer?.close();
  const who = owner ? `process ${owner.pid} (${owner.purpose})` : 'another process';
  return new TidemarkError('ALREADY_EXISTS', `Tidemark home ${homeDir} is in use by ${who}`, 'stop that process, or use another home with --home', { cause });
}

export const mapKinds = ['oos', 'moos', 'realized', 'since', 'conveyed', 'current', 'next'] as const;
export type MapKind = (typeof mapKinds)[number];

export interface BitmapView {
  readonly pair: string;
  readonly which: MapKind;
  readonly regionCount: number;
  readonly regionBytes: number;
  readonly setCount: number;
  /** The bits, 32 per word, bit i of word w is region 32·w + i. */
  readonly words: Uint32Array;
}

export interface VolumeSummary {
  readonly path: string;
  readonly volumeId: string;
  readonly sizeBytes: number;
  readonly regionBytes: number;
  readonly regions: number;
  readonly realizedRegions: number;
  readonly pair: string | null;
  readonly role: 'primary' | 'secondary' | null;
}

export interface PairSummary {
  readonly name: string;
  readonly mode: PairRecord['mode'];
  readonly primary: string;
  readonly secondary: string;
  readonly regionBytes: number;
  readonly regions: number;
  /** Tracking is live when this process has the pair's primary open. */
  readonly tracking: boolean;
  readonly oosRegions: number;
  readonly moosRegions: number;
  readonly lagBytes: number;
  readonly writesTracked: number;
  readonly lastSync: { readonly method: string; readonly finishedAt: string; readonly pointInTime: string } | null;
  /** This process's latest sync of the pair, or null. */
  readonly sync: SyncState | null;
}

export interface Overview {
  readonly homeDir: string;
  readonly volumes: VolumeSummary[];
  readonly pairs: PairSummary[];
  readonly generator: GeneratorState | null;
  /** The home's consistency groups (empty when their records cannot be read: `groupsError` says why, and the pairs still show). */
  readonly groups: readonly GroupRecord[];
  readonly groupsError: { readonly code: string; readonly message: string; readonly hint: string } | null;
}

/** How the engine reaches remote hosts. */
export interface EngineHostOptions {
  /** The single-file agent uploaded to hosts; default: tidemark-agent.cjs beside the running script. */
  readonly agentBundlePath?: string;
  /** An OS-keychain cipher (Electron safeStorage) for secrets a person asks to remember. */
  readonly secretCipher?: SecretCipher | null;
  readonly sshConfigPath?: string;
  readonly userKnownHosts?: string;
}

interface OpenPair {
  readonly record: PairRecord;
  readonly primary: OpenedVolume;
  readonly tracker: WriteTracker;
}

export class Engine {
  readonly events: EventLog;
  readonly catalog: VolumeCatalog;
  readonly pairs: PairStore;
  private readonly open = new Map<string, OpenPair>();
  private generator: WriteGenerator | undefined;
  private readonly reportedUnreadable = new Set<string>();
  private disposed = false;
  /** Mutating operations run one at a time (two tabs resetting the lab at once, say). */
  private serial: Promise<unknown> = Promise.resolve();

  readonly hosts: HostManager;
  /** Create, delete, sync and verify pairs (local and over the hosts' agents). */
  readonly pairOps: PairOperations;
  /** Image export, verify and import as background tasks (the Seeding screen). */
  readonly seeding: SeedingOperations;
  /** Continuous replication in the background, with lag history (Pair detail). */
  readonly replication: ReplicationOperations;
  /** The map inspector: a pair's maps by name, opened .tmmap files, comparisons. */
  readonly maps: MapInspector;
  /** Failback and migrate in the background, with progress (the Failover card). */
  readonly roles: RoleTasks;

  private constructor(
    readonly homeDir: string,
    /** The home's one agent: this process owns the home's volumes and serves them on agent.sock. */
    readonly agent: LocalAgent,
    private readonly daemon: AgentDaemon,
    events: EventLog,
    hostOptions: EngineHostOptions,
  ) {
    this.events = events;
    this.catalog = new VolumeCatalog(homeDir);
    this.pairs = new PairStore(homeDir);
    this.hosts = new HostManager(homeDir, {
      bundlePath: hostOptions.agentBundlePath ?? join(dirname(process.argv[1] ?? '.'), 'tidemark-agent.cjs'),
      vault: new SecretVault(homeDir, hostOptions.secretCipher ?? null),
      events,
      sshConfigPath: hostOptions.sshConfigPath,
      userKnownHosts: hostOptions.userKnownHosts,
    });
    this.pairOps = new PairOperations(this.pairs, agent, this.hosts, events);
    this.seeding = new SeedingOperations(this.pairs, this.pairOps, events);
    this.replication = new ReplicationOperations(this.pairs, this.pairOps, events);
    this.maps = new MapInspector(this.pairs, this.pairOps);
    this.roles = new RoleTasks(this.pairs, this.pairOps, events, (name) =>
      this.pairOps.syncState(name)?.running ? 'syncing' : this.replication.running(name) ? 'replicating in this console' : null,
    );
    this.pairOps.roleChanging = (name) => this.roles.running(name);
    this.replication.roleChanging = (name) => this.roles.running(name);
    this.replication.busy = (name) => (this.pairOps.syncState(name)?.running ? 'syncing in this console' : null);
    this.pairOps.groupDeleted = (name) => this.replication.forgetGroup(name);
    this.pairOps.replicating = (name) => {
      const state = this.replication.state(name);
      if (!state?.running) return null;
      return state.group ? `replicating with group ${state.group} in this console` : 'replicating in this console';
    };
  }

  static async open(homeDir: string, options: { purpose?: string; events?: EventLog } & EngineHostOptions = {}): Promise<Engine> {
    await ensureHomeDir(homeDir);
    const purpose = options.purpose ?? 'engine';
    const agent = new LocalAgent(homeDir, { purpose, peerLinks: sshPeerLinks });
    // Binding the home's agent socket is the ownership lock: one process owns a home, and CLI
    // commands on it go through this process's agent (never a second copy of its volumes).
    const daemon = await startAgentDaemon(homeDir, () => undefined, agent).catch(async (error: unknown) => {
      throw isTidemarkError(error) && error.code === 'ALREADY_EXISTS' ? await homeInUse(homeDir, error) : error;
    });
    const engine = new Engine(homeDir, agent, daemon, options.events ?? new EventLog(), options);
    engine.events.emit({ severity: 'info', pair: null, kind: 'engine.started', message: `engine started on home ${homeDir}` });
    return engine;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.serial.then(work, work);
    this.serial = run.catch(() => undefined);
    return run;
  }

  /** Creates the lab if missing and starts tracking its primary. */
  ensureLab(options: LabOptions = labDefaults): Promise<PairRecord> {
    return this.exclusive(() => this.ensureLabNow(options));
  }

  private async ensureLabNow(options: LabOptions): Promise<PairRecord> {
    const { record } = await ensureLab(this.homeDir, this.agent, this.pairs, this.events, options);
    await this.openPair(record);
    return record;
  }

  resetLab(options: LabOptions = labDefaults): Promise<PairRecord> {
    return this.exclusive(async () => {
      const lab = await this.pairs.get(labPairName);
      await this.closePair(labPairName);
      const paths = lab ? [lab.primary.volref, lab.secondary.volref] : [];
      await this.agent.retire(paths, () => removeLab(this.homeDir, this.catalog, this.pairs));
      this.events.emit({ severity: 'warning', pair: labPairName, kind: 'lab.reset', message: 'lab reset: volumes and pair removed and created afresh' });
      return this.ensureLabNow(options);
    });
  }

  private async openPair(record: PairRecord): Promise<OpenPair> {
    const already = this.open.get(record.name);
    if (already) return already;
    // On failure the volume stays open in the agent: socket clients may be using it.
    const primary = await this.agent.openedVolume(record.primary.volref);
    // The agent tracks every primary it opens (docs/replication.md); the console reads its tracker.
    const tracker = await this.agent.pairTracker(record.primary.volref, record.pairId);
    // Before tracking moved into the agent the console kept the lab's MOOS here.
    await rm(join(this.pairs.pairDir(record.name), 'moos.tmbm'), { force: true });
    if (tracker.recoveredRegions > 0) {
      this.events.emit({
        severity: 'warning',
        pair: record.name,
        kind: 'tracking.recovered',
        message: `MOOS recovered: ${tracker.recoveredRegions} region(s) may be out of sync and will be resent`,
      });
    }
    for (const segment of tracker.loadReport?.recovered ?? []) {
      this.events.emit({
        severity: 'warning',
        pair: record.name,
        kind: 'bitmap.segment-recovered',
        message: `MOOS segment ${segment.segmentIndex} was damaged (${segment.reason}); its regions are marked out of sync`,
      });
    }
    const opened: OpenPair = { record, primary, tracker };
    this.open.set(record.name, opened);
    this.events.emit({ severity: 'info', pair: record.name, kind: 'tracking.started', message: `tracking writes to ${record.primary.volref}` });
    return opened;
  }

  private async closePair(name: string): Promise<void> {
    const opened = this.open.get(name);
    if (!opened) return;
    if (name === labPairName) await this.stopGeneratorNow();
    this.generator = name === labPairName ? undefined : this.generator;
    this.open.delete(name);
    // The tracker and the volume stay open in the agent until the home is released.
  }

  private labOpen(): OpenPair {
    const opened = this.open.get(labPairName);
    if (!opened) throw new TidemarkError('NOT_FOUND', 'the lab is not set up', 'create it first (the console does on first start; or `tidemark lab`)');
    return opened;
  }

  startGenerator(settings: GeneratorSettings): Promise<GeneratorState> {
    return this.exclusive(async () => this.startGeneratorNow(settings));
  }

  private startGeneratorNow(settings: GeneratorSettings): GeneratorState {
    const lab = this.labOpen();
    this.generator ??= new WriteGenerator(lab.primary.volume);
    const wasRunning = this.generator.state().running;
    this.generator.start(settings);
    this.events.emit({
      severity: 'info',
      pair: labPairName,
      kind: wasRunning ? 'generator.changed' : 'generator.started',
      message: `write generator ${wasRunning ? 'now' : 'started'}: ${settings.writesPerSecond} writes/s of ${settings.writeBytes} bytes, ${settings.pattern}`,
    });
    return this.generator.state();
  }

  stopGenerator(): Promise<GeneratorState | null> {
    return this.exclusive(() => this.stopGeneratorNow());
  }

  private async stopGeneratorNow(): Promise<GeneratorState | null> {
    if (!this.generator) return null;
    const wasRunning = this.generator.state().running;
    await this.generator.stop();
    const state = this.generator.state();
    if (wasRunning)
      this.events.emit({ severity: 'info', pair: labPairName, kind: 'generator.stopped', message: `write generator stopped after ${state.writes} writes` });
    return state;
  }

  generatorState(): GeneratorState | null {
    const state = this.generator?.state() ?? null;
    if (state?.lastError) {
      // Report a generator failure once, in the log where people look.
      this.events.emit({ severity: 'error', pair: labPairName, kind: 'generator.failed', message: `write generator stopped: ${state.lastError}` });
      this.generator = undefined;
    }
    return state;
  }

  async overview(): Promise<Overview> {
    const records = await this.pairs.list();
    await this.trackLocalPairs(records);
    const roles = new Map<string, { pair: string; role: 'primary' | 'secondary' }>();
    for (const r of records) {
      if (r.primary.volumeId) roles.set(r.primary.volumeId, { pair: r.name, role: 'primary' });
      if (r.secondary.volumeId) roles.set(r.secondary.volumeId, { pair: r.name, role: 'secondary' });
    }
    const volumes = await Promise.all(
      (await this.catalog.list()).map(async (v): Promise<VolumeSummary> => {
        const role = roles.get(v.volumeId);
        return {
          path: v.path,
          volumeId: v.volumeId,
          sizeBytes: v.sizeBytes,
          regionBytes: v.regionBytes,
          regions: Math.ceil(v.sizeBytes / v.regionBytes),
          realizedRegions: await this.realizedCount(v.volumeId, v.path),
          pair: role?.pair ?? null,
          role: role?.role ?? null,
        };
      }),
    );
    const groups = await new GroupStore(this.homeDir).listReadable().then(
      ({ groups: readable, damaged }) => ({ groups: readable, groupsError: damaged[0] ? errorOf(damaged[0], damaged.length) : null }),
      (error: unknown) => ({ groups: [], groupsError: errorOf(error, 1) }),
    );
    return { homeDir: this.homeDir, volumes, pairs: records.map((r) => this.pairSummary(r, volumes)), generator: this.generatorState(), ...groups };
  }

  /**
   * Every pair whose primary is on this machine is shown with its tracking (the agent tracks
   * it anyway); pairs deleted meanwhile are let go.
   */
  private async trackLocalPairs(records: readonly PairRecord[]): Promise<void> {
    const names = new Set(records.map((r) => r.name));
    for (const name of [...this.open.keys()]) if (!names.has(name) && name !== labPairName) this.open.delete(name);
    for (const record of records) {
      // After a role change (failover, failback, migrate) the pair's primary is another volume: track that one.
      const opened = this.open.get(record.name);
      if (opened && (opened.record.primary.volref !== record.primary.volref || opened.record.generation !== record.generation)) this.open.delete(record.name);
      if (this.open.has(record.name) || parseVolRef(record.primary.volref).kind !== 'local') continue;
      await this.openPair(record).catch((error: unknown) => {
        if (this.reportedUnreadable.has(record.name)) return;
        this.reportedUnreadable.add(record.name); // once, not at every poll
        this.events.emit({
          severity: 'warning',
          pair: record.name,
          kind: 'tracking.unavailable',
          message: `cannot show the tracking of ${record.name}: ${(error as Error).message}`,
        });
      });
    }
  }

  private async realizedCount(volumeId: string, path: string): Promise<number> {
    for (const opened of this.open.values()) {
      if (opened.primary.record?.volumeId === volumeId && opened.primary.realized) return opened.primary.realized.bitmap.bits.popcount();
    }
    try {
      const { bitmap } = await openBitmapFile(this.catalog.realizedPath(volumeId), 'r');
      const count = bitmap.bits.popcount();
      await bitmap.close();
      return count;
    } catch {
      if (!this.reportedUnreadable.has(volumeId)) {
        this.reportedUnreadable.add(volumeId); // once, not at every poll
        this.events.emit({ severity: 'warning', pair: null, kind: 'volume.unreadable', message: `cannot read the realization map of ${path}` });
      }
      return 0;
    }
  }

  private pairSummary(record: PairRecord, volumes: readonly VolumeSummary[]): PairSummary {
    const opened = this.open.get(record.name);
    // A pair this process does not track: its primary's size from this home's catalog (0 when remote).
    const primaryBytes = record.primary.volumeId ? (volumes.find((v) => v.volumeId === record.primary.volumeId)?.sizeBytes ?? 0) : 0;
    const regions = opened?.primary.volume.regionCount ?? Math.ceil(primaryBytes / record.regionBytes);
    const oosRegions = opened?.tracker.oos.popcount() ?? 0;
    return {
      name: record.name,
      mode: record.mode,
      primary: record.primary.volref,
      secondary: record.secondary.volref,
      regionBytes: record.regionBytes,
      regions,
      tracking: opened !== undefined,
      oosRegions,
      moosRegions: opened?.tracker.moosBits.popcount() ?? 0,
      lagBytes: oosRegions * record.regionBytes,
      writesTracked: opened?.tracker.stats.writes ?? 0,
      lastSync: record.lastSync ? { method: record.lastSync.method, finishedAt: record.lastSync.finishedAt, pointInTime: record.lastSync.pointInTime } : null,
      sync: this.pairOps.syncState(record.name),
    };
  }

  /**
   * A copy of one of a pair's maps, for heatmaps and inspection: OOS, MOOS and realization of
   * a pair this process tracks; `since` (written on the primary since the secondary's point in
   * time, asked of the primary's agent) and `conveyed` (regions this console's sync sent).
   */
  async bitmap(pairName: string, which: MapKind): Promise<BitmapView> {
    if (which === 'since' || which === 'conveyed') return this.syncMap(pairName, which);
    if (which === 'current' || which === 'next') return this.changeMap(pairName, which);
    const opened = this.open.get(pairName);
    if (!opened) throw new TidemarkError('NOT_FOUND', `pair "${pairName}" is not open in this process`, 'open the console on the home that holds the pair');
    const source: Bitset | undefined = which === 'oos' ? opened.tracker.oos : which === 'moos' ? opened.tracker.moosBits : opened.primary.realized?.bitmap.bits;
    if (!source)
      throw new TidemarkError('NOT_FOUND', `pair "${pairName}" has no ${which} map`, 'realization is tracked only for volumes registered in this home');
    return {
      pair: pairName,
      which,
      regionCount: source.bitCount,
      regionBytes: opened.record.regionBytes,
      setCount: source.popcount(),
      words: source.words.slice(),
    };
  }

  private async syncMap(pairName: string, which: 'since' | 'conveyed'): Promise<BitmapView> {
    const record = await this.pairs.require(pairName);
    let bits: Bitset;
    if (which === 'conveyed') {
      const conveyed = this.pairOps.conveyedMap(pairName);
      if (!conveyed) throw new TidemarkError('NOT_FOUND', `no sync of pair "${pairName}" ran in this console`, 'start one with Sync');
      bits = conveyed;
    } else {
      const primary = await this.pairOps.resolve(record.primary.volref);
      const since = await primary.agent.bitmapRead(primary.path, sinceMapName(record.pairId)).catch((error: unknown) => {
        if (isTidemarkError(error) && error.code === 'NOT_FOUND') {
          throw new TidemarkError('NOT_FOUND', `pair "${pairName}" has not been synced yet: nothing is tracked since`, 'start a sync');
        }
        throw error;
      });
      bits = new Bitset(since.regionCount, since.words);
    }
    return { pair: pairName, which, regionCount: bits.bitCount, regionBytes: record.regionBytes, setCount: bits.popcount(), words: bits.words.slice() };
  }

  /** A periodic primary's current or next change map, read from the primary's agent (any host). */
  private async changeMap(pairName: string, which: 'current' | 'next'): Promise<BitmapView> {
    const record = await this.pairs.require(pairName);
    const primary = await this.pairOps.resolve(record.primary.volref);
    const contents = await pairMapSources[which]!(primary, record, () => this.pairOps.endpoints(record));
    return {
      pair: pairName,
      which,
      regionCount: contents.regionCount,
      regionBytes: record.regionBytes,
      setCount: contents.setCount,
      words: contents.words.slice(),
    };
  }

  /** Creation, both members' role changes, the last sync, a pending failover and the applied cycles, oldest first. */
  async timeline(name: string): Promise<PairTimeline> {
    return pairTimeline(await this.pairOps.status(name), await readCycleHistory(this.pairs.pairDir(name)));
  }

  dispose(): Promise<void> {
    return this.exclusive(async () => {
      if (this.disposed) return;
      this.disposed = true;
      try {
        await this.replication.stopAll();
        await this.roles.dispose();
        await this.pairOps.dispose();
        await this.seeding.dispose();
        for (const name of [...this.open.keys()]) await this.closePair(name);
        await this.hosts.dispose();
      } finally {
        try {
          await this.daemon.close(); // the home is released whatever failed above
        } finally {
          await this.agent.dispose();
        }
      }
    });
  }
}

/** A group-records problem as the overview carries it: the first one, and how many files are affected. */
function errorOf(error: unknown, files: number): { code: string; message: string; hint: string } {
  const e = isTidemarkError(error) ? error : new TidemarkError('IO', (error as Error).message, 'see the log');
  return { code: e.code, message: files > 1 ? `${e.message} (and ${files - 1} more group records)` : e.message, hint: e.hint };
}
