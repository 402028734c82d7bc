// Runs the built CLI bundle (dist/tidemark.cjs) as a user would: a real process, no stdin.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const repoRoot = join(import.meta.dirname, '..', '..');
export const cliBundle = join(repoRoot, 'dist', 'tidemark.cjs');
export const agentBundle = join(repoRoot, 'dist', 'tidemark-agent.cjs');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function runBundle(bundle: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): CliResult {
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run \`npm run build\` first (npm test does)`);
  const result = spawnSync(process.execPath, [bundle, ...args], {
    encoding: 'utf8',
    input: '',
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    timeout: 60_000,
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

export function tidemark(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  return runBundle(cliBundle, args, env);
}

/** Like `tidemark` but without blocking this process (for a CLI served by an engine running here). */
export function tidemarkAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  if (!existsSync(cliBundle)) throw new Error(`${cliBundle} is missing: run \`npm run build\` first (npm test does)`);
  const child = spawn(process.execPath, [cliBundle, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}
