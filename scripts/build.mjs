// Builds everything:
//   dist/tidemark.cjs        the `tidemark` CLI (package.json bin), console command included
//   dist/tidemark-agent.cjs  the single-file host agent copied to remote hosts (no native modules)
//   dist/bench.cjs           the benchmark runner (`npm run bench`)
//   dist/main/main.cjs, dist/main/preload.cjs   Electron main process and preload (esbuild)
//   dist/renderer/           the React + MUI console (vite)
// The signature worker is bundled first and inlined as a string, so each bundle can start
// worker threads from itself alone.
import { build } from 'esbuild';
import { build as viteBuild } from 'vite';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
const outDir = join(root, 'dist');
await mkdir(outDir, { recursive: true });

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  define: { __TIDEMARK_VERSION__: JSON.stringify(pkg.version) },
};

const worker = await build({ ...common, entryPoints: [join(root, 'src-engine/signature/worker.ts')], write: false, minify: true });
const workerSource = worker.outputFiles[0].text;

/** Replaces the development worker loader (which runs esbuild) with the prebuilt string. */
const inlineWorker = {
  name: 'inline-signature-worker',
  setup(b) {
    b.onResolve({ filter: /\/worker-source$/ }, (args) => ({ path: join(args.resolveDir, 'worker-source.ts'), namespace: 'tidemark-worker' }));
    b.onLoad({ filter: /.*/, namespace: 'tidemark-worker' }, () => ({
      contents: `const source = ${JSON.stringify(workerSource)};\nexport function signatureWorkerSource() { return source; }\n`,
      loader: 'js',
    }));
  },
};

/**
 * ssh2 tries optional native accelerators (sshcrypto.node, cpu-features) inside try/catch
 * and falls back to pure JavaScript. The bundles must carry no native code (the agent is
 * copied to any host), so those requires resolve to a module that throws: ssh2's fallback.
 */
const noNativeModules = {
  name: 'no-native-modules',
  setup(b) {
    b.onResolve({ filter: /\.node$|^cpu-features$/ }, (args) => ({ path: args.path, namespace: 'native-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'native-stub' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`native module ${args.path} is left out of Tidemark bundles`)});`,
      loader: 'js',
    }));
  },
};

const bundles = [
  { entry: 'src-main/cli-entry.ts', out: 'tidemark.cjs', executable: true },
  { entry: 'src-main/main.ts', out: 'main/main.cjs', executable: false, external: ['electron'] },
  { entry: 'src-main/preload.ts', out: 'main/preload.cjs', executable: false, external: ['electron'] },
  { entry: 'src-engine/cli/agent-main.ts', out: 'tidemark-agent.cjs', executable: true },
  { entry: 'bench/run.ts', out: 'bench.cjs', executable: false, external: ['playwright-core'] },
];

for (const bundle of bundles) {
  await build({
    ...common,
    entryPoints: [join(root, bundle.entry)],
    outfile: join(outDir, bundle.out),
    banner: bundle.executable ? { js: '#!/usr/bin/env node' } : undefined,
    plugins: [inlineWorker, noNativeModules],
    external: bundle.external ?? [],
  });
  if (bundle.executable) await chmod(join(outDir, bundle.out), 0o755);
}
await viteBuild({
  configFile: join(root, 'vite.config.ts'),
  logLevel: 'error',
});
console.log(`build: ${bundles.map((b) => `dist/${b.out}`).join(', ')}, dist/renderer/`);
