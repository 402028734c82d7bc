// Local pairs for sync tests: one home's LocalAgent holds both volumes, a resolver maps paths
// to it, and a seeded writer writes through the primary's agent (so every write is tracked).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentApi } from '../../src-engine/agent';
import { LocalAgent } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import {
  GroupStore,
  PairStore,
  createPair,
  replicatePair,
  runSync,
  type GroupRecord,
  type EndpointResolver,
  type PairEndpoints,
  type PairRecord,
  type VolumeEndpoint,
} from '../../src-engine/replication';
import { afterEach } from 'vitest';
import { seededRandom } from './random';

const agents: LocalAgent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.dispose();
});

export function resolverFor(agent: AgentApi, where = 'this machine'): EndpointResolver {
  return { resolve: async (volref: string): Promise<VolumeEndpoint> => ({ volref, agent, path: volref, where }) };
}

export interface LocalPair {
  readonly agent: LocalAgent;
  readonly store: PairStore;
  readonly record: PairRecord;
  readonly endpoints: PairEndpoints;
  readonly primaryPath: string;
  readonly secondaryPath: string;
  readonly regionCount: number;
}

export interface LocalPairOptions {
  readonly sizeBytes: number;
  readonly regionBytes: number;
  /** Called with the agent before the pair is created: put data on either side. */
  readonly prepare?: (agent: AgentApi, primaryPath: string, secondaryPath: string) => Promise<void>;
  /** Wraps the secondary's agent (a recording or failing wrapper); the pair's endpoints use the result. */
  readonly wrapSecondary?: (agent: AgentApi) => AgentApi;
  readonly mode?: 'continuous' | 'periodic';
  /** A periodic pair's --interval. */
  readonly intervalMs?: number;
}

export async function makeLocalPair(dir: string, options: LocalPairOptions): Promise<LocalPair> {
  const agent = new LocalAgent(join(dir, 'home'));
  agents.push(agent);
  const primaryPath = join(dir, 'primary.img');
  const secondaryPath = join(dir, 'secondary.img');
  await agent.volumeCreate(primaryPath, options.sizeBytes, options.regionBytes);
  await agent.volumeCreate(secondaryPath, options.sizeBytes, options.regionBytes);
  await options.prepare?.(agent, primaryPath, secondaryPath);
  const store = new PairStore(join(dir, 'home'));
  const record = await createPair(store, resolverFor(agent), {
    name: 'p',
    primary: primaryPath,
    secondary: secondaryPath,
    ...(options.mode ? { mode: options.mode } : {}),
    ...(options.intervalMs === undefined ? {} : { intervalMs: options.intervalMs }),
  });
  const secondaryAgent = options.wrapSecondary ? options.wrapSecondary(agent) : agent;
  const endpoints: PairEndpoints = {
    primary: { volref: primaryPath, agent, path: primaryPath, where: 'this machine' },
    secondary: { volref: secondaryPath, agent: secondaryAgent, path: secondaryPath, where: 'this machine' },
  };
  return { agent, store, record, endpoints, primaryPath, secondaryPath, regionCount: Math.ceil(options.sizeBytes / options.regionBytes) };
}

/** Writes seeded random regions through `agent` until stopped; records which regions it wrote. */
export class RandomWriter {
  readonly written = new Set<number>();
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly agent: AgentApi,
    private readonly path: string,
    private readonly regionBytes: number,
    private readonly regionCount: number,
    readonly seed: number,
  ) {}

  start(): void {
    const random = seededRandom(this.seed);
    this.running = (async () => {
      while (!this.stopped) {
        const r = Math.floor(random() * this.regionCount);
        await this.agent.writeRegion(this.path, r, randomRegion(Math.floor(random() * 2 ** 32), this.regionBytes));
        this.written.add(r);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}

/** Seeded random bytes from 32-bit words (xorshift32): fast enough for megabytes. */
export function randomRegion(seed: number, bytes: number): Buffer {
  const words = new Uint32Array(Math.ceil(bytes / 4));
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, bytes);
}

/** Writes `regions` through the agent; region r's data depends only on (seed, r). */
export async function writeRandomRegions(agent: AgentApi, path: string, regionBytes: number, regions: Iterable<number>, seed: number): Promise<void> {
  for (const r of regions) await agent.writeRegion(path, r, randomRegion(seed * 1_000_003 + r, regionBytes));
}

/** The first `bytes` of both files are equal. */
export async function sameBytes(a: string, b: string, bytes: number): Promise<boolean> {
  const [x, y] = await Promise.all([readFile(a), readFile(b)]);
  return x.subarray(0, bytes).equals(y.subarray(0, bytes));
}

/** An AgentApi that counts writeRegion calls per region, and can start failing every call after `failAfterWrites`. */
export function recordingAgent(
  inner: AgentApi,
  options: { failAfterWrites?: () => number | undefined; onWrite?: (totalWrites: number) => void } = {},
): AgentApi & { writes: Map<number, number> } {
  const writes = new Map<number, number>();
  let total = 0;
  const failing = () => {
    const limit = options.failAfterWrites?.();
    return limit !== undefined && total >= limit;
  };
  const dropped = () => new TidemarkError('DISCONNECTED', 'link to the secondary dropped (test)', 'the next operation reconnects');
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'writes') return writes;
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (failing()) return Promise.reject(dropped());
        if (property === 'writeRegion') {
          total += 1;
          const r = args[1] as number;
          writes.set(r, (writes.get(r) ?? 0) + 1);
          options.onWrite?.(total);
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as AgentApi & { writes: Map<number, number> };
}

/**
 * `replicate --once` started beside a shipper (the caller holds the pair's lock): the run, the
 * warnings it gave, and whether it has returned yet.
 */
export function onceBesideShipper(pair: Pick<LocalPair, 'store' | 'record' | 'endpoints'>) {
  const warnings: string[] = [];
  let returned = false;
  const run = replicatePair({ store: pair.store, pair: pair.record, endpoints: pair.endpoints, once: true, onWarning: (w) => warnings.push(w) }).then(
    (summary) => {
      returned = true;
      return summary;
    },
  );
  return { run, warnings, returned: () => returned };
}

/** Periodic pairs a, b, … of primaries[i] → secondaries[i], each synced, in group `groupName`. */
export async function syncedGroup(
  store: PairStore,
  resolver: EndpointResolver,
  volumes: { readonly primaries: readonly string[]; readonly secondaries: readonly string[]; readonly regionBytes: number },
  groupName: string,
): Promise<GroupRecord> {
  const names = volumes.primaries.map((_, i) => String.fromCharCode(97 + i));
  for (const [i, name] of names.entries()) {
    const [primary, secondary] = [volumes.primaries[i]!, volumes.secondaries[i]!];
    const pair = await createPair(store, resolver, { name, primary, secondary, regionBytes: volumes.regionBytes, mode: 'periodic' });
    const endpoints = { primary: await resolver.resolve(primary), secondary: await resolver.resolve(secondary) };
    await runSync({ store, pair, endpoints, method: 'auto' });
  }
  return new GroupStore(store.homeDir).create(groupName, names, store);
}
