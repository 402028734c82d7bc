// Continuous replication under faults (issue 7, "Faults"): a local primary ships to a secondary
// behind a real OpenSSH sshd while a seeded writer writes through the primary's agent, and in
// the middle of shipping the secondary's agent is SIGKILLed, the SSH link is dropped, or the
// link is slow and lossy: sshd in a network namespace whose veth drops 2 % of packets
// (nftables; the kernel has no netem) reached through a relay adding 20 ms each way. The
// shipper retries; once the writer stops the volumes converge byte for byte and verify finds
// nothing differing.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalAgent, type AgentApi, type WriteAuth } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import {
  PairStore,
  createPair,
  protectSnapshotLabelPrefix,
  replicatePair,
  shipContinuous,
  verifyPair,
  waitInSync,
  type EndpointResolver,
  type PairEndpoints,
  type PairRecord,
  type ShipProgress,
} from '../../src-engine/replication';
import { RemoteHost, type AgentChannelMode } from '../../src-engine/ssh';
import { agentInfoOf, stopAgentOf, testRemoteHostOptions } from '../helpers/agents';
import { startDelayRelay, type DelayRelay } from '../helpers/delay-relay';
import { until } from '../helpers/engine';
import { makeLocalPair, RandomWriter, recordingAgent, sameBytes, writeRandomRegions } from '../helpers/pairs';
import { seededRandom } from '../helpers/random';
import { startSshd, type TestSshd } from '../helpers/sshd';
import { tempDir } from '../helpers/tmp';
import { requireTool, runTool } from '../helpers/tools';

const regionBytes = 64 * 1024;
const regionCount = 256; // 16 MiB volumes
const sizeBytes = regionCount * regionBytes;
/** Small batches, so progress (where a fault is injected) is reported every 1 MiB. */
const batchRegionsMax = 16;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261201);

let dir: string;
let sshd: TestSshd;
const disposables: { dispose(): Promise<void> }[] = [];
const remoteHomes: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tm-continuous-faults-'));
  sshd = await startSshd(join(dir, 'sshd'));
});

afterEach(async () => {
  for (const d of disposables.splice(0).reverse()) await d.dispose();
});

