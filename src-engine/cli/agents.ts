// How CLI commands reach agents: the home's agent (the running one through its socket, so it
// sees every write it owns, else an in-process one) for local VOLREFs, and a RemoteHost per
// SSH host for remote ones. An AgentPool is an EndpointResolver for replication commands.

import { dirname, join, resolve } from 'node:path';
import { LocalAgent, RpcAgent, connectAgentSocket, formatVolRef, parseVolRef, type AgentApi } from '../agent';
import { ensureHomeDir, resolveHomeDir } from '../home';
import { PairStore, type EndpointResolver, type PairEndpoints, type PairRecord, type VolumeEndpoint } from '../replication';
import { RemoteHost, knownAgentsFile, sshPeerLinks } from '../ssh';
import { RpcPeer } from '../transport';
import type { GlobalOptions, Io } from './output';
import { hostKeyApprover, secretAsker } from './prompts';

/** The home's agent: the running one when its socket answers, otherwise an in-process agent. */
export async function openHomeAgent(homeDir: string): Promise<AgentApi> {
  const socket = await connectAgentSocket(homeDir).catch(() => undefined);
  if (!socket) return new LocalAgent(homeDir, { purpose: 'tidemark CLI', peerLinks: sshPeerLinks });
  const peer = new RpcPeer(socket, { role: 'client', keepaliveMs: 0 });
  await peer.handshake();
  return new RpcAgent(peer);
}

/** How long a command runs: quick (a person waits for its answer) or long work (sync, replication, images). */
export type CommandLifetime = 'short' | 'long';

export class AgentPool implements EndpointResolver {
  private local: Promise<AgentApi> | undefined;
  private readonly remotes = new Map<string, RemoteHost>();

  constructor(
    private readonly io: Io,
    private readonly global: GlobalOptions,
    /** A quick command tries a host once (a person is waiting); long work reconnects with backoff. */
    private readonly lifetime: CommandLifetime = 'short',
  ) {}

  private homeDir(): Promise<string> {
    return ensureHomeDir(resolveHomeDir(this.global.home, this.io.env));
  }

  localAgent(): Promise<AgentApi> {
    this.local ??= this.homeDir().then(openHomeAgent);
    return this.local;
  }

  async resolve(volref: string): Promise<VolumeEndpoint> {
    const ref = parseVolRef(volref);
    if (ref.kind === 'local') {
      const path = resolve(ref.path);
      return { volref: path, agent: await this.localAgent(), path, where: 'this machine' };
    }
    const where = `${ref.user ? `${ref.user}@` : ''}${ref.host}${ref.port ? `:${ref.port}` : ''}`;
    let remote = this.remotes.get(where);
    if (!remote) {
      const homeDir = await this.homeDir();
      const bundlePath = join(dirname(process.argv[1] ?? '.'), 'tidemark-agent.cjs');
      remote = new RemoteHost(ref.host, {
        tidemarkKnownHosts: join(homeDir, 'known_hosts'),
        approveHostKey: hostKeyApprover(this.io, this.global),
        askSecret: secretAsker(this.io),
        agentSocket: this.io.env.SSH_AUTH_SOCK ?? '',
        user: ref.user,
        port: ref.port,
        bundlePath,
        knownAgents: knownAgentsFile(join(homeDir, 'known-agents.json'), bundlePath),
        ...(this.lifetime === 'long' ? {} : { reconnectAttempts: 1 }),
      });
      this.remotes.set(where, remote);
    }
    const host = remote;
    return { volref: formatVolRef(ref), agent: remote, path: ref.path, where, sshTarget: () => host.sshTarget() };
  }

  /**
   * Closes this machine's agent so the next `resolve` opens it afresh: the home's agent if one
   * serves its socket now, else a new in-process one that loads the tracking from disk.
   */
  async reopenLocal(): Promise<void> {
    const local = this.local;
    this.local = undefined;
    await (await local?.catch(() => undefined))?.dispose();
  }

  async dispose(): Promise<void> {
    const local = this.local;
    this.local = undefined;
    await (await local?.catch(() => undefined))?.dispose();
    for (const remote of this.remotes.values()) await remote.dispose();
    this.remotes.clear();
  }
}

/**
 * Whether this process opened one of the endpoints' volumes itself (an in-process agent: no
 * agent serves the home), so another process's tracking is invisible to it (docs/home-layout.md).
 */
export function isPrivateView(endpoints: PairEndpoints): boolean {
  return [endpoints.primary.agent, endpoints.secondary.agent].some((agent) => agent instanceof LocalAgent);
}

/** The home's pair store. */
export const pairStoreOf = (io: Io, global: GlobalOptions) => new PairStore(resolveHomeDir(global.home, io.env));

/** Both sides of a recorded pair, resolved through the pool. */
export async function pairEndpointsOf(pool: AgentPool, record: PairRecord): Promise<PairEndpoints> {
  const [primary, secondary] = await Promise.all([pool.resolve(record.primary.volref), pool.resolve(record.secondary.volref)]);
  return { primary, secondary };
}

/** Runs `work` with a pool, disposed after. */
export async function withAgentPool<T>(io: Io, global: GlobalOptions, work: (pool: AgentPool) => Promise<T>, lifetime: CommandLifetime = 'short'): Promise<T> {
  const pool = new AgentPool(io, global, lifetime);
  try {
    return await work(pool);
  } finally {
    await pool.dispose();
  }
}
