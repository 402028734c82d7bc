// The hosts of a long-lived process (the console): each added host has a RemoteHost that
// connects in the background and reconnects after drops. A connection that needs a person —
// an unknown host key, a key passphrase, a password — parks a question on the host; the
// console shows it and `answer` resumes the connection. Changed host keys are refused by the
// SSH layer with no question at all (nothing to click through).

import { homedir } from 'node:os';
import { join } from 'node:path';
import { TidemarkError } from '../errors';
import type { EventLog } from '../events';
import { RemoteHost, knownAgentsFile, loadSshConfig, type ConnectionState, type RemoteHostStatus, type SecretKind, type SecretRequest } from '../ssh';
import { HostStore, sshConfigAliases, type HostRecord } from './host-store';
import type { SecretVault } from './secret-vault';

export type HostQuestion =
  | { readonly id: number; readonly kind: 'host-key'; readonly hostPort: string; readonly fingerprint: string }
  | {
      readonly id: number;
      readonly kind: SecretKind;
      readonly prompt: string;
      readonly echo: boolean;
      readonly keyFile: string | null;
      /** The OS keychain that can remember the answer; null: memory only. */
      readonly keychain: string | null;
    };

export interface HostAnswer {
  /** For a host-key question. */
  readonly approve?: boolean;
  /** For a secret question: the secret, or null to decline. */
  readonly secret?: string | null;
  /** Keep the secret in the OS keychain (when one exists); otherwise memory only. */
  readonly remember?: boolean;
}

export interface HostView {
  readonly name: string;
  readonly target: string | null;
  readonly state: ConnectionState;
  readonly lastError: { readonly code: string; readonly message: string; readonly hint: string } | null;
  readonly nodeVersion: string | null;
  readonly agentVersion: string | null;
  readonly homeDir: string | null;
  readonly homeFreeBytes: number | null;
  readonly connections: number;
  readonly question: HostQuestion | null;
  readonly addedAtMs: number;
}

export interface HostManagerOptions {
  readonly bundlePath: string;
  readonly vault: SecretVault;
  readonly events?: EventLog;
  readonly sshConfigPath?: string;
  readonly userKnownHosts?: string;
  /** ssh-agent socket; undefined: $SSH_AUTH_SOCK. */
  readonly agentSocket?: string;
}

interface Pending {
  readonly question: HostQuestion;
  readonly resolve: (answer: HostAnswer) => void;
}

interface Entry {
  readonly record: HostRecord;
  readonly remote: RemoteHost;
  pending: Pending | null;
  agentVersion: string | null;
  homeDir: string | null;
  homeFreeBytes: number | null;
  reportedState: ConnectionState | null;
  /** Removed from the home (or the manager disposed): asks nothing, reports nothing. */
  gone: boolean;
  /** Passwords answered during the current attempt: kept once the host accepts them. */
  provisional: { slot: string; secret: string; persist: boolean }[];
}

export class HostManager {
  private readonly store: HostStore;
  private readonly entries = new Map<string, Entry>();
  private nextQuestionId = 1;
  private disposed = false;

  constructor(
    private readonly homeDir: string,
    private readonly options: HostManagerOptions,
  ) {
    this.store = new HostStore(homeDir);
  }

  /** Concrete Host aliases of ~/.ssh/config not yet added, for "add from ~/.ssh/config". */
  async candidates(): Promise<string[]> {
    const added = new Set((await this.store.list()).map((h) => h.name));
    return sshConfigAliases(await loadSshConfig(this.options.sshConfigPath ?? join(homedir(), '.ssh', 'config'))).filter((a) => !added.has(a));
  }

  async list(): Promise<HostView[]> {
    const records = await this.store.list();
    return records.map((record) => this.view(this.entryOf(record)));
  }

  async add(name: string): Promise<HostView> {
    const record = await this.store.add(name);
    this.options.events?.emit({ severity: 'info', pair: null, kind: 'host.added', message: `host ${record.name} added` });
    const entry = this.entryOf(record);
    this.connectInBackground(entry);
    return this.view(entry);
  }

