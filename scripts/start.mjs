// `npm start`: builds, then runs the console — Electron where its binary exists (or can be
// fetched) and a display is available; otherwise web mode, with a one-line notice why.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'tidemark.cjs');
// The CLI's console command chooses Electron or web mode and prints the notice.
const child = spawn(process.execPath, [cli, 'console', ...process.argv.slice(2)], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
