// Entry point of the `tidemark` CLI bundle (dist/tidemark.cjs): the engine's commands plus
// the console, which lives here because the engine may not import the console host.

import { runCli } from '../src-engine';
import { registerConsoleCommand } from './console-command';

const io = { stdout: process.stdout, stderr: process.stderr, env: process.env };
void runCli(process.argv.slice(2), io, 'cli', [registerConsoleCommand]).then((code) => {
  process.exitCode = code;
});
