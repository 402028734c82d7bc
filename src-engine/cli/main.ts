// Entry point of the `tidemark` CLI bundle.

import { runCli } from './program';

const io = { stdout: process.stdout, stderr: process.stderr, env: process.env };
void runCli(process.argv.slice(2), io, 'cli').then((code) => {
  process.exitCode = code;
});
