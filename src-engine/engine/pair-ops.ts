// Pair operations of a long-lived engine (the console): create, delete, sync in the background
// with live progress and a heatmap of conveyed regions, cancel, verify, and the per-method
// estimate the pair wizard shows. Local VOLREFs go to the home's agent, remote ones to the
// HostManager's host of that name (added on the Hosts screen).

import { resolve } from 'node:path';
import { formatVolRef, isOnHost, parseVolRef, type AgentApi } from '../agent';
import { Bitset } from '../bitmap';
import { TidemarkError, isTidemarkError } from '../errors';
import type { EventLog } from '../events';
import type { HostManager } from '../hosts';
import {
  createPair,
  deletePair,
  linkAfterCreate,
  unlinkPair,
  pairStatus,
  runSync,
  verifyPair,
  type EndpointResolver,
  type PairCreateOptions,
  type PairRecord,
  type PairStatus,
  type PairStore,
  type SyncMethod,
  type SyncMethodChoice,
  type SyncProgress,
  type SyncSummary,
  type VerifyResult,
  type VolumeEndpoint,
  failbackPair,
  failoverGroup,
  failoverPair,
  groupOf,
  GroupStore,
  type GroupRecord,
  type GroupFailoverSummary,
  type FailbackSummary,
  type FailoverSummary,
} from '../replication';

export interface SyncState {
  readonly pair: string;
  readonly method: SyncMethodChoice;
  readonly running: boolean;
  readonly startedAtMs: number;
  readonly progress: SyncProgress | null;
  readonly summary: SyncSummary | null;
  readonly error: { code: string; message: string; hint: string } | null;
}

interface RunningSync {
  state: SyncState;
  readonly controller: AbortController;
  /** Regions conveyed to the secondary by this run (the console's heatmap). */
  readonly conveyed: Bitset | undefined;
  done: Promise<void>;
}

export interface MethodEstimate {
  readonly method: SyncMethod;
  /** Region bytes that may cross to the secondary: exact for full/tardy/early, an upper bound for signature and realized. */
  readonly bytesUpTo: number;
  readonly regionsUpTo: number;
  /** Signature bytes both sides send the orchestrator. */
  readonly signatureBytes: number;
  readonly regionsReclaimed: number;
  readonly note: string;
}

export interface SyncEstimate {
  readonly regions: number;
  readonly regionBytes: number;
  readonly primaryRealized: number;
  readonly secondaryRealized: number;
  readonly methods: readonly MethodEstimate[];
}

const bitsOf = (map: { regionCount: number; words: Uint32Array }, regionCount: number) => {
  const bits = new Bitset(regionCount);
  bits.copyWordsFrom(map.words.subarray(0, Math.ceil(regionCount / 32)), 0);
  return bits;
};

export class PairOperations implements EndpointResolver {
  private readonly syncs = new Map<string, RunningSync>();

  constructor(
    private readonly store: PairStore,
    private readonly agent: AgentApi,
    private readonly hosts: HostManager,
    private readonly events: EventLog,
  ) {}

  async resolve(volref: string): Promise<VolumeEndpoint> {
    const ref = parseVolRef(volref);
    if (ref.kind === 'local') {
      const path = resolve(ref.path);
      return { volref: path, agent: this.agent, path, where: 'this machine' };
    }
    const hosts = await this.hosts.list();
    const known = hosts.find((h) => isOnHost(ref, h.name, true)) ?? hosts.find((h) => isOnHost(ref, h.name));
    if (!known) {
      const name = `${ref.user ? `${ref.user}@` : ''}${ref.host}${ref.port ? `:${ref.port}` : ''}`;
      throw new TidemarkError('NOT_FOUND', `host ${name} is not one of this console's hosts`, `add ${name} on the Hosts screen first, then try again`);
    }
    const remote = await this.hosts.agent(known.name);
    return { volref: formatVolRef(ref), agent: remote, path: ref.path, where: known.name, sshTarget: () => remote.sshTarget() };
  }

