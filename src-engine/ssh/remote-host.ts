// A remote host as an AgentApi that survives dropped links. It connects on first use (SSH,
// Node check, agent deployment, `agent dial-stdio`), and when the link drops every operation
// in flight fails with a DISCONNECTED error saying what was interrupted and how far it got;
// the next operation reconnects, retrying with capped exponential backoff. Authentication
// and host-key refusals are never retried: a person must act on them.
//
// Nothing is left half-written without a record: a region write either never reached the
// agent (the frame is incomplete, so it is dropped) or the agent performs it through the
// volume's write hooks, which record the region before its data lands. Writes are
// idempotent, so the error asks to write the region again.

import type { Client } from 'ssh2';
import type {
  AgentApi,
  AgentInfo,
  BitmapContents,
  BitmapInfo,
  ReadOptions,
  RealizedMap,
  RegionData,
  RegionSignatures,
  RpcAgent,
  SnapshotInfo,
  SnapshotList,
  VolumeState,
  WriteAuth,
  PairMember,
  PairMemberChange,
  ImportMarker,
  TrackingMapKind,
  TrackingState,
  SnapshotGroupItem,
  SnapshotGroupHold,
  SnapshotGroupPrepareOptions,
  NbdExportInfo,
  NbdExportOptions,
  PeerShipOptions,
  PeerShipResult,
  PeerStatus,
  PeerTarget,
  RoleChangeResult,
  RoleEvent,
} from '../agent';
import { sshReconnectAttempts, sshReconnectDelayMsInitial, sshReconnectDelayMsMax } from '../constants';
import { assert } from '../assert';
import { TidemarkError } from '../errors';
import type { HashAlgorithm } from '../signature';
import type { VolumeInfo, VolumeRecord } from '../volume';
import { connectSsh, type SshConnectOptions } from './connect';
import { knownAgentKey, type KnownAgents } from './known-agents';
import { knownAgentPath, openRemoteAgent, type AgentChannelMode, type RemoteAgent } from './remote-agent';
import { targetOf, type SshHostConfig } from './ssh-config';

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'failed';

export interface RemoteHostStatus {
  readonly state: ConnectionState;
  /** `user@host:port` once resolved. */
  readonly target: string | null;
  readonly nodeVersion: string | null;
  readonly lastError: TidemarkError | null;
  /** Connections made so far (the first one and every reconnect). */
  readonly connections: number;
  /** How the current connection reaches the agent. */
  readonly via: RemoteAgent['via'] | null;
  /** The current connection went straight to the socket an earlier one learnt (known-agents). */
  readonly knownSocket: boolean;
}

export interface RemoteHostOptions extends SshConnectOptions {
  readonly bundlePath: string;
  /** The host's Tidemark home; null: the host's default. */
  readonly homeDir?: string | null;
  /** 'auto' (default): sshd relays to the agent's socket when allowed, else dial-stdio. */
  readonly agentChannel?: AgentChannelMode;
  readonly reconnectAttempts?: number;
  readonly reconnectDelayMsInitial?: number;
  readonly reconnectDelayMsMax?: number;
  readonly onStatus?: (status: RemoteHostStatus) => void;
  /** Where agents listened last time (the fast way in); absent: every connection takes the full way. */
  readonly knownAgents?: KnownAgents;
}

interface Session {
  readonly client: Client;
  readonly host: SshHostConfig;
  readonly agent: RpcAgent;
  readonly nodeVersion: string;
  readonly via: RemoteAgent['via'];
  readonly knownSocket: boolean;
  /** The host key this connection verified: `type base64`. */
  readonly hostKey: string;
  dropped: TidemarkError | null;
}

/** Capped exponential backoff: the delay before attempt `attempt` (0 = the first, no wait). */
export function backoffDelayMs(attempt: number, initialMs: number, maxMs: number): number {
  return attempt === 0 ? 0 : Math.min(maxMs, initialMs * 2 ** (attempt - 1));
}

/** What a read or signing reads from: the volume, or one of its snapshots. */
const source = (path: string, options: ReadOptions | undefined) => (options?.snapshotId === undefined ? path : `snapshot ${options.snapshotId} of ${path}`);