afterAll(async () => {
  for (const home of remoteHomes) await stopAgentOf(home);
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface RemotePair {
  readonly store: PairStore;
  readonly record: PairRecord;
  readonly endpoints: PairEndpoints;
  readonly primary: LocalAgent;
  readonly secondary: RemoteHost;
  readonly remoteHome: string;
}

function pick(random: () => number, count: number): number[] {
  const set = new Set<number>();
  while (set.size < count) set.add(Math.floor(random() * regionCount));
  return [...set].sort((a, b) => a - b);
}

/**
 * A local primary paired with a secondary on `server`'s host (its own remote home), synced
 * once, then `backlogRegions` regions written on the primary: tracked, not yet shipped.
 */
async function syncedRemotePair(
  name: string,
  server: TestSshd,
  seed: number,
  backlogRegions: number,
  agentChannel: AgentChannelMode = 'auto',
): Promise<RemotePair> {
  const primary = new LocalAgent(join(dir, `${name}-local-home`));
  disposables.push(primary);
  const remoteHome = join(dir, `${name}-remote-home`);
  remoteHomes.push(remoteHome);
  const secondary = new RemoteHost(server.alias, { ...testRemoteHostOptions(server, join(dir, `${name}-ssh`), remoteHome), agentChannel });
  disposables.push(secondary);
  const primaryPath = join(dir, `${name}-p.img`);
  const secondaryPath = join(dir, `${name}-s.img`);
  await primary.volumeCreate(primaryPath, sizeBytes, regionBytes);
  await secondary.volumeCreate(secondaryPath, sizeBytes, regionBytes);
  await writeRandomRegions(primary, primaryPath, regionBytes, pick(seededRandom(seed), regionCount / 4), seed);
  const endpoints: PairEndpoints = {
    primary: { volref: primaryPath, agent: primary, path: primaryPath, where: 'this machine' },
    secondary: { volref: `${server.alias}:${secondaryPath}`, agent: secondary, path: secondaryPath, where: server.alias },
  };
  const resolver: EndpointResolver = { resolve: async (volref) => [endpoints.primary, endpoints.secondary].find((e) => e.volref === volref)! };
  const store = new PairStore(join(dir, `${name}-orchestrator`));
  const created = await createPair(store, resolver, { name, primary: endpoints.primary.volref, secondary: endpoints.secondary.volref });
  const first = await replicatePair({ store, pair: created, endpoints, once: true });
  expect(first.sync?.method).toBe('tardy');
  expect(first.inSync).toBe(true);
  await writeRandomRegions(primary, primaryPath, regionBytes, pick(seededRandom(seed + 1), backlogRegions), seed + 1);
  const state = await primary.trackingState(primaryPath, created.pairId);
  expect(state.oosRegions).toBe(backlogRegions);
  return { store, record: await store.require(name), endpoints, primary, secondary, remoteHome };
}

/**
 * A fault injected in the middle of a batch: when the secondary's `afterWrites`-th shipping
 * write is issued (the earlier ones issued or landed, the batch's others still to come). A
 * fault between batches would be absorbed by RemoteHost reconnecting before the next call,
 * never reaching the shipper's retry path. Then notes whether shipping resumed: regions
 * shipped after a retry.
 */
class FaultMidBatch {
  writesBeforeFault = -1;
  /** Unshipped regions the last progress report before the fault showed. */
  lagAtFault = -1;
  retrying = 0;
  resumed = false;
  /** From the fault to the shipper's first retry. */
  noticedAfterMs = -1;
  private injectedAtMs = -1;
  readonly warnings: string[] = [];
  private last: ShipProgress | undefined;
  private regionsAtRetry = -1;

  constructor(
    private readonly afterWrites: number,
    private readonly inject: () => void,
  ) {}

  /** The secondary's agent as the shipper sees it: the fault fires as the chosen write is issued. */
  wrap(endpoints: PairEndpoints): PairEndpoints {
    const agent = recordingAgent(endpoints.secondary.agent, {
      onWrite: (total) => {
        if (total !== this.afterWrites) return;
        this.writesBeforeFault = total - 1;
        this.lagAtFault = this.last ? this.last.oosRegions + this.last.inFlightRegions : -1;
        this.injectedAtMs = performance.now();
        this.inject();
      },
    });
    return { ...endpoints, secondary: { ...endpoints.secondary, agent } };
  }

  readonly onProgress = (p: ShipProgress): void => {
    this.last = p;
    if (p.state === 'retrying') {
      if (this.retrying === 0 && this.injectedAtMs >= 0) this.noticedAfterMs = Math.round(performance.now() - this.injectedAtMs);
      this.retrying += 1;
      this.regionsAtRetry = p.regionsTransferred;
    } else if (this.retrying > 0 && p.regionsTransferred > this.regionsAtRetry) {
      this.resumed = true;
    }
  };

  readonly onWarning = (message: string): void => {
    this.warnings.push(message);
  };

  /** Until shipping resumed after the fault; a timeout says how far it got. */
  async resumedAfterFault(timeoutMs: number): Promise<void> {
    await until(() => this.resumed, timeoutMs, 'shipping to resume after the fault').catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(this.describe())}`);
    });
  }

  describe(): object {
    return {
      writesBeforeFault: this.writesBeforeFault,
      lagAtFault: this.lagAtFault,
      retrying: this.retrying,
      noticedAfterMs: this.noticedAfterMs,
      warnings: this.warnings,
      last: this.last,
    };
  }

  /** The fault hit a batch with the secondary partly written and regions left to ship, and the shipper retried. */
  expectMidShipping(): void {
    expect(this.writesBeforeFault).toBe(this.afterWrites - 1);
    expect(this.lagAtFault).toBeGreaterThan(batchRegionsMax);
    expect(this.retrying).toBeGreaterThan(0);
    // The retry names the dropped connection: the interrupted call's own error, or (since a
    // flush vouches only for its own session, 10d0f17) the flush refusing writes acknowledged
    // on the dropped one.
    const dropped = /interrupted \((.* )?connection to \S+ dropped (while|and may not be durable).*\); retrying in \d+ ms/;
    expect(this.warnings.some((w) => dropped.test(w))).toBe(true);
  }
}

/** Byte for byte, by verify's signatures, and no protective snapshot left on the secondary. */
async function expectConverged(pair: RemotePair): Promise<void> {
  const { primary, secondary } = pair.endpoints;
  expect(await sameBytes(primary.path, secondary.path, sizeBytes)).toBe(true);
  expect((await verifyPair(pair.record, pair.endpoints)).regionsDiffering).toBe(0);
  const state = await pair.primary.trackingState(primary.path, pair.record.pairId);
  expect(state.oosRegions + state.inFlightRegions).toBe(0);
  expect((await pair.secondary.snapshotList(secondary.path)).snapshots.filter((s) => s.label.startsWith(protectSnapshotLabelPrefix))).toEqual([]);
  expect((await pair.secondary.volumeState(secondary.path)).members[0]!.protectSnapshotId).toBeNull();
}

describe('continuous replication under faults over SSH', () => {
  // dial-stdio: the agent's death ends `agent dial-stdio`, so the channel closes at once.
  // auto (sshd relaying to the agent's socket, the default): sshd forwards only an EOF and keeps
  // the channel half-open until this side writes again; RpcPeer does not take the stream's end
  // as a close, so when no write follows the death is noticed by the next RPC keepalive (up to
  // 15 s). Reported as an engine bug; it delays the retry, it loses nothing.
  for (const [index, [agentChannel, via]] of (
    [
      ['dial-stdio', 'dial-stdio'],
      ['auto', 'streamlocal'],
    ] as const
  ).entries()) {
    it(`the secondary's agent killed mid-shipping (${via}): replicate --once retries, the host restarts the agent, nothing is lost`, async () => {
      const seed = baseSeed + index;
      console.log(`[continuous-faults] killed agent (${via}) seed ${seed}`);
      const pair = await syncedRemotePair(`killed-agent-${via}`, sshd, seed, 128, agentChannel);
      expect(pair.secondary.status.via).toBe(via);
      const before = await agentInfoOf(pair.remoteHome);
      expect(before?.pid).toEqual(expect.any(Number));
      const fault = new FaultMidBatch(48, () => process.kill(before!.pid, 'SIGKILL'));
      const writer = new RandomWriter(pair.primary, pair.endpoints.primary.path, regionBytes, regionCount, seed + 2);
      writer.start();
      const shipping = replicatePair({
        store: pair.store,
        pair: pair.record,
        endpoints: fault.wrap(pair.endpoints),
        once: true,
        batchRegionsMax,
        onProgress: fault.onProgress,
        onWarning: fault.onWarning,
      });
      shipping.catch(() => undefined); // awaited below; a failure must not go unhandled while we wait
      try {
        await fault.resumedAfterFault(30_000);
      } finally {
        await writer.stop();
      }
      const summary = await shipping;
      console.log(`[continuous-faults] killed agent (${via}): the shipper retried ${fault.noticedAfterMs} ms after the kill`);
      fault.expectMidShipping();
      if (via === 'dial-stdio') expect(fault.noticedAfterMs).toBeLessThan(10_000); // a reconnect, well short of the 15 s keepalive
      expect(summary.retries).toBeGreaterThan(0);
      expect(summary.protectSnapshots).toBe(1); // the catch-up's, kept across the kill, released in sync
      expect(writer.written.size).toBeGreaterThan(0);
      // A new agent serves the remote home: the reconnect started it through the SSH session.
      const after = await agentInfoOf(pair.remoteHome);
      expect(after?.pid).toEqual(expect.any(Number));
      expect(after!.pid).not.toBe(before!.pid);
      const last = await replicatePair({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, once: true });
      expect(last.inSync).toBe(true);
      await expectConverged(pair);
    });
  }

  it('the SSH link dropped mid-shipping (per-connection sshd killed): a running shipper reconnects and converges', async () => {
    const seed = baseSeed + 10;
    console.log(`[continuous-faults] dropped link seed ${seed}`);
    const pair = await syncedRemotePair('dropped-link', sshd, seed, 128);
    const agentBefore = await agentInfoOf(pair.remoteHome);
    let dropped = 0;
    const fault = new FaultMidBatch(48, () => (dropped = sshd.dropConnections()));
    const writer = new RandomWriter(pair.primary, pair.endpoints.primary.path, regionBytes, regionCount, seed + 2);
    writer.start();
    const controller = new AbortController();
    const shipping = shipContinuous({
      pair: pair.record,
      endpoints: fault.wrap(pair.endpoints),
      once: false,
      signal: controller.signal,
      batchRegionsMax,
      onProgress: fault.onProgress,
      onWarning: fault.onWarning,
    });
    shipping.catch(() => undefined);
    try {
      await fault.resumedAfterFault(30_000);
      await writer.stop();
      await waitInSync(pair.store, pair.record, pair.endpoints, { timeoutMs: 30_000 });
    } finally {
      await writer.stop();
      controller.abort();
    }
    await expect(shipping).rejects.toThrow(/stopped/);
    expect(dropped).toBeGreaterThan(0);
    fault.expectMidShipping();
    expect(pair.secondary.status.connections).toBeGreaterThanOrEqual(2);
    // Only the link dropped: the secondary's agent lived on.
    expect((await agentInfoOf(pair.remoteHome))?.pid).toBe(agentBefore?.pid);
    expect(writer.written.size).toBeGreaterThan(0);
    await expectConverged(pair);
  });
});