  async create(options: PairCreateOptions): Promise<PairRecord> {
    const record = await createPair(this.store, this, options);
    this.events.emit({
      severity: 'info',
      pair: record.name,
      kind: 'pair.created',
      message: `pair ${record.name} created: ${record.primary.volref} → ${record.secondary.volref}`,
    });
    // A remote→remote pair gets its own key, as `pair create` gives it (docs/replication.md "Direct shipping").
    const link = await linkAfterCreate(record, await this.endpoints(record));
    if (link.linked) {
      this.events.emit({
        severity: 'info',
        pair: record.name,
        kind: 'pair.linked',
        message: `pair ${record.name} ships directly to ${link.linked.target} with its own key`,
      });
    } else if (link.warning) {
      this.events.emit({ severity: 'warning', pair: record.name, kind: 'pair.linked', message: link.warning });
    }
    return record;
  }

  async delete(name: string, force = false): Promise<void> {
    if (this.syncs.get(name)?.state.running) throw new TidemarkError('BUSY', `pair ${name} is syncing`, 'cancel the sync first');
    // The pair's key goes first (best effort: an unreachable side keeps a key that opens nothing once the pair is gone).
    const record = await this.store.require(name);
    const endpoints = await this.endpoints(record).catch(() => undefined);
    if (endpoints) await unlinkPair(endpoints, record.pairId).catch(() => undefined);
    const result = await deletePair(this.store, this, name, { force });
    this.syncs.delete(name);
    this.events.emit({
      severity: result.leftBehind.length > 0 ? 'warning' : 'info',
      pair: name,
      kind: 'pair.deleted',
      message: `pair ${name} deleted${result.leftBehind.length > 0 ? `; not reached: ${result.leftBehind.join('; ')}` : ''}`,
    });
  }

  /**
   * Promotes the secondary (docs/failover.md); the console always forces: its dialog has said
   * what is at risk. A pair in a consistency group fails over with its whole group (every
   * secondary at one instant): the pair's own summary, with the group's.
   */
  async failover(name: string): Promise<FailoverSummary & { readonly groupFailover: GroupFailoverSummary | null }> {
    const group = await groupOf(this.store, await this.store.require(name));
    for (const member of group?.pairs ?? [name]) this.checkIdle(member);
    const groupFailover = group ? await failoverGroup(this.store, this, group.name, { force: true }) : null;
    const summaries = groupFailover ? groupFailover.members : [await failoverPair(this.store, this, name, { force: true })];
    for (const summary of summaries) {
      const rolledForward = groupFailover?.rolledForward.find((r) => r.pair === summary.pair);
      this.events.emit({
        severity: 'warning',
        pair: summary.pair,
        kind: 'pair.failover',
        message:
          `pair ${summary.pair} failed over${group ? ` with group ${group.name}` : ''}: ${summary.newPrimary} is the primary (generation ${summary.generation})` +
          (summary.rolledBackRegions > 0 ? `, ${summary.rolledBackRegions} regions rolled back to the protective snapshot` : '') +
          (rolledForward ? `, the group's cycle ${rolledForward.cycle} applied from its seal first` : ''),
      });
    }
    return { ...(summaries.find((s) => s.pair === name) ?? (await this.promotedEarlier(name, group?.name ?? null))), groupFailover };
  }

  /** The consistency group the pair cycles and fails over with, if any, and which of its pairs are failed over now. */
  async group(pair: PairRecord): Promise<{ readonly name: string; readonly pairs: readonly string[]; readonly failedOver: readonly string[] } | null> {
    const group = await groupOf(this.store, pair);
    if (!group) return null;
    const records = await Promise.all(group.pairs.map(async (name) => (name === pair.name ? pair : await this.store.require(name))));
    return { name: group.name, pairs: group.pairs, failedOver: records.filter((r) => r.failover).map((r) => r.name) };
  }

  /**
   * Groups periodic pairs into a consistency group (`tidemark group create`): refused while a
   * member syncs, replicates, fails back or migrates in this console — its own run would go on
   * beside the group's.
   */
  async createGroup(name: string, pairs: readonly string[]): Promise<GroupRecord> {
    for (const member of pairs) this.checkIdle(member);
    const group = await new GroupStore(this.store.homeDir).create(name, pairs, this.store);
    this.events.emit({ severity: 'info', pair: null, kind: 'group.created', message: `group ${name} created: ${pairs.join(', ')} cycle at one instant` });
    return group;
  }

