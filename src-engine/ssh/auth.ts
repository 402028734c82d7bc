// Client authentication in OpenSSH's spirit: ssh-agent first, then the IdentityFile keys in
// order (a passphrase-protected key asks for its passphrase through the caller's callback,
// only when its turn comes), then keyboard-interactive and password — only when the server
// offers them and the caller can ask a person. Secrets live in memory for one connection.

import { readFile } from 'node:fs/promises';
import { utils, type AnyAuthMethod, type AuthHandlerMiddleware, type AuthenticationType, type ParsedKey } from 'ssh2';
import { errnoCode } from '../errors';

export type SecretKind = 'passphrase' | 'password' | 'keyboard-interactive';

export interface SecretRequest {
  readonly kind: SecretKind;
  /** `user@host:port` the secret is for. */
  readonly target: string;
  /** What to show the person (the key file, or the server's prompt). */
  readonly prompt: string;
  /** The answer may be shown while typed (keyboard-interactive prompts say so). */
  readonly echo: boolean;
  readonly keyFile?: string;
  /** 1 for the first ask; more after a wrong answer (a remembered secret is only good for 1). */
  readonly attempt: number;
}

/** Asks a person for a secret; null means they declined (the method is skipped). */
export type AskSecret = (request: SecretRequest) => Promise<string | null>;

const passphraseTriesMax = 3;

interface Identity {
  readonly file: string;
  readonly data: Buffer;
  /** Parsed when the key is not encrypted; null when it needs a passphrase. */
  readonly parsed: ParsedKey | null;
}

async function loadIdentities(files: readonly string[]): Promise<{ identities: Identity[]; unreadable: string[] }> {
  const identities: Identity[] = [];
  const unreadable: string[] = [];
  for (const file of files) {
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') unreadable.push(`${file} (${errnoCode(error) ?? 'unreadable'})`);
      continue;
    }
    const parsed = utils.parseKey(data);
    if (!(parsed instanceof Error)) identities.push({ file, data, parsed: Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed });
    else if (/passphrase/i.test(parsed.message)) identities.push({ file, data, parsed: null });
    else unreadable.push(`${file} (${parsed.message})`);
  }
  return { identities, unreadable };
}

/** The methods tried and why each was passed over, for the refusal message. */
export class AuthLog {
  readonly tried: string[] = [];
  readonly skipped: string[] = [];
  describe(): string {
    const parts = [...this.tried, ...this.skipped.map((s) => `skipped ${s}`)];
    return parts.length > 0 ? parts.join(', ') : 'no key file found and no ssh-agent';
  }
}

export interface AuthPlan {
  readonly handler: AuthHandlerMiddleware;
  readonly log: AuthLog;
}

/** Builds the ssh2 authHandler for one connection attempt. */
export async function planAuth(options: {
  user: string;
  target: string;
  identityFiles: readonly string[];
  agentSocket: string | undefined;
  askSecret: AskSecret | undefined;
}): Promise<AuthPlan> {
  const { user, target, askSecret } = options;
  const { identities, unreadable } = await loadIdentities(options.identityFiles);
  const log = new AuthLog();
  log.skipped.push(...unreadable);
  type Step = { method: AuthenticationType; make: () => Promise<AnyAuthMethod | null> };
  const steps: Step[] = [{ method: 'none', make: async () => ({ type: 'none', username: user }) }];
  if (options.agentSocket) {
    const agent = options.agentSocket;
    steps.push({ method: 'publickey', make: async () => (log.tried.push('ssh-agent'), { type: 'agent', username: user, agent }) });
  }
  for (const identity of identities) steps.push({ method: 'publickey', make: () => publicKeyMethod(identity, user, target, askSecret, log) });
  if (askSecret) {
    steps.push({ method: 'keyboard-interactive', make: async () => keyboardInteractiveMethod(user, target, askSecret, log) });
    steps.push({ method: 'password', make: () => passwordMethod(user, target, askSecret, log) });
  }
  let next = 0;
  const handler: AuthHandlerMiddleware = (methodsLeft, _partialSuccess, callback) => {
    const pick = async (): Promise<AnyAuthMethod | false> => {
      while (next < steps.length) {
        const step = steps[next++]!;
        // The first call has no list yet; later ones name what the server still accepts.
        const offered = methodsLeft === null || methodsLeft.includes(step.method) || (step.method === 'none' && next === 1);
        if (!offered) continue;
        const method = await step.make();
        if (method) return method;
      }
      return false;
    };
    pick().then(
      (method) => callback(method as AnyAuthMethod),
      () => callback(false as unknown as AnyAuthMethod),
    );
  };
  return { handler, log };
}

async function publicKeyMethod(
  identity: Identity,
  user: string,
  target: string,
  askSecret: AskSecret | undefined,
  log: AuthLog,
): Promise<AnyAuthMethod | null> {
  if (identity.parsed) {
    log.tried.push(identity.file);
    return { type: 'publickey', username: user, key: identity.parsed };
  }
  if (!askSecret) {
    log.skipped.push(`${identity.file} (passphrase-protected; load it with ssh-add, or run on a terminal to be asked)`);
    return null;
  }
  for (let attempt = 1; attempt <= passphraseTriesMax; attempt++) {
    const prompt =
      attempt === 1 ? `Passphrase for ${identity.file}` : `Wrong passphrase; passphrase for ${identity.file} (try ${attempt} of ${passphraseTriesMax})`;
    const passphrase = await askSecret({ kind: 'passphrase', target, prompt, echo: false, keyFile: identity.file, attempt });
    if (passphrase === null) break;
    const parsed = utils.parseKey(identity.data, passphrase);
    if (!(parsed instanceof Error)) {
      log.tried.push(identity.file);
      return { type: 'publickey', username: user, key: Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed };
    }
  }
  log.skipped.push(`${identity.file} (passphrase not given)`);
  return null;
}

function keyboardInteractiveMethod(user: string, target: string, askSecret: AskSecret, log: AuthLog): AnyAuthMethod {
  log.tried.push('keyboard-interactive');
  return {
    type: 'keyboard-interactive',
    username: user,
    prompt: (_name, instructions, _lang, prompts, finish) => {
      void (async () => {
        const answers: string[] = [];
        for (const p of prompts) {
          const answer = await askSecret({
            kind: 'keyboard-interactive',
            target,
            prompt: [instructions, p.prompt].filter(Boolean).join('\n'),
            echo: p.echo ?? false,
            attempt: 1,
          });
          if (answer === null) return finish([]);
          answers.push(answer);
        }
        finish(answers);
      })().catch(() => finish([]));
    },
  };
}

async function passwordMethod(user: string, target: string, askSecret: AskSecret, log: AuthLog): Promise<AnyAuthMethod | null> {
  const password = await askSecret({ kind: 'password', target, prompt: `Password for ${target}`, echo: false, attempt: 1 });
  if (password === null) {
    log.skipped.push('password (not given)');
    return null;
  }
  log.tried.push('password');
  return { type: 'password', username: user, password };
}