// A slow, lossy link without netem: this kernel (and CI's) has no sch_netem and no modules to
// load, so the two halves of what netem did come from elsewhere. sshd runs in a network
// namespace reached over a veth pair; an nftables rule there drops 2 % of the packets the
// namespace receives and sends on that link (numgen draws from the kernel's RNG, which a test
// cannot seed; only the data and the writer are seeded), and the SSH client reaches sshd
// through a userspace relay on 127.0.0.1 that delays every chunk 20 ms each way. The delay is
// seen by SSH and the RPC above it, not by the TCP connection across the veth, so lost packets
// are recovered by TCP at that link's round trip.
describe('continuous replication over a lossy, slow link (netns + nftables 2 % loss, 20 ms delay relay; no netem in this kernel)', () => {
  const suffix = String(process.pid % 10_000_000);
  const namespace = `tm-faults-${suffix}`;
  const hostLink = `tmfh${suffix}`;
  const namespaceLink = `tmfn${suffix}`;
  const octet = process.pid % 250;
  const hostAddress = `10.213.${octet}.1`;
  const namespaceAddress = `10.213.${octet}.2`;
  const lossTable = 'tidemark_loss';
  /** One packet in `lossOneIn`, each way: 2 %. */
  const lossOneIn = 50;
  const delayMs = 20;
  let sshdInNamespace: TestSshd | undefined;
  let relay: DelayRelay | undefined;
  let namespaceMade = false;

  afterAll(async () => {
    // Each step runs even if an earlier one failed, so nothing outlives the test.
    await relay?.dispose().catch(() => undefined);
    await sshdInNamespace?.stop().catch(() => undefined);
    if (namespaceMade) {
      // Removing the namespace removes its nftables table and its end of the veth pair, and with
      // that the host's end.
      spawnSync('ip', ['netns', 'delete', namespace]);
      spawnSync('ip', ['link', 'delete', hostLink], { stdio: 'ignore' });
    }
  });

  /** The namespace, the veth pair with addresses, and the nftables loss on the namespace's side; throws naming what is missing. */
  function makeLossyNamespace(): void {
    requireTool('ip');
    const nft = requireTool('nft');
    runTool('ip', ['netns', 'add', namespace]);
    namespaceMade = true;
    runTool('ip', ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', namespaceLink]);
    runTool('ip', ['link', 'set', namespaceLink, 'netns', namespace]);
    runTool('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostLink]);
    runTool('ip', ['link', 'set', hostLink, 'up']);
    runTool('ip', ['netns', 'exec', namespace, 'ip', 'addr', 'add', `${namespaceAddress}/30`, 'dev', namespaceLink]);
    runTool('ip', ['netns', 'exec', namespace, 'ip', 'link', 'set', namespaceLink, 'up']);
    runTool('ip', ['netns', 'exec', namespace, 'ip', 'link', 'set', 'lo', 'up']);
    // Only the veth is lossy: the namespace's loopback (sshd to the agent) is not.
    const drop = `numgen random mod ${lossOneIn} 0 counter drop`;
    const ruleset = [
      `table inet ${lossTable} {`,
      `  chain input { type filter hook input priority 0; policy accept; iifname "${namespaceLink}" ${drop}; }`,
      `  chain output { type filter hook output priority 0; policy accept; oifname "${namespaceLink}" ${drop}; }`,
      '}',
      '',
    ].join('\n');
    runTool('ip', ['netns', 'exec', namespace, nft, '-f', '-'], Buffer.from(ruleset));
  }

  /** Packets the loss rules dropped so far, both ways, from their counters. */
  function lossDrops(): number {
    const listed = runTool('ip', ['netns', 'exec', namespace, requireTool('nft'), '-j', 'list', 'table', 'inet', lossTable]);
    const items = (JSON.parse(listed) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] }).nftables;
    const counters = items.flatMap((item) => item.rule?.expr.flatMap((e) => (e.counter ? [e.counter.packets] : [])) ?? []);
    if (counters.length !== 2) throw new Error(`expected the two loss rules' counters in table ${lossTable}: ${listed}`);
    return counters.reduce((a, b) => a + b, 0);
  }

  it('20 ms delay each way and 2 % loss while shipping a few MiB under a writer: converges, nothing lost', async () => {
    const seed = baseSeed + 20;
    console.log(`[continuous-faults] lossy link (nftables 1 in ${lossOneIn} dropped, relay ${delayMs} ms each way) seed ${seed}`);
    makeLossyNamespace();
    sshdInNamespace = await startSshd(join(dir, 'sshd-netns'), { netns: { name: namespace, address: namespaceAddress } });
    relay = await startDelayRelay({ targetAddress: namespaceAddress, targetPort: sshdInNamespace.port, delayMs });
    // The same sshd, reached through the relay: a config whose alias names the relay's port.
    const viaRelayConfig = join(dir, 'ssh-config-via-relay');
    const direct = await readFile(sshdInNamespace.sshConfigPath, 'utf8');
    await writeFile(viaRelayConfig, direct.replace(/HostName .*/, `HostName ${relay.address}`).replace(/Port .*/, `Port ${relay.port}`));
    const pair = await syncedRemotePair('lossy', { ...sshdInNamespace, sshConfigPath: viaRelayConfig }, seed, 64);
    expect(pair.secondary.status.target).toMatch(new RegExp(`@127\\.0\\.0\\.1:${relay.port}$`));
    expect(relay.connectionCount()).toBeGreaterThan(0);
    // The delay is there: a round trip to the secondary's agent crosses the relay both ways.
    const pingStartMs = performance.now();
    await pair.secondary.info();
    const roundTripMs = performance.now() - pingStartMs;
    console.log(`[continuous-faults] lossy link: round trip to the agent ${roundTripMs.toFixed(1)} ms`);
    expect(roundTripMs).toBeGreaterThanOrEqual(2 * delayMs);
    const dropsBefore = lossDrops();
    const writer = new RandomWriter(pair.primary, pair.endpoints.primary.path, regionBytes, regionCount, seed + 2);
    const progress: ShipProgress[] = [];
    writer.start();
    const controller = new AbortController();
    const shipping = shipContinuous({
      pair: pair.record,
      endpoints: pair.endpoints,
      once: false,
      signal: controller.signal,
      batchRegionsMax,
      onProgress: (p) => progress.push(p),
    });
    shipping.catch(() => undefined);
    try {
      // A few MiB shipped while the writer runs, then the writer stops and the shipper catches up.
      await until(() => (progress.at(-1)?.bytesTransferred ?? 0) >= 4 * 2 ** 20, 30_000, '4 MiB shipped over the lossy link');
      await writer.stop();
      await waitInSync(pair.store, pair.record, pair.endpoints, { timeoutMs: 30_000 });
    } finally {
      await writer.stop();
      controller.abort();
    }
    await expect(shipping).rejects.toThrow(/stopped/);
    expect(writer.written.size).toBeGreaterThan(0);
    // Packets were lost on the link while shipping; TCP and the shipper carried on.
    const dropped = lossDrops() - dropsBefore;
    console.log(`[continuous-faults] lossy link: ${dropped} packets dropped while shipping`);
    expect(dropped).toBeGreaterThan(0);
    await expectConverged(pair);
  });
});