  async remove(name: string): Promise<void> {
    await this.store.remove(name);
    const entry = this.entries.get(name);
    this.entries.delete(name);
    if (entry) entry.gone = true;
    entry?.pending?.resolve({ approve: false, secret: null });
    await entry?.remote.dispose();
    await this.options.vault.forgetHost(name);
    this.options.events?.emit({ severity: 'info', pair: null, kind: 'host.removed', message: `host ${name} removed` });
  }

  /** Starts (or retries) the connection; returns at once — questions and state show in the view. */
  async connect(name: string): Promise<HostView> {
    const entry = await this.require(name);
    this.connectInBackground(entry);
    return this.view(entry);
  }

  async answer(name: string, questionId: number, answer: HostAnswer): Promise<HostView> {
    const entry = await this.require(name);
    if (!entry.pending || entry.pending.question.id !== questionId) {
      throw new TidemarkError('NOT_FOUND', `host ${name} has no open question ${questionId}`, 'it was answered or withdrawn; refresh the host list');
    }
    const { resolve } = entry.pending;
    entry.pending = null;
    resolve(answer);
    return this.view(entry);
  }

  /** The AgentApi of an added host (connecting on first use). */
  async agent(name: string): Promise<RemoteHost> {
    return (await this.require(name)).remote;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const entries = [...this.entries.values()];
    this.entries.clear();
    for (const entry of entries) {
      entry.gone = true;
      entry.pending?.resolve({ approve: false, secret: null });
    }
    await Promise.all(entries.map((entry) => entry.remote.dispose()));
  }

  private async require(name: string): Promise<Entry> {
    const record = (await this.store.list()).find((h) => h.name === name);
    if (!record) throw new TidemarkError('NOT_FOUND', `no host ${name} in this home`, 'add it on the Hosts screen or refresh the list');
    return this.entryOf(record);
  }

  private entryOf(record: HostRecord): Entry {
    const existing = this.entries.get(record.name);
    if (existing) return existing;
    const entry: Entry = {
      record,
      pending: null,
      agentVersion: null,
      homeDir: null,
      homeFreeBytes: null,
      reportedState: null,
      gone: false,
      provisional: [],
      remote: new RemoteHost(record.alias, {
        tidemarkKnownHosts: join(this.homeDir, 'known_hosts'),
        userKnownHosts: this.options.userKnownHosts,
        sshConfigPath: this.options.sshConfigPath,
        agentSocket: this.options.agentSocket,
        user: record.user,
        port: record.port,
        homeDir: record.homeDir,
        bundlePath: this.options.bundlePath,
        knownAgents: knownAgentsFile(join(this.homeDir, 'known-agents.json'), this.options.bundlePath),
        approveHostKey: (hostPort, fingerprint) => this.ask(entry, { kind: 'host-key', hostPort, fingerprint }).then((a) => a.approve === true),
        askSecret: (request) => this.askSecret(entry, request),
        onStatus: (status) => this.statusChanged(entry, status),
      }),
    };
    this.entries.set(record.name, entry);
    return entry;
  }

  private connectInBackground(entry: Entry): void {
    if (this.disposed || entry.remote.status.state === 'connecting') return;
    void entry.remote
      .connect()
      .then(() => this.refreshInfo(entry))
      .catch(() => undefined); // the failure is in the status (lastError) and the event log
  }

  private async refreshInfo(entry: Entry): Promise<void> {
    const info = await entry.remote.info();
    entry.agentVersion = info.agentVersion;
    entry.homeDir = info.homeDir;
    entry.homeFreeBytes = info.homeFreeBytes;
  }

