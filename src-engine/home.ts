// Where a Tidemark home is: --home, else $TIDEMARK_HOME, else $XDG_DATA_HOME/tidemark,
// else ~/.local/share/tidemark. Created on first use with mode 0700.

import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fromSystemError } from './errors';

export function resolveHomeDir(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return resolve(explicit);
  if (env.TIDEMARK_HOME) return resolve(env.TIDEMARK_HOME);
  const dataHome = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(dataHome, 'tidemark');
}

export async function ensureHomeDir(homeDir: string): Promise<string> {
  try {
    await mkdir(homeDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw fromSystemError(error, 'create Tidemark home', homeDir);
  }
  return homeDir;
}
