// Entry point of the single-file agent bundle copied to remote hosts. It runs the same
// command set as the CLI minus the console; the SSH client never ships to hosts.

import { runCli } from './program';

const io = { stdout: process.stdout, stderr: process.stderr, env: process.env };
void runCli(process.argv.slice(2), io, 'agent').then((code) => {
  process.exitCode = code;
});