  private ask(entry: Entry, question: Omit<Extract<HostQuestion, { kind: 'host-key' }>, 'id'> | Omit<Exclude<HostQuestion, { kind: 'host-key' }>, 'id'>) {
    entry.pending?.resolve({ approve: false, secret: null }); // one question at a time
    if (entry.gone) return Promise.resolve<HostAnswer>({ approve: false, secret: null }); // nobody left to answer
    return new Promise<HostAnswer>((resolve) => {
      entry.pending = { question: { ...question, id: this.nextQuestionId++ } as HostQuestion, resolve };
    });
  }

  /**
   * A passphrase is checked locally (the key decrypts) before use, so it is remembered at
   * once and forgotten when a later attempt says it was wrong. A password is only known good
   * once the host accepts it: it is kept provisionally and remembered on connect. Keyboard-
   * interactive answers (often one-time codes) are never remembered.
   */
  private async askSecret(entry: Entry, request: SecretRequest): Promise<string | null> {
    const vault = this.options.vault;
    const name = entry.record.name;
    const slot = request.kind === 'passphrase' ? `passphrase:${request.keyFile ?? ''}` : `${request.kind}:${request.target}`;
    const remembers = request.kind !== 'keyboard-interactive';
    if (remembers && request.attempt === 1) {
      const remembered = await vault.get(name, slot);
      if (remembered !== null) return remembered;
    } else if (remembers) {
      await vault.forget(name, slot); // it was wrong
    }
    const answer = await this.ask(entry, {
      kind: request.kind,
      prompt: request.prompt,
      echo: request.echo,
      keyFile: request.keyFile ?? null,
      keychain: remembers ? vault.keychain : null,
    });
    if (typeof answer.secret !== 'string') return null;
    const persist = answer.remember === true;
    if (request.kind === 'passphrase') await vault.put(name, slot, answer.secret, persist);
    if (request.kind === 'password') entry.provisional.push({ slot, secret: answer.secret, persist });
    return answer.secret;
  }

  /** After an attempt: keep the passwords the host accepted; forget those it refused. */
  private async settleSecrets(entry: Entry, status: RemoteHostStatus): Promise<void> {
    const provisional = entry.provisional.splice(0);
    const vault = this.options.vault;
    const name = entry.record.name;
    if (status.state === 'connected') {
      for (const p of provisional) await vault.put(name, p.slot, p.secret, p.persist);
    } else if (status.lastError?.code === 'PERMISSION') {
      for (const p of provisional) await vault.forget(name, p.slot);
      if (status.target) await vault.forget(name, `password:${status.target}`); // a remembered one was refused too
    }
  }

  private statusChanged(entry: Entry, status: RemoteHostStatus): void {
    if (entry.gone || status.state === entry.reportedState) return;
    if (status.state === 'connected' || status.state === 'failed') void this.settleSecrets(entry, status).catch(() => undefined);
    const events = this.options.events;
    const name = entry.record.name;
    if (!events) return;
    entry.reportedState = status.state;
    if (status.state === 'connected')
      events.emit({ severity: 'info', pair: null, kind: 'host.connected', message: `host ${name} connected (${status.target})` });
    if (status.state === 'disconnected')
      events.emit({
        severity: 'warning',
        pair: null,
        kind: 'host.disconnected',
        message: `host ${name} disconnected: ${status.lastError?.message ?? 'the link dropped'} — the next operation reconnects`,
      });
    if (status.state === 'failed')
      events.emit({ severity: 'error', pair: null, kind: 'host.failed', message: `host ${name}: ${status.lastError?.oneLine() ?? 'connection failed'}` });
  }

  private view(entry: Entry): HostView {
    const status = entry.remote.status;
    const error = status.lastError;
    return {
      name: entry.record.name,
      target: status.target,
      state: status.state,
      lastError: error ? { code: error.code, message: error.message, hint: error.hint } : null,
      nodeVersion: status.nodeVersion,
      agentVersion: entry.agentVersion,
      homeDir: entry.homeDir,
      homeFreeBytes: entry.homeFreeBytes,
      connections: status.connections,
      question: entry.pending?.question ?? null,
      addedAtMs: entry.record.addedAtMs,
    };
  }
}
