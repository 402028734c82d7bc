// A host's agent over SSH: check the host's Node, upload the single-file agent bundle over
// SFTP to ~/.cache/tidemark/agent-<sha256>.cjs when it is absent, make sure the home's agent
// runs (`agent ensure`), and speak the agent RPC over a channel sshd relays to its socket —
// or, where the host or key forbids forwarding, over `agent dial-stdio`'s exec channel.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { RpcAgent } from '../agent';
import { TidemarkError } from '../errors';
import { RpcPeer } from '../transport';
import type { SshHostConfig } from './ssh-config';

const nodeMajorMin = 20;

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Runs a command and collects its output (for short commands only). */
function execCollect(client: Client, command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, channel) => {
      if (error) return reject(error);
      let stdout = '';
      let stderr = '';
      channel.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      channel.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      channel.on('close', (code: number | null) => resolve({ code, stdout, stderr }));
    });
  });
}

async function checkNode(client: Client, host: SshHostConfig): Promise<string> {
  const result = await execCollect(client, 'node --version');
  const version = /^v(\d+)\.\d+\.\d+/.exec(result.stdout.trim());
  if (result.code !== 0 || !version) {
    throw new TidemarkError(
      'UNSUPPORTED',
      `host ${host.hostName} has no Node.js (\`node --version\` ${result.code === 127 ? 'not found' : `failed: ${result.stderr.trim().slice(0, 80)}`})`,
      `install Node.js ${nodeMajorMin} or newer on ${host.hostName} (e.g. apt-get install nodejs)`,
    );
  }
  if (Number(version[1]) < nodeMajorMin) {
    throw new TidemarkError(
      'UNSUPPORTED',
      `host ${host.hostName} runs Node.js ${result.stdout.trim()}, Tidemark's agent needs ${nodeMajorMin} or newer`,
      `upgrade Node.js on ${host.hostName}`,
    );
  }
  return result.stdout.trim();
}

function sftpOf(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((error, sftp) => (error ? reject(error) : resolve(sftp))));
}

const sftpCall = <T>(run: (done: (error: Error | null | undefined, value?: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value as T))));

const digests = new Map<string, Promise<string>>();

/** The SHA-256 of the local agent bundle (read once per process). */
export function bundleDigestOf(bundlePath: string): Promise<string> {
  let digest = digests.get(bundlePath);
  if (!digest) {
    digest = readFile(bundlePath).then((bundle) => createHash('sha256').update(bundle).digest('hex'));
    digests.set(bundlePath, digest);
    digest.catch(() => digests.delete(bundlePath));
  }
  return digest;
}

/** Uploads the agent bundle unless the host already has this exact one; returns its path. */
export async function deployAgent(client: Client, bundlePath: string): Promise<string> {
  const bundle = await readFile(bundlePath);
  const digest = createHash('sha256').update(bundle).digest('hex');
  const remotePath = `.cache/tidemark/agent-${digest}.cjs`; // relative to the login home
  const sftp = await sftpOf(client);
  try {
    const present = await sftpCall<unknown>((done) => sftp.stat(remotePath, done)).then(
      () => true,
      () => false,
    );
    if (present) return remotePath;
    for (const dir of ['.cache', '.cache/tidemark']) await sftpCall<void>((done) => sftp.mkdir(dir, { mode: 0o700 }, done)).catch(() => undefined);
    const temporary = `${remotePath}.tmp-${process.pid}`;
    await sftpCall<void>((done) => sftp.writeFile(temporary, bundle, { mode: 0o600 }, done));
    await sftpCall<void>((done) => sftp.rename(temporary, remotePath, done)).catch(async (error: Error) => {
      // Another client may have deployed the same bundle meanwhile: that is fine.
      const there = await sftpCall<unknown>((done) => sftp.stat(remotePath, done)).then(
        () => true,
        () => false,
      );
      if (!there) throw error;
    });
    return remotePath;
  } finally {
    sftp.end();
  }
}

export interface RemoteAgent {
  readonly agent: RpcAgent;
  readonly nodeVersion: string;
  readonly agentPath: string;
  /** How the RPC reaches the agent: sshd relaying to its socket, or `agent dial-stdio`. */
  readonly via: 'streamlocal' | 'dial-stdio' | 'forced-command';
  /** The agent's socket on the host, when sshd relays to it (what a later connection may go straight to). */
  readonly socketPath: string | null;
}