/**
 * A secondary whose acknowledged writes sit in a volatile cache until `flush` (a host's page
 * cache); once armed, its `crashAtWrite`-th write "crashes the host": the cache is lost, that
 * call fails DISCONNECTED, and the next call reaches a restarted agent — what RemoteHost does
 * when it reconnects inside its backoff window.
 */
function volatileSecondary(inner: AgentApi, crashAtWrite: number): { agent: AgentApi; arm(): void; crashes(): number } {
  const cache = new Map<number, { path: string; data: Uint8Array; auth: WriteAuth | undefined }>();
  let armed = false;
  let writes = 0;
  let crashes = 0;
  let crashedUnflushed = false;
  const agent = new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'writeRegion') {
        return async (path: string, regionIndex: number, data: Uint8Array, options?: { auth?: WriteAuth }) => {
          if (!armed) return target.writeRegion(path, regionIndex, data, options);
          writes += 1;
          if (writes === crashAtWrite) {
            cache.clear();
            crashes += 1;
            crashedUnflushed = true;
            throw new TidemarkError('DISCONNECTED', 'the secondary host crashed (test)', 'the next operation reconnects');
          }
          cache.set(regionIndex, { path, data: Buffer.from(data), auth: options?.auth });
        };
      }
      if (property === 'flush') {
        return async (path: string) => {
          if (crashedUnflushed) {
            // RemoteHost's contract: a flush on the new session does not vouch for writes the old one acknowledged.
            crashedUnflushed = false;
            cache.clear();
            throw new TidemarkError(
              'DISCONNECTED',
              'writes were acknowledged before the connection dropped and may not be durable (test)',
              'they are sent again',
            );
          }
          for (const [regionIndex, write] of cache) await target.writeRegion(write.path, regionIndex, write.data, { auth: write.auth });
          cache.clear();
          await target.flush(path);
        };
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
  return { agent, arm: () => (armed = true), crashes: () => crashes };
}