/** Waits `ms`, or less when `signal` aborts. */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/** Any error as a TidemarkError with a hint a person can act on. */
function asTidemarkError(error: unknown, alias: string): TidemarkError {
  if (error instanceof TidemarkError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new TidemarkError(
    'IO',
    `connecting to ${alias} failed: ${message}`,
    'check that the Tidemark home and the agent bundle are readable; TIDEMARK_DEBUG=1 shows details',
  );
}

export class RemoteHost implements AgentApi {
  private session: Promise<Session> | undefined;
  private current: RemoteHostStatus = { state: 'idle', target: null, nodeVersion: null, lastError: null, connections: 0, via: null, knownSocket: false };
  private disposed = false;
  /** Aborts connection attempts in progress (and their backoff waits) on dispose. */
  private readonly lifetime = new AbortController();
  /** The agent of every connection made so far, for wireBytes(). */
  private readonly connectedAgents: RpcAgent[] = [];
  /**
   * Writes (or staged regions) acknowledged and not yet flushed, per target: the session that
   * acknowledged them and how many. A flush on a later session cannot vouch for them (the
   * host may have rebooted and lost them from its page cache), so it fails instead.
   */
  private readonly unflushed = new Map<string, { session: Session; acked: number }>();

  constructor(
    readonly alias: string,
    private readonly options: RemoteHostOptions,
  ) {
    assert((options.reconnectAttempts ?? 1) >= 1, 'a host makes at least one connection attempt');
  }

  get status(): RemoteHostStatus {
    return this.current;
  }

  private setStatus(change: Partial<RemoteHostStatus>): void {
    this.current = { ...this.current, ...change };
    this.options.onStatus?.(this.current);
  }

  /**
   * Where this host is and the host key it was verified with (connecting if needed): what a
   * per-pair key on another host needs to reach it (`pair link`).
   */
  async sshTarget(): Promise<{ host: string; port: number; user: string; hostKey: string }> {
    const session = await this.sessionNow();
    return { host: session.host.hostName, port: session.host.port, user: session.host.user, hostKey: session.hostKey };
  }

  /** Connects now (the first time, or again after a drop); resolves when the agent answers. */
  async connect(): Promise<void> {
    await this.sessionNow();
  }

  /** The live session: the current one unless it dropped, else a new connection (shared by concurrent callers). */
  private async sessionNow(): Promise<Session> {
    for (;;) {
      if (this.disposed) throw new TidemarkError('CANCELLED', `host ${this.alias} was closed`, 'open it again');
      if (!this.session) {
        const started = this.connectWithBackoff();
        this.session = started;
        started.catch(() => {
          if (this.session === started) this.session = undefined;
        });
      }
      const opening = this.session;
      const session = await opening;
      if (!session.dropped) return session;
      if (this.session === opening) this.session = undefined; // dropped: connect again
    }
  }

  private async connectWithBackoff(): Promise<Session> {
    const attempts = this.options.reconnectAttempts ?? sshReconnectAttempts;
    const initialMs = this.options.reconnectDelayMsInitial ?? sshReconnectDelayMsInitial;
    const maxMs = this.options.reconnectDelayMsMax ?? sshReconnectDelayMsMax;
    this.setStatus({ state: 'connecting' });
    let lastError: TidemarkError | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      await sleep(backoffDelayMs(attempt, initialMs, maxMs), this.lifetime.signal);
      if (this.disposed) throw new TidemarkError('CANCELLED', `host ${this.alias} was closed while connecting`, '');
      try {
        const session = await this.connectOnce();
        this.setStatus({
          state: 'connected',
          lastError: null,
          connections: this.current.connections + 1,
          nodeVersion: session.nodeVersion,
          via: session.via,
          knownSocket: session.knownSocket,
        });
        return session;
      } catch (error) {
        lastError = asTidemarkError(error, this.alias);
        if (lastError.code !== 'DISCONNECTED' || this.disposed) break; // refusals need a person, not a retry
      }
    }
    const failure =
      lastError?.code === 'DISCONNECTED' && attempts > 1
        ? new TidemarkError('DISCONNECTED', `${lastError.message} (gave up after ${attempts} attempts)`, lastError.hint)
        : lastError!;
    this.setStatus({ state: 'failed', lastError: failure });
    throw failure;
  }

  private async connectOnce(): Promise<Session> {
    const { client, host, hostKey } = await connectSsh(this.alias, { ...this.options, signal: this.lifetime.signal });
    this.setStatus({ target: targetOf(host) });
    try {
      const cache = this.options.knownAgents;
      const key = knownAgentKey(host, this.options.homeDir);
      const known = cache ? await cache.get(key) : null;
      const remote = await openRemoteAgent(client, host, {
        bundlePath: this.options.bundlePath,
        homeDir: this.options.homeDir ?? null,
        mode: this.options.agentChannel ?? 'auto',
        known,
      });
      if (cache && remote.socketPath !== (known?.socketPath ?? null)) await cache.set(key, remote.socketPath ? { socketPath: remote.socketPath } : null);
      const session: Session = {
        client,
        host,
        agent: remote.agent,
        nodeVersion: remote.nodeVersion,
        via: remote.via,
        knownSocket: remote.agentPath === knownAgentPath,
        hostKey,
        dropped: null,
      };
      this.connectedAgents.push(remote.agent);
      const onDrop = (error: TidemarkError) => this.dropped(session, error);
      remote.agent.onClose((error) => onDrop(error instanceof TidemarkError ? error : new TidemarkError('DISCONNECTED', error.message, '')));
      client.once('close', () => onDrop(new TidemarkError('DISCONNECTED', `SSH connection to ${host.hostName}:${host.port} closed`, '')));
      // The link may have dropped already (onClose fires at once then): that is a failed attempt.
      if (session.dropped) throw session.dropped;
      return session;
    } catch (error) {
      client.end();
      throw error;
    }
  }

  private dropped(session: Session, error: TidemarkError): void {
    if (session.dropped) return;
    session.dropped = error; // sessionNow() connects anew instead of handing it out
    session.client.end();
    // A drop while still connecting is that attempt's failure, reported by the attempt.
    if (!this.disposed && this.current.state === 'connected') this.setStatus({ state: 'disconnected', lastError: error });
  }

  /** A DISCONNECTED error naming the host, what was interrupted and what to do. */
  private interrupted(error: unknown, session: Session, what: string, hint: string): unknown {
    if (!(error instanceof TidemarkError) || error.code !== 'DISCONNECTED') return error;
    return new TidemarkError('DISCONNECTED', `connection to ${targetOf(session.host)} dropped while ${what}`, hint, { cause: error });
  }

  private async unary<T>(what: string, run: (agent: RpcAgent) => Promise<T>, hint = 'the next operation reconnects; run it again'): Promise<T> {
    const session = await this.sessionNow();
    try {
      return await run(session.agent);
    } catch (error) {
      throw this.interrupted(error, session, what, hint);
    }
  }

  info(): Promise<AgentInfo> {
    return this.unary('asking the agent for its info', (agent) => agent.info());
  }

  volumeCreate(path: string, sizeBytes: number, regionBytes: number): Promise<VolumeRecord> {
    return this.unary(
      `creating ${path}`,
      (agent) => agent.volumeCreate(path, sizeBytes, regionBytes),
      `check with \`tidemark volume info\` whether ${path} exists, then create it again if not`,
    );
  }

  volumeInfo(path: string, options?: { regionBytes?: number }): Promise<VolumeInfo> {
    return this.unary(`reading the info of ${path}`, (agent) => agent.volumeInfo(path, options));
  }

  volumeAdopt(path: string, regionBytes: number): Promise<VolumeRecord> {
    return this.unary(`registering ${path}`, (agent) => agent.volumeAdopt(path, regionBytes), 'registering is idempotent: run the command again');
  }

  writeRegion(path: string, regionIndex: number, data: Uint8Array, options?: { auth?: WriteAuth }): Promise<void> {
    return this.acknowledged(
      path,
      `writing region ${regionIndex} of ${path}`,
      (agent) => agent.writeRegion(path, regionIndex, data, options),
      'the region may be partly written and is recorded as written; write it again (writes are idempotent) — the next operation reconnects',
    );
  }

  /** A write whose durability a later flush must vouch for, on the same session. */
  private async acknowledged(key: string, what: string, run: (agent: RpcAgent) => Promise<void>, hint: string): Promise<void> {
    const session = await this.sessionNow();
    try {
      await run(session.agent);
    } catch (error) {
      throw this.interrupted(error, session, what, hint);
    }
    const entry = this.unflushed.get(key);
    if (!entry) this.unflushed.set(key, { session, acked: 1 });
    else entry.acked += 1; // on another session the flush fails anyway: the older one is kept
  }

  /**
   * Runs a flush of `key` (a volume's flush, a cycle's apply) only on the session that
   * acknowledged what it makes durable; writes acknowledged before a reconnect fail it
   * (DISCONNECTED), so they are sent again rather than trusted.
   */
  private async durable<T>(key: string, what: string, run: (agent: RpcAgent) => Promise<T>, hint: string): Promise<T> {
    const session = await this.sessionNow();
    const entry = this.unflushed.get(key);
    if (entry && entry.session !== session) {
      this.unflushed.delete(key);
      throw new TidemarkError(
        'DISCONNECTED',
        `${entry.acked} write(s) for ${key} were acknowledged before the connection to ${this.alias} dropped and may not be durable there`,
        'they are sent again: the operation resumes from its last durable point',
      );
    }
    const ackedAtStart = entry?.acked ?? 0;
    let result: T;
    try {
      result = await run(session.agent);
    } catch (error) {
      throw this.interrupted(error, session, what, hint);
    }
    const now = this.unflushed.get(key);
    if (now && now.session === session && now.acked === ackedAtStart) this.unflushed.delete(key);
    else if (now && now.session === session) now.acked -= ackedAtStart; // acknowledged during the flush: not covered by it
    return result;
  }

  reclaimRegions(path: string, firstRegion: number, regionCount: number, options?: { auth?: WriteAuth }): Promise<{ punched: boolean }> {
    return this.unary(
      `reclaiming regions of ${path}`,
      (agent) => agent.reclaimRegions(path, firstRegion, regionCount, options),
      'reclaiming is idempotent: run it again — the next operation reconnects',
    );
  }

  flush(path: string): Promise<void> {
    return this.durable(
      path,
      `flushing ${path}`,
      (agent) => agent.flush(path),
      'writes since the last completed flush may not be durable; flush again — the next operation reconnects',
    );
  }

  realizedMap(path: string): Promise<RealizedMap> {
    return this.unary(`reading the realization map of ${path}`, (agent) => agent.realizedMap(path));
  }

  /** A stream that counts the regions it delivered, so an interruption can say how far it got. */
  private async *streamed<T>(
    run: (agent: RpcAgent) => AsyncIterable<T>,
    regionsIn: (item: T) => number,
    interruption: (received: number) => { what: string; hint: string },
  ): AsyncIterable<T> {
    const session = await this.sessionNow();
    let received = 0;
    try {
      for await (const item of run(session.agent)) {
        received += regionsIn(item);
        yield item;
      }
    } catch (error) {
      const { what, hint } = interruption(received);
      throw this.interrupted(error, session, what, hint);
    }
  }

  readRegions(path: string, firstRegion: number, regionCount: number, options?: ReadOptions): AsyncIterable<RegionData> {
    return this.streamed(
      (agent) => agent.readRegions(path, firstRegion, regionCount, options),
      () => 1,
      (received) => ({
        what: `reading ${source(path, options)} (${received} of ${regionCount} regions received)`,
        hint: `the next operation reconnects; resume from region ${firstRegion + received}`,
      }),
    );
  }

  signatures(path: string, hash: HashAlgorithm, firstRegion: number, regionCount: number, options?: ReadOptions): AsyncIterable<RegionSignatures> {
    return this.streamed(
      (agent) => agent.signatures(path, hash, firstRegion, regionCount, options),
      (batch) => batch.regionIndexes.length,
      (received) => ({
        what: `signing ${source(path, options)} (${received} of ${regionCount} signatures received)`,
        hint: 'the next operation reconnects; run it again',
      }),
    );
  }

  snapshotCreate(path: string, options?: { label?: string; rotateMaps?: readonly [string, string] }): Promise<SnapshotInfo> {
    return this.unary(
      `taking a snapshot of ${path}`,
      (agent) => agent.snapshotCreate(path, options),
      'the snapshot may have been taken: list the snapshots of the volume and delete a stray one, then take it again — the next operation reconnects',
    );
  }

  snapshotList(path: string): Promise<SnapshotList> {
    return this.unary(`listing the snapshots of ${path}`, (agent) => agent.snapshotList(path));
  }

  snapshotDelete(path: string, snapshotId: string): Promise<void> {
    return this.unary(
      `deleting snapshot ${snapshotId} of ${path}`,
      (agent) => agent.snapshotDelete(path, snapshotId),
      'the snapshot may be deleted already: list the snapshots of the volume and delete it again if it is still there — the next operation reconnects',
    );
  }

  bitmapCreate(path: string, name: string): Promise<BitmapInfo> {
    return this.unary(
      `creating bitmap "${name}" of ${path}`,
      (agent) => agent.bitmapCreate(path, name),
      'list the bitmaps of the volume to see whether it was created, then create it again if not — the next operation reconnects',
    );
  }

  bitmapRead(path: string, name: string): Promise<BitmapContents> {
    return this.unary(`reading bitmap "${name}" of ${path}`, (agent) => agent.bitmapRead(path, name));
  }

  bitmapClear(path: string, name: string, regionIndexes?: readonly number[]): Promise<void> {
    return this.unary(
      `clearing ${regionIndexes === undefined ? 'every region' : `${regionIndexes.length} region(s)`} of bitmap "${name}" of ${path}`,
      (agent) => agent.bitmapClear(path, name, regionIndexes),
      'some bits may still be set (a set bit only costs a resend); clear them again — the next operation reconnects',
    );
  }

  bitmapMark(path: string, name: string, regionIndexes: readonly number[]): Promise<void> {
    return this.unary(
      `marking ${regionIndexes.length} region(s) in bitmap "${name}" of ${path}`,
      (agent) => agent.bitmapMark(path, name, regionIndexes),
      'marking is idempotent: run it again',
    );
  }

  bitmapDelete(path: string, name: string): Promise<void> {
    return this.unary(
      `deleting bitmap "${name}" of ${path}`,
      (agent) => agent.bitmapDelete(path, name),
      'the bitmap may be deleted already: list the bitmaps of the volume and delete it again if it is still there — the next operation reconnects',
    );
  }

  bitmapList(path: string): Promise<BitmapInfo[]> {
    return this.unary(`listing the bitmaps of ${path}`, (agent) => agent.bitmapList(path));
  }

  bitmapSwap(path: string, a: string, b: string): Promise<void> {
    return this.unary(
      `swapping bitmaps "${a}" and "${b}" of ${path}`,
      (agent) => agent.bitmapSwap(path, a, b),
      'the swap happened whole or not at all: compare the bitmapIds in the bitmap list with the ones before, then swap again only if they did not change — the next operation reconnects',
    );
  }

  volumeState(path: string): Promise<VolumeState> {
    return this.unary(`reading the pair state of ${path}`, (agent) => agent.volumeState(path));
  }

  pairJoin(path: string, member: PairMember): Promise<PairMember> {
    return this.unary(`recording ${path} in pair "${member.name}"`, (agent) => agent.pairJoin(path, member), 'joining is idempotent: run the command again');
  }

  pairUpdate(path: string, pairId: string, change: PairMemberChange): Promise<PairMember> {
    return this.unary(
      `updating the pair record of ${path}`,
      (agent) => agent.pairUpdate(path, pairId, change),
      'updating is idempotent: run the command again',
    );
  }

  pairLeave(path: string, pairId: string): Promise<void> {
    return this.unary(`removing ${path} from pair ${pairId}`, (agent) => agent.pairLeave(path, pairId), 'leaving is idempotent: run the command again');
  }

  importMark(path: string, marker: ImportMarker | null, options?: { auth?: WriteAuth }): Promise<void> {
    return this.unary(`marking the import state of ${path}`, (agent) => agent.importMark(path, marker, options), 'marking is idempotent: run the import again');
  }

  snapshotCreateGroup(items: readonly SnapshotGroupItem[]): Promise<SnapshotInfo[]> {
    return this.unary(
      `taking ${items.length} snapshots at one instant`,
      (agent) => agent.snapshotCreateGroup(items),
      'a failure leaves none of them: run the cycle again',
    );
  }

  snapshotGroupPrepare(items: readonly SnapshotGroupItem[], options: SnapshotGroupPrepareOptions): Promise<SnapshotGroupHold> {
    return this.unary(
      `holding the writes of ${items.length} volume(s) for a group snapshot`,
      (agent) => agent.snapshotGroupPrepare(items, options),
      'a hold is released when its client goes away or its lease runs out: the group cycle is retried',
    );
  }

  snapshotGroupCommit(holdId: string): Promise<SnapshotInfo[]> {
    return this.unary(
      `committing group hold ${holdId}`,
      (agent) => agent.snapshotGroupCommit(holdId),
      "the snapshots may have been taken: the group cycle's recovery finds them by label, or deletes them — run the cycle again",
    );
  }

  snapshotGroupAbort(holdId: string): Promise<void> {
    return this.unary(
      `aborting group hold ${holdId}`,
      (agent) => agent.snapshotGroupAbort(holdId),
      'the hold is released anyway when its client goes away or its lease runs out',
    );
  }

  stageRegion(path: string, pairId: string, cycle: number, regionIndex: number, data: Uint8Array, options?: { auth?: WriteAuth }): Promise<void> {
    return this.acknowledged(
      `${path} staging of ${pairId}`,
      `staging region ${regionIndex} of ${path}`,
      (agent) => agent.stageRegion(path, pairId, cycle, regionIndex, data, options),
      'the cycle resumes by staging again',
    );
  }

  stageApply(path: string, pairId: string, cycle: number, regionIndexes: readonly number[], options?: { auth?: WriteAuth }): Promise<void> {
    return this.durable(
      `${path} staging of ${pairId}`,
      `applying cycle ${cycle} to ${path}`,
      (agent) => agent.stageApply(path, pairId, cycle, regionIndexes, options),
      'applying is idempotent: the cycle resumes',
    );
  }

  stageSeal(path: string, pairId: string, cycle: number, regionIndexes: readonly number[], options?: { auth?: WriteAuth }): Promise<void> {
    return this.durable(
      `${path} staging of ${pairId}`,
      `sealing cycle ${cycle} on ${path}`,
      (agent) => agent.stageSeal(path, pairId, cycle, regionIndexes, options),
      'sealing is idempotent: the cycle resumes',
    );
  }

  stageApplySealed(path: string, pairId: string, cycle: number, options?: { auth?: WriteAuth }): Promise<void> {
    return this.durable(
      `${path} staging of ${pairId}`,
      `applying sealed cycle ${cycle} to ${path}`,
      (agent) => agent.stageApplySealed(path, pairId, cycle, options),
      'applying is idempotent: the group cycle (or the group failover) resumes when run again',
    );
  }

  realizeRegions(path: string, regionIndexes: readonly number[], options?: { auth?: WriteAuth }): Promise<void> {
    return this.unary(
      `marking regions of ${path} realized`,
      (agent) => agent.realizeRegions(path, regionIndexes, options),
      'marking is idempotent: the next batch marks them again',
    );
  }

  trackingState(path: string, pairId: string): Promise<TrackingState> {
    return this.unary(`reading the tracking state of ${path}`, (agent) => agent.trackingState(path, pairId));
  }

  trackingMap(path: string, pairId: string, which: TrackingMapKind): Promise<BitmapContents> {
    return this.unary(`reading the ${which} map of ${path}`, (agent) => agent.trackingMap(path, pairId, which));
  }

  // A take whose reply is lost leaves its regions taken in the agent: the shipper requeues them when it starts over.
  trackingTake(path: string, pairId: string, regionsMax: number, fromRegion: number): Promise<number[]> {
    return this.unary(
      `taking out-of-sync regions of ${path}`,
      (agent) => agent.trackingTake(path, pairId, regionsMax, fromRegion),
      'replication requeues them when it resumes',
    );
  }

  trackingSettle(path: string, pairId: string, shipped: readonly number[], failed: readonly number[]): Promise<void> {
    return this.unary(
      `settling shipped regions of ${path}`,
      (agent) => agent.trackingSettle(path, pairId, shipped, failed),
      'replication requeues them when it resumes',
    );
  }

  trackingRequeue(path: string, pairId: string): Promise<number> {
    return this.unary(`requeueing regions of ${path}`, (agent) => agent.trackingRequeue(path, pairId));
  }

  // Exports started through a session end with it (the agent releases them when the link drops).
  nbdExportStart(path: string, options: NbdExportOptions): Promise<NbdExportInfo> {
    return this.unary(`exporting ${path} over NBD`, (agent) => agent.nbdExportStart(path, options));
  }

  nbdExportStop(exportId: string): Promise<void> {
    return this.unary(`stopping NBD export ${exportId}`, (agent) => agent.nbdExportStop(exportId));
  }

  volumeList(): Promise<VolumeRecord[]> {
    return this.unary('listing volumes', (agent) => agent.volumeList());
  }

  nbdExportList(): Promise<NbdExportInfo[]> {
    return this.unary('listing NBD exports', (agent) => agent.nbdExportList());
  }

  pairRoleChange(path: string, pairId: string, event: RoleEvent): Promise<RoleChangeResult> {
    return this.unary(
      `changing the role of ${path} in pair ${pairId}`,
      (agent) => agent.pairRoleChange(path, pairId, event),
      'a role change is recorded before it is answered: run the command again (a change already made is reported as it is)',
    );
  }

  trackingMark(path: string, pairId: string, regionIndexes: readonly number[]): Promise<void> {
    return this.unary(
      `marking regions of ${path} out of sync`,
      (agent) => agent.trackingMark(path, pairId, regionIndexes),
      'marking is idempotent: run it again',
    );
  }

  peerKeyCreate(pairId: string, target: PeerTarget): Promise<{ publicKey: string }> {
    return this.unary(`making the key of pair ${pairId}`, (agent) => agent.peerKeyCreate(pairId, target), 'making the key is idempotent: run it again');
  }

  peerAuthorize(pairId: string, publicKey: string): Promise<{ authorizedKeysPath: string }> {
    return this.unary(`authorizing the key of pair ${pairId}`, (agent) => agent.peerAuthorize(pairId, publicKey), 'authorizing is idempotent: run it again');
  }

  peerForget(pairId: string): Promise<void> {
    return this.unary(`forgetting the key of pair ${pairId}`, (agent) => agent.peerForget(pairId), 'forgetting is idempotent: run it again');
  }

  peerStatus(pairId: string): Promise<PeerStatus> {
    return this.unary(`asking for the direct link of pair ${pairId}`, (agent) => agent.peerStatus(pairId));
  }

  peerShip(path: string, pairId: string, regionIndexes: readonly number[], options: PeerShipOptions): Promise<PeerShipResult> {
    return this.unary(
      `shipping ${regionIndexes.length} region(s) of ${path} directly`,
      (agent) => agent.peerShip(path, pairId, regionIndexes, options),
      'the regions stay tracked and are shipped again — the next operation reconnects',
    );
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.lifetime.abort();
    const session = await this.session?.catch(() => undefined);
    this.session = undefined;
    if (session) {
      await session.agent.dispose();
      session.client.end();
    }
    this.setStatus({ state: 'idle' });
  }

  /**
   * RPC bytes both ways between here and the host's agent, summed over every connection made
   * so far (dropped ones included): the agent link's traffic, before SSH's own framing and
   * encryption. Deploying the agent (SFTP) and the Node check are not counted.
   */
  wireBytes(): number {
    return this.connectedAgents.reduce((sum, agent) => sum + agent.wireBytes(), 0);
  }
}