/** What an earlier connection learnt: where the agent's socket is (the agent bundle it was for is the cache's business). */
export interface KnownAgent {
  readonly socketPath: string;
}

/**
 * 'forced-command': the key's authorized_keys line runs the agent (a per-pair key): no Node
 * check, no upload, no `agent ensure` — whatever is executed, sshd runs the forced command.
 */
export type AgentChannelMode = 'auto' | 'dial-stdio' | 'forced-command';

function execChannel(client: Client, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => client.exec(command, (error, stream) => (error ? reject(error) : resolve(stream))));
}

/**
 * sshd relaying straight to the agent's socket (`direct-streamlocal`): no Node relay process,
 * about a fifth less CPU on bulk reads. Null when the host or the key does not allow it
 * (AllowStreamLocalForwarding no, `restrict`): then `agent dial-stdio` is used.
 */
async function streamLocalChannel(client: Client, agentCommand: string): Promise<{ channel: ClientChannel; socketPath: string } | null> {
  const ensured = await execCollect(client, `${agentCommand} agent ensure`);
  const socketPath = ensured.stdout.trim();
  if (ensured.code !== 0 || !socketPath.startsWith('/')) return null;
  const channel = await forwardTo(client, socketPath);
  return channel ? { channel, socketPath } : null;
}

function forwardTo(client: Client, socketPath: string): Promise<ClientChannel | null> {
  return new Promise((resolve) => client.openssh_forwardOutStreamLocal(socketPath, (error, channel) => resolve(error ? null : channel)));
}

const knownAgentHandshakeMsMax = 5_000;
/** `agentPath` of a connection made the fast way (the running agent's bundle is not looked at). */
export const knownAgentPath = '(running agent, known socket)';

/**
 * The fast way in: straight to the socket an earlier connection used — no `node --version`, no
 * SFTP stat, no `agent ensure` (each an exec on the host; together about a second). Null when it
 * does not answer as an agent (stopped, moved, killed): then the full way runs.
 */
async function openKnownAgent(client: Client, known: KnownAgent): Promise<RemoteAgent | null> {
  const channel = await forwardTo(client, known.socketPath);
  if (!channel) return null;
  const peer = new RpcPeer(channel, { role: 'client' });
  try {
    const hello = await peer.handshake(knownAgentHandshakeMsMax);
    const nodeVersion = typeof hello.nodeVersion === 'string' ? `v${hello.nodeVersion}` : 'unknown';
    return { agent: new RpcAgent(peer), nodeVersion, agentPath: knownAgentPath, via: 'streamlocal', socketPath: known.socketPath };
  } catch {
    peer.close();
    return null;
  }
}

/** Opens the agent of `homeDir` (the host's default home when null) over an SSH client. */
export async function openRemoteAgent(
  client: Client,
  host: SshHostConfig,
  options: { bundlePath: string; homeDir?: string | null; mode?: AgentChannelMode; known?: KnownAgent | null },
): Promise<RemoteAgent> {
  if (options.mode === 'forced-command') return openForcedAgent(client);
  if (options.known && options.mode !== 'dial-stdio') {
    const fast = await openKnownAgent(client, options.known);
    if (fast) return fast;
  }
  const nodeVersion = await checkNode(client, host);
  const agentPath = await deployAgent(client, options.bundlePath);
  const agentCommand = `node ${shellQuote(agentPath)}${options.homeDir ? ` --home ${shellQuote(options.homeDir)}` : ''}`;
  const forwarded = options.mode === 'dial-stdio' ? null : await streamLocalChannel(client, agentCommand);
  const channel = forwarded?.channel ?? (await execChannel(client, `${agentCommand} agent dial-stdio`));
  const peer = new RpcPeer(channel, { role: 'client' });
  await peer.handshake();
  return { agent: new RpcAgent(peer), nodeVersion, agentPath, via: forwarded ? 'streamlocal' : 'dial-stdio', socketPath: forwarded?.socketPath ?? null };
}

/** The agent behind a key whose authorized_keys line forces `agent dial-stdio --pair ID`. */
async function openForcedAgent(client: Client): Promise<RemoteAgent> {
  const channel = await execChannel(client, 'tidemark-peer');
  const peer = new RpcPeer(channel, { role: 'client' });
  const hello = await peer.handshake();
  const nodeVersion = typeof hello.nodeVersion === 'string' ? `v${hello.nodeVersion}` : 'unknown';
  return { agent: new RpcAgent(peer), nodeVersion, agentPath: '(forced command)', via: 'forced-command', socketPath: null };
}
