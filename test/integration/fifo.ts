// mkfifo for tests (Node has no API for it).
import { execFileSync } from 'node:child_process';

export function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}