  /** Forgets a consistency group (its pairs stay); refused while the group replicates in this console. */
  async deleteGroup(name: string): Promise<void> {
    const groups = new GroupStore(this.store.homeDir);
    for (const member of (await groups.require(name)).pairs) {
      const replicating = this.replicating(member);
      if (replicating) throw new TidemarkError('BUSY', `group ${name} is replicating in this console (pair ${member} is ${replicating})`, 'stop it first');
    }
    await groups.delete(name, this.store);
    this.groupDeleted(name);
    this.events.emit({ severity: 'info', pair: null, kind: 'group.deleted', message: `group ${name} deleted; its pairs stay` });
  }

  /** A grouped pair promoted by an earlier, interrupted group failover that this one finished: its summary from the record. */
  private async promotedEarlier(name: string, group: string | null): Promise<FailoverSummary> {
    const record = await this.store.require(name);
    const failover = record.failover;
    if (!failover) throw new TidemarkError('STALE', `pair ${name} is not failed over after its group's failover`, 'see `tidemark pair show`');
    return {
      pair: name,
      newPrimary: record.primary.volref,
      oldPrimary: record.secondary.volref,
      generation: record.generation,
      forced: failover.forced,
      oldPrimaryReachable: failover.oldPrimaryDemoted,
      atRiskRegions: null,
      rolledBackRegions: 0,
      failbackMap: null,
      group,
      durationMs: 0,
    };
  }

  /** What failback would copy now (the CLI's `failback --dry-run`). */
  failbackPlan(name: string): Promise<FailbackSummary> {
    return failbackPair(this.store, this, name, { dryRun: true });
  }

  private checkIdle(name: string): void {
    if (this.syncs.get(name)?.state.running) throw new TidemarkError('BUSY', `pair ${name} is syncing`, 'cancel the sync first');
    const replicating = this.replicating(name);
    if (replicating) throw new TidemarkError('BUSY', `pair ${name} is ${replicating}`, 'stop its replication first');
    if (this.roleChanging(name)) throw new TidemarkError('BUSY', `pair ${name} is failing back or migrating`, 'wait for it to finish');
  }

  /** Set by the engine: whether a failback or migrate of the pair runs in the background (RoleTasks). */
  roleChanging: (name: string) => boolean = () => false;

  /** Set by the engine: what replication of the pair runs in this console (its own, or its group's), or null. */
  replicating: (name: string) => string | null = () => null;

  /** Set by the engine: a group deleted here (its runs that ended go with it). */
  groupDeleted: (name: string) => void = () => undefined;

  status(name: string): Promise<PairStatus> {
    return pairStatus(this.store, this, name);
  }

  async endpoints(record: PairRecord) {
    const [primary, secondary] = await Promise.all([this.resolve(record.primary.volref), this.resolve(record.secondary.volref)]);
    return { primary, secondary };
  }

  /** Starts a sync in the background; its state is polled with `syncState`. */
  async startSync(name: string, method: SyncMethodChoice, limitRateBytesPerSecond?: number): Promise<SyncState> {
    const existing = this.syncs.get(name);
    if (existing?.state.running) throw new TidemarkError('BUSY', `pair ${name} is already syncing`, 'wait for it, or cancel it');
    if (this.roleChanging(name)) throw new TidemarkError('BUSY', `pair ${name} is failing back or migrating`, 'wait for it to finish');
    const record = await this.store.require(name);
    const endpoints = await this.endpoints(record);
    const regionCount = Math.ceil((await endpoints.primary.agent.volumeInfo(endpoints.primary.path)).sizeBytes / record.regionBytes);
    const running: RunningSync = {
      state: { pair: name, method, running: true, startedAtMs: Date.now(), progress: null, summary: null, error: null },
      controller: new AbortController(),
      conveyed: regionCount > 0 ? new Bitset(regionCount) : undefined,
      done: Promise.resolve(),
    };
    this.syncs.set(name, running);
    this.events.emit({ severity: 'info', pair: name, kind: 'sync.started', message: `sync of ${name} started (${method})` });
    running.done = runSync({
      store: this.store,
      pair: record,
      endpoints,
      method,
      limitRateBytesPerSecond,
      signal: running.controller.signal,
      onProgress: (progress) => (running.state = { ...running.state, progress }),
      onConveyed: (regionIndex) => running.conveyed?.set(regionIndex),
      onWarning: (message) => this.events.emit({ severity: 'warning', pair: name, kind: 'sync.warning', message }),
    }).then(
      (summary) => {
        running.state = { ...running.state, running: false, summary };
        this.events.emit({
          severity: 'info',
          pair: name,
          kind: 'sync.finished',
          message: `sync of ${name} finished (${summary.method}): ${summary.regionsTransferred} of ${summary.regions} regions sent`,
        });
      },
      (error: unknown) => {
        const e = isTidemarkError(error) ? error : new TidemarkError('IO', error instanceof Error ? error.message : String(error), 'see the log');
        running.state = { ...running.state, running: false, error: { code: e.code, message: e.message, hint: e.hint } };
        this.events.emit({ severity: e.code === 'CANCELLED' ? 'warning' : 'error', pair: name, kind: 'sync.stopped', message: e.oneLine() });
      },
    );
    return running.state;
  }