describe('continuous replication when the secondary host crashes mid-batch', () => {
  // A flush after a reconnect must not vouch for writes the crashed host acknowledged: RemoteHost
  // refuses it (DISCONNECTED; test/system/remote-flush.test.ts shows that against a real sshd),
  // and the fake below keeps that contract. The conveyor then sends those regions again instead
  // of settling them as shipped (before the fix they left MOOS and the secondary silently
  // differed in the 9 regions acknowledged before the crash).
  it('regions acknowledged but not flushed before the crash are resent, never settled as shipped', async () => {
    const seed = baseSeed + 30;
    console.log(`[continuous-faults] volatile secondary seed ${seed}`);
    let secondary: ReturnType<typeof volatileSecondary> | undefined;
    const pair = await makeLocalPair(await tempDir(), {
      sizeBytes,
      regionBytes,
      prepare: (agent, primaryPath) => writeRandomRegions(agent, primaryPath, regionBytes, pick(seededRandom(seed), 32), seed),
      wrapSecondary: (agent) => (secondary = volatileSecondary(agent, 10)).agent,
    });
    const first = await replicatePair({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, once: true });
    expect(first.inSync).toBe(true);
    await writeRandomRegions(pair.agent, pair.primaryPath, regionBytes, pick(seededRandom(seed + 1), 40), seed + 1);
    secondary!.arm();
    const summary = await shipContinuous({ pair: await pair.store.require('p'), endpoints: pair.endpoints, once: true, batchRegionsMax, protect: false });
    expect(secondary!.crashes()).toBe(1);
    expect(summary.retries).toBeGreaterThan(0);
    expect(summary.inSync).toBe(true);
    const verified = await verifyPair(pair.record, pair.endpoints);
    console.log(`[continuous-faults] volatile secondary: ${verified.regionsDiffering} regions differ after "in sync"`);
    expect(verified.regionsDiffering).toBe(0);
    expect(await sameBytes(pair.primaryPath, pair.secondaryPath, sizeBytes)).toBe(true);
  });
});
