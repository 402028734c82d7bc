// `tidemark serve NAME --nbd HOST:PORT | --nbd-socket PATH` (docs/replication.md "serve"): the
// pair's primary over NBD from the home's agent — this process becomes that agent when none
// runs, otherwise it asks the running one — with every write tracked (MOOS durable before the
// write is acknowledged), and, for a continuous pair, its changes shipped while it runs.
// SIGTERM/SIGINT stop cleanly; SIGKILL is safe (MOOS resends what was not shipped).

import type { Command } from 'commander';
import { LocalAgent, RpcAgent, connectAgentSocket, parseVolRef, startAgentDaemon, type AgentApi, type AgentDaemon, type NbdTarget } from '../agent';
import { TidemarkError } from '../errors';
import { ensureHomeDir, resolveHomeDir } from '../home';
import { PairStore, replicatePair, type PairEndpoints, type PairRecord, type ReplicateSummary, type VolumeEndpoint } from '../replication';
import { parseRate } from '../size';
import { RpcPeer } from '../transport';
import { AgentPool } from './agents';
import { StatusLine, printResult, type GlobalOptions, type Io } from './output';
import { shipProgressText } from './replicate-commands';
import { sshPeerLinks } from '../ssh';

interface ServeOptions {
  nbd?: string;
  nbdSocket?: string;
  secondary?: boolean;
  replicate: boolean;
  limitRate?: string;
  predict?: string;
}

/** HOST:PORT, [v6]:PORT or :PORT (loopback). */
export function parseNbdAddress(text: string): NbdTarget {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new TidemarkError('USAGE', `invalid NBD address "${text}"`, 'write HOST:PORT, e.g. 127.0.0.1:10809');
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}

function targetOf(options: ServeOptions): NbdTarget {
  if ((options.nbd === undefined) === (options.nbdSocket === undefined)) {
    throw new TidemarkError('USAGE', 'serve needs where to listen', 'give --nbd HOST:PORT or --nbd-socket PATH (one of them)');
  }
  return options.nbd !== undefined ? parseNbdAddress(options.nbd) : { socketPath: options.nbdSocket! };
}

/** The home's agent: the running one, or this process becomes it (serving agent.sock for other commands). */
async function homeAgent(homeDir: string, log: (line: string) => void): Promise<{ agent: AgentApi; daemon?: AgentDaemon; local?: LocalAgent }> {
  const socket = await connectAgentSocket(homeDir).catch(() => undefined);
  if (socket) {
    const peer = new RpcPeer(socket, { role: 'client', keepaliveMs: 0 });
    await peer.handshake();
    const agent = new RpcAgent(peer);
    const info = await agent.info();
    log(`using the running agent of ${homeDir} (pid ${info.pid}, ${info.purpose})`);
    return { agent };
  }
  const local = new LocalAgent(homeDir, { purpose: 'tidemark serve', peerLinks: sshPeerLinks });
  const daemon = await startAgentDaemon(homeDir, () => undefined, local);
  return { agent: local, daemon, local };
}

function localPath(volref: string, what: string, pair: PairRecord): string {
  const ref = parseVolRef(volref);
  if (ref.kind !== 'local') {
    throw new TidemarkError(
      'UNSUPPORTED',
      `the ${what} of pair "${pair.name}" is on ${ref.host}: serve exports volumes of this machine`,
      `run \`tidemark serve\` on ${ref.host}`,
    );
  }
  return ref.path;
}

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const stop = (signal: string) => () => resolve(signal);
    process.once('SIGTERM', stop('SIGTERM'));
    process.once('SIGINT', stop('SIGINT'));
  });
}

