// Direct shipping from the primary's agent (docs/replication.md "Direct shipping"): one SSH
// link per pair to the secondary's agent, made with the pair's key; regions read here are
// written there and flushed there, so the data crosses the network once, host to host,
// instead of twice through the orchestrator. The link itself (ssh2, reconnects) is opened by
// a `PeerLinkOpener` the process injects (src-engine/ssh), keeping this folder free of SSH.

import { runsOf } from '../bitmap';
import { TidemarkError } from '../errors';
import { TokenBucket } from '../token-bucket';
import type { AgentApi, PeerShipOptions, PeerShipResult, PeerStatus, RegionData } from './agent-api';
import { peerFilesOf, peerKeyCreate, peerKeyRemove, peerTargetOf, type PeerFiles, type PeerTarget } from './peer-keys';

export interface PeerLink {
  readonly agent: AgentApi;
  status(): { readonly connected: boolean; readonly connections: number; readonly lastError: string | null };
  close(): Promise<void>;
}

/** Opens (lazily: the first call connects) the SSH link a pair's key leads to. */
export type PeerLinkOpener = (files: PeerFiles, target: PeerTarget) => PeerLink;

/** Writes in flight to the secondary at once: enough to hide the link's latency. */
const writesInFlightMax = 8;

export class PeerLinks {
  private readonly links = new Map<string, PeerLink>();

  constructor(
    private readonly homeDir: string,
    private readonly opener: PeerLinkOpener | undefined,
  ) {}

  async create(pairId: string, target: PeerTarget): Promise<string> {
    await this.drop(pairId); // re-targeted: the next ship connects anew
    return peerKeyCreate(this.homeDir, pairId, target);
  }

  async forget(pairId: string): Promise<void> {
    await this.drop(pairId);
    await peerKeyRemove(this.homeDir, pairId);
  }

  async status(pairId: string): Promise<PeerStatus> {
    const target = await peerTargetOf(this.homeDir, pairId);
    const link = this.links.get(pairId)?.status();
    return {
      configured: target !== null,
      target: target ? `${target.user}@${target.host}:${target.port}` : null,
      connected: link?.connected ?? false,
      connections: link?.connections ?? 0,
      lastError: link?.lastError ?? null,
    };
  }

  /**
   * Ships `regionIndexes` (sorted) read through `read` into the pair's secondary, then flushes
   * it there: when this resolves every region is durable on the secondary. A failure rejects
   * (the caller treats the whole call as unshipped; regions written meanwhile are resent).
   */
  async ship(
    pairId: string,
    regionIndexes: readonly number[],
    read: (first: number, count: number) => AsyncIterable<RegionData>,
    options: PeerShipOptions,
  ): Promise<PeerShipResult> {
    if (options.auth.pairId !== pairId)
      throw new TidemarkError('USAGE', `shipping pair ${pairId} with the auth of pair ${options.auth.pairId}`, "ship with the pair's own auth");
    const { link, target } = await this.linkOf(pairId);
    let bucket: TokenBucket | undefined;
    const writes = new Set<Promise<void>>();
    let failure: unknown;
    let bytesWritten = 0;
    const settled = async () => {
      await Promise.race(writes);
      if (failure !== undefined) throw failure;
    };
    try {
      for (const [first, count] of runsOf(regionIndexes)) {
        for await (const { regionIndex, data } of read(first, count)) {
          if (options.limitRateBytesPerSecond) bucket ??= new TokenBucket(options.limitRateBytesPerSecond, data.length);
          await bucket?.take(data.length, options.signal);
          while (writes.size >= writesInFlightMax) await settled();
          if (failure !== undefined) throw failure;
          const write = link.agent.writeRegion(target.secondaryPath, regionIndex, data, { auth: options.auth }).then(
            () => void (bytesWritten += data.length),
            (error: unknown) => void (failure ??= error),
          );
          writes.add(write);
          void write.finally(() => writes.delete(write));
        }
      }
    } finally {
      // Never return (or fall back to relaying) with a write still on its way: a late direct
      // write could land after a relayed one of the same region.
      await Promise.allSettled([...writes]);
    }
    if (failure !== undefined) throw failure;
    await link.agent.flush(target.secondaryPath);
    return { regionsWritten: regionIndexes.length, bytesWritten };
  }

  async closeAll(): Promise<void> {
    for (const pairId of [...this.links.keys()]) await this.drop(pairId);
  }

  private async linkOf(pairId: string): Promise<{ link: PeerLink; target: PeerTarget }> {
    const target = await peerTargetOf(this.homeDir, pairId);
    if (!target)
      throw new TidemarkError(
        'NOT_FOUND',
        `this host has no per-pair key for pair ${pairId}`,
        'provision one with `tidemark pair link NAME` (shipping is relayed meanwhile)',
      );
    if (!this.opener)
      throw new TidemarkError('UNSUPPORTED', 'this agent cannot open SSH links to peers', 'run the agent from the tidemark CLI (tidemark agent serve)');
    let link = this.links.get(pairId);
    if (!link) {
      link = this.opener(peerFilesOf(this.homeDir, pairId), target);
      this.links.set(pairId, link);
    }
    return { link, target };
  }

  private async drop(pairId: string): Promise<void> {
    const link = this.links.get(pairId);
    this.links.delete(pairId);
    await link?.close().catch(() => undefined);
  }
}