  syncState(name: string): SyncState | null {
    return this.syncs.get(name)?.state ?? null;
  }

  /** The regions this console's sync of `name` conveyed so far (a copy), if one ran. */
  conveyedMap(name: string): Bitset | undefined {
    return this.syncs.get(name)?.conveyed?.clone();
  }

  async cancelSync(name: string): Promise<SyncState | null> {
    const running = this.syncs.get(name);
    if (!running?.state.running) return running?.state ?? null;
    running.controller.abort();
    await running.done;
    return running.state;
  }

  async verify(name: string): Promise<VerifyResult> {
    const record = await this.store.require(name);
    return verifyPair(record, await this.endpoints(record));
  }

  /** What each method would move for two volumes (before or after they are paired). */
  async estimate(primaryVolref: string, secondaryVolref: string, regionBytes: number): Promise<SyncEstimate> {
    const [p, s] = await Promise.all([this.resolve(primaryVolref), this.resolve(secondaryVolref)]);
    const [pInfo, sInfo] = await Promise.all([p.agent.volumeInfo(p.path, { regionBytes }), s.agent.volumeInfo(s.path, { regionBytes })]);
    const regions = Math.ceil(pInfo.sizeBytes / regionBytes);
    const registered = pInfo.volumeId !== null && sInfo.volumeId !== null && pInfo.regionBytes === regionBytes && sInfo.regionBytes === regionBytes;
    const [pMap, sMap] = registered ? await Promise.all([p.agent.realizedMap(p.path), s.agent.realizedMap(s.path)]) : [undefined, undefined];
    const pBits = pMap ? bitsOf(pMap, regions) : Bitset.full(regions);
    const sBits = sMap ? bitsOf(sMap, regions) : Bitset.full(regions);
    const primaryRealized = pMap ? pBits.popcount() : pInfo.realizedRegions;
    const secondaryRealized = sMap ? sBits.popcount() : sInfo.realizedRegions;
    const both = pBits.clone().intersectWith(sBits).popcount();
    const primaryOnly = pBits.clone().subtract(sBits).popcount();
    const secondaryOnly = sBits.clone().subtract(pBits).popcount();
    const signatureBytes = 16;
    const tardyRegions = secondaryRealized === 0 && pMap ? primaryRealized : regions;
    const estimate = (method: SyncMethod, regionsUpTo: number, signatures: number, reclaimed: number, note: string): MethodEstimate => ({
      method,
      regionsUpTo,
      bytesUpTo: regionsUpTo * regionBytes,
      signatureBytes: signatures * signatureBytes * 2,
      regionsReclaimed: reclaimed,
      note,
    });
    return {
      regions,
      regionBytes,
      primaryRealized,
      secondaryRealized,
      methods: [
        estimate('tardy', tardyRegions, 0, 0, 'copies every region (only realized ones onto an empty secondary); snapshot held only for the tail'),
        estimate('early', tardyRegions, 0, 0, 'like tardy, but a snapshot is held for the whole copy'),
        estimate('full', regions, 0, 0, 'copies every region, no shortcut'),
        estimate('signature', regions, regions, 0, 'sends only regions whose signatures differ: usually far fewer after an image import'),
        estimate('realized', primaryOnly + both, both, secondaryOnly, 'realized on one side only: sent or reclaimed; on both: compared by signature'),
      ],
    };
  }

  async dispose(): Promise<void> {
    for (const running of this.syncs.values()) running.controller.abort();
    await Promise.all([...this.syncs.values()].map((r) => r.done));
  }
}
