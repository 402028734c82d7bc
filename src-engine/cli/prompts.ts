// Questions the CLI asks a person: trusting an unknown host key, and secrets (key
// passphrases, passwords). On a terminal they are asked there (secrets without echo); off a
// terminal, secrets come from $SSH_ASKPASS as OpenSSH does (when $DISPLAY is set or
// SSH_ASKPASS_REQUIRE=force), and host keys are refused unless --accept-new-host-key.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline/promises';
import type { AskSecret, SecretRequest } from '../ssh';
import type { GlobalOptions, Io } from './output';

const onTerminal = (io: Io) => Boolean(process.stdin.isTTY && io.stderr.isTTY);

/** Asks on the terminal whether to trust an unknown host key; refuses without a terminal. */
export function hostKeyApprover(io: Io, global: GlobalOptions): ((host: string, fingerprint: string) => Promise<boolean>) | undefined {
  if (global.acceptNewHostKey) return async () => true;
  if (!onTerminal(io)) return undefined; // refused, with the fingerprint in the error
  return async (host, fingerprint) => {
    const prompt = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await prompt.question(
        `The authenticity of host ${host} can't be established.\nKey fingerprint is ${fingerprint}.\nTrust it and remember it (yes/no)? `,
      );
      return answer.trim().toLowerCase() === 'yes';
    } finally {
      prompt.close();
    }
  };
}

/** The CLI's secret asker, or undefined when nobody can be asked (such methods are skipped). */
export function secretAsker(io: Io): AskSecret | undefined {
  const askpass = io.env.SSH_ASKPASS;
  const askpassAllowed = io.env.SSH_ASKPASS_REQUIRE === 'force' || (io.env.SSH_ASKPASS_REQUIRE !== 'never' && !onTerminal(io) && Boolean(io.env.DISPLAY));
  if (askpass && askpassAllowed) return (request) => runAskpass(askpass, request);
  if (onTerminal(io)) return (request) => askOnTerminal(io, request);
  return undefined;
}

function runAskpass(program: string, request: SecretRequest): Promise<string | null> {
  return new Promise((resolve) => {
    const child = spawn(program, [`${request.target}: ${request.prompt}: `], { stdio: ['ignore', 'pipe', 'inherit'] });
    let answer = '';
    child.stdout.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    child.once('error', () => resolve(null));
    child.once('close', (code) => resolve(code === 0 ? answer.replace(/\r?\n$/, '') : null));
  });
}

/** Reads one line from the terminal; without echo for secrets. Ctrl-C or Ctrl-D declines. */
function askOnTerminal(io: Io, request: SecretRequest): Promise<string | null> {
  io.stderr.write(`${request.target}: ${request.prompt}: `);
  const stdin = process.stdin;
  if (request.echo) {
    const prompt = createInterface({ input: stdin, output: process.stderr, terminal: false });
    return prompt.question('').then(
      (answer) => (prompt.close(), answer),
      () => (prompt.close(), null),
    );
  }
  return new Promise((resolve) => {
    let answer = '';
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    stdin.resume();
    const finish = (value: string | null) => {
      stdin.off('data', onData);
      stdin.setRawMode(wasRaw);
      stdin.pause();
      io.stderr.write('\n');
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish(answer);
        if (char === '\u0003' || char === '\u0004') return finish(null);
        if (char === '\u007f' || char === '\b') answer = answer.slice(0, -1);
        else answer += char;
      }
    };
    stdin.on('data', onData);
  });
}
