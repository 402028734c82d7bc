// The signature worker's code as one CommonJS string, so a worker can start from any bundle
// (the CLI, the single-file agent) with `eval: true`. Release builds replace this module with
// the pre-bundled string (scripts/build.mjs); from source it is bundled here with esbuild.

import type * as Esbuild from 'esbuild';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function signatureWorkerSource(): string {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  const esbuild = require('esbuild') as typeof Esbuild;
  const result = esbuild.buildSync({
    entryPoints: [fileURLToPath(new URL('./worker.ts', import.meta.url))],
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'silent',
  });
  cached = result.outputFiles[0]!.text;
  return cached;
}
