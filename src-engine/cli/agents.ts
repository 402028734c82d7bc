// How CLI commands reach agents: the home's agent (the running one through its socket, so it
// sees every write it owns, else an in-process one that owns the home while the command runs) for local VOLREFs, and a RemoteHost per
// SSH host for remote ones. An AgentPool is an EndpointResolver for replication commands.

import { dirname, join, resolve } from 'node:path';
import {
  LocalAgent,
  RpcAgent,
  awaitShortLivedOwner,
  connectAgentSocket,
  formatVolRef,
  parseVolRef,
  startAgentDaemon,
  type AgentApi,
  type AgentDaemon,
} from '../agent';
import { isTidemarkError } from '../errors';
import { ensureHomeDir, resolveHomeDir } from '../home';
import { PairStore, type EndpointResolver, type PairEndpoints, type PairRecord, type VolumeEndpoint } from '../replication';
import { RemoteHost, knownAgentsFile, sshPeerLinks } from '../ssh';
import { RpcPeer } from '../transport';
import type { GlobalOptions, Io } from './output';
import { hostKeyApprover, secretAsker } from './prompts';

/** How long a command runs: quick (a person waits for its answer) or long work (sync, replication, images). */
export type CommandLifetime = 'short' | 'long';

/** In-process agents that serve their home's socket: other commands on the home go through them. */
const homeOwners = new WeakSet<AgentApi>();

interface HomeAgent {
  readonly agent: AgentApi;
  /** Lets go of the agent: an owner first waits for the commands it serves to finish. */
  release(): Promise<void>;
}

/**
 * The home's agent: the running one when its socket answers; otherwise this process becomes
 * the home's owner — an in-process agent that serves the socket while the command runs, so a
 * command started meanwhile goes through it and never holds a second copy of the tracking
 * (docs/home-layout.md). A long command waits for a quick one that owns the home to exit
 * rather than depend on it. When the socket cannot be bound (an odd file system), the agent
 * stays private to this process.
 */
export async function openHomeAgent(homeDir: string, lifetime: CommandLifetime, notice: (line: string) => void): Promise<HomeAgent> {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (lifetime === 'long') await awaitShortLivedOwner(homeDir, notice);
    const socket = await connectAgentSocket(homeDir).catch(() => undefined);
    if (socket) {
      const peer = new RpcPeer(socket, { role: 'client', keepaliveMs: 0 });
      await peer.handshake();
      const agent = new RpcAgent(peer);
      return { agent, release: () => agent.dispose() };
    }
    const local = new LocalAgent(homeDir, { purpose: 'tidemark CLI', shortLived: lifetime === 'short', peerLinks: sshPeerLinks });
    const daemon = await startAgentDaemon(homeDir, () => undefined, local).catch(async (error: unknown) => {
      await local.dispose();
      // Another command became the owner between the look and the bind: go through it.
      if (isTidemarkError(error) && error.code === 'ALREADY_EXISTS') return 'taken' as const;
      return undefined;
    });
    if (daemon === 'taken') continue;
    if (daemon === undefined) break;
    homeOwners.add(local);
    return { agent: local, release: () => releaseOwnership(daemon, local, notice) };
  }
  const agent = new LocalAgent(homeDir, { purpose: 'tidemark CLI', peerLinks: sshPeerLinks });
  return { agent, release: () => agent.dispose() };
}

/** An owner's end: the commands it serves finish first (Ctrl-C stops them), then its agent closes. */
async function releaseOwnership(daemon: AgentDaemon, agent: LocalAgent, notice: (line: string) => void): Promise<void> {
  if (daemon.clientCount > 0) {
    notice(`${daemon.clientCount} other tidemark command(s) on this home go through this process: waiting for them to finish (Ctrl-C stops them)`);
    let interrupted: (() => void) | undefined;
    const interrupt = new Promise<void>((resolve) => {
      interrupted = resolve;
      process.once('SIGINT', resolve);
    });
    await Promise.race([daemon.idle(), interrupt]);
    process.off('SIGINT', interrupted!);
  }
  await daemon.close();
  await agent.dispose();
}

export class AgentPool implements EndpointResolver {
  private local: Promise<HomeAgent> | undefined;
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

  private notice = (line: string): void => {
    if (!this.global.quiet) this.io.stderr.write(`tidemark: ${line}\n`);
  };

  async localAgent(): Promise<AgentApi> {
    this.local ??= this.homeDir().then((homeDir) => openHomeAgent(homeDir, this.lifetime, this.notice));
    return (await this.local).agent;
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
   * serves its socket now, else a new in-process one that loads the tracking from disk. Nothing
   * when this process owns the home: every command went through its agent, whose view is whole
   * (and letting go would wait for the commands it serves).
   */
  async reopenLocal(): Promise<void> {
    const current = await this.local?.catch(() => undefined);
    if (current && homeOwners.has(current.agent)) return;
    this.local = undefined;
    await current?.release();
  }

  async dispose(): Promise<void> {
    const local = this.local;
    this.local = undefined;
    await (await local?.catch(() => undefined))?.release();
    for (const remote of this.remotes.values()) await remote.dispose();
    this.remotes.clear();
  }
}

/**
 * Whether this process opened one of the endpoints' volumes itself (an in-process agent: no
 * agent serves the home), so another process's tracking is invisible to it (docs/home-layout.md).
 */
export function isPrivateView(endpoints: PairEndpoints): boolean {
  return [endpoints.primary.agent, endpoints.secondary.agent].some((agent) => agent instanceof LocalAgent && !homeOwners.has(agent));
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