export function registerServeCommand(program: Command, io: Io, globals: () => GlobalOptions): void {
  program
    .command('serve')
    .description("export a pair's primary over NBD in the foreground, tracking every write and (continuous pairs) shipping it")
    .argument('<name>', 'the pair')
    .option('--nbd <host:port>', 'listen on TCP, e.g. 127.0.0.1:10809 (port 0: any free port)')
    .option('--nbd-socket <path>', 'listen on a Unix socket')
    .option('--secondary', "export the pair's secondary instead, read-only (inspection; it is locked until failover)")
    .option('--no-replicate', 'serve and track only; ship nothing (run `tidemark replicate` separately)')
    .option('--limit-rate <rate>', 'at most this many region bytes per second to the secondary, e.g. 50MiB/s')
    .option('--predict <regions>', 'MOOS prediction window N: a write to region E marks E..E+N (recorded for the pair)')
    .action(async (name: string, options: ServeOptions) => {
      const global = globals();
      const target = targetOf(options);
      const limitRateBytesPerSecond = options.limitRate === undefined ? undefined : parseRate(options.limitRate, '--limit-rate');
      const predictRegions = options.predict === undefined ? undefined : parsePredict(options.predict);
      const homeDir = await ensureHomeDir(resolveHomeDir(global.home, io.env));
      const pairs = new PairStore(homeDir);
      const pair = await pairs.require(name);
      const log = (line: string) => {
        if (!global.quiet) io.stderr.write(`tidemark: ${line}\n`);
      };
      const exported = options.secondary ? pair.secondary.volref : pair.primary.volref;
      const path = localPath(exported, options.secondary ? 'secondary' : 'primary', pair);
      const home = await homeAgent(homeDir, log);
      const pool = new AgentPool(io, global, 'long');
      const controller = new AbortController();
      let shipping: Promise<ReplicateSummary | undefined> | undefined;
      try {
        if (predictRegions !== undefined && !options.secondary) {
          await home.agent.pairUpdate(path, pair.pairId, { predictRegions });
        }
        const info = await home.agent.nbdExportStart(path, {
          name: pair.name,
          target,
          readOnly: options.secondary === true,
          ...(options.secondary ? {} : { pairId: pair.pairId }),
        });
        const tracking = options.secondary ? undefined : await home.agent.trackingState(path, pair.pairId);
        log(
          `serving ${options.secondary ? 'secondary (read-only)' : 'primary'} ${path} of pair ${pair.name} at ${info.uri}` +
            (tracking
              ? `; tracking writes (MOOS, predict ${tracking.predictRegions})${tracking.recoveredRegions > 0 ? `, ${tracking.recoveredRegions} regions recovered from MOOS` : ''}`
              : ''),
        );
        if (!options.secondary && options.replicate) {
          const endpoints = await endpointsFor(pair, home.agent, path, pool);
          log(`shipping changes to ${pair.secondary.volref} (${endpoints.secondary.where})`);
          shipping = startShipping(io, global, pairs, pair, endpoints, controller.signal, limitRateBytesPerSecond, log);
        }
        const signal = await Promise.race([waitForSignal(), ...(shipping ? [shipping.then(() => 'shipping ended')] : [])]);
        log(`stopping (${signal})`);
        controller.abort();
        const summary = await shipping;
        await home.agent.nbdExportStop(info.exportId).catch(() => undefined);
        printResult(io, global, { pair: pair.name, uri: info.uri, stoppedBy: signal, replication: summary ?? null }, () => `stopped serving ${pair.name}`);
      } finally {
        controller.abort();
        await shipping?.catch(() => undefined);
        await pool.dispose();
        await home.daemon?.close();
        await (home.local ?? home.agent).dispose();
      }
    });
}

function parsePredict(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 4096)
    throw new TidemarkError('USAGE', `invalid --predict "${text}"`, 'write a whole number of regions from 0 to 4096');
  return Number(text);
}

async function endpointsFor(pair: PairRecord, agent: AgentApi, path: string, pool: AgentPool): Promise<PairEndpoints> {
  const primary: VolumeEndpoint = { volref: pair.primary.volref, agent, path, where: 'this machine' };
  const ref = parseVolRef(pair.secondary.volref);
  const secondary: VolumeEndpoint =
    ref.kind === 'local' ? { volref: pair.secondary.volref, agent, path: ref.path, where: 'this machine' } : await pool.resolve(pair.secondary.volref);
  return { primary, secondary };
}

/** Replicates until stopped; a failure is reported and ends shipping, never serving. */
function startShipping(
  io: Io,
  global: GlobalOptions,
  store: PairStore,
  pair: PairRecord,
  endpoints: PairEndpoints,
  signal: AbortSignal,
  limitRateBytesPerSecond: number | undefined,
  log: (line: string) => void,
): Promise<ReplicateSummary | undefined> {
  const line = new StatusLine(io, global);
  return replicatePair({
    store,
    pair,
    endpoints,
    once: false,
    signal,
    limitRateBytesPerSecond,
    onProgress: (p) => line.draw(() => shipProgressText(p)),
    onCycle: (c) => log(`cycle ${c.cycle}: ${c.regionsTransferred} regions applied, the secondary holds the primary as of ${c.pointInTime}`),
    onWarning: (message) => log(`warning: ${message}`),
  }).then(
    (summary) => summary,
    (error: unknown) => {
      line.finish();
      if (!signal.aborted) log(`replication stopped: ${(error as Error).message}${error instanceof TidemarkError && error.hint ? ` (${error.hint})` : ''}`);
      return new Promise<undefined>((resolve) =>
        signal.aborted ? resolve(undefined) : signal.addEventListener('abort', () => resolve(undefined), { once: true }),
      );
    },
  );
}
