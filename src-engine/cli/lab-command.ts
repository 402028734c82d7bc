// `tidemark lab [--reset]`: create (or recreate) the built-in lab in the home.

import type { Command } from 'commander';
import { Engine } from '../engine';
import { resolveHomeDir } from '../home';
import { labLayout, labPairName } from '../lab';
import { formatBytes } from '../size';
import { printResult, type GlobalOptions, type Io } from './output';

export function registerLabCommand(program: Command, io: Io, globals: () => GlobalOptions): void {
  program
    .command('lab')
    .description('create the built-in lab: two sparse 1 GiB volumes in the home, paired as "lab"')
    .option('--reset', 'remove the lab volumes and pair and create them afresh')
    .action(async (options: { reset?: boolean }) => {
      const global = globals();
      const engine = await Engine.open(resolveHomeDir(global.home, io.env), { purpose: 'tidemark lab' });
      try {
        const record = options.reset ? await engine.resetLab() : await engine.ensureLab();
        const overview = await engine.overview();
        const pair = overview.pairs.find((p) => p.name === labPairName)!;
        const layout = labLayout(engine.homeDir);
        printResult(
          io,
          global,
          {
            pair: record.name,
            primary: layout.primaryPath,
            secondary: layout.secondaryPath,
            regionBytes: record.regionBytes,
            regions: pair.regions,
            reset: options.reset ?? false,
          },
          () =>
            [
              `lab ready${options.reset ? ' (reset)' : ''}: pair "${record.name}" (${record.mode}), ${pair.regions} regions of ${formatBytes(record.regionBytes)}`,
              `  primary:   ${layout.primaryPath}`,
              `  secondary: ${layout.secondaryPath}`,
              'open it in the console: tidemark console --web',
            ].join('\n'),
        );
      } finally {
        await engine.dispose();
      }
    });
}
