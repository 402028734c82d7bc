// `tidemark pair link NAME [--address [user@]host[:port]] [--remove]`: the per-pair key that
// lets a remote primary's agent ship straight to the secondary's (docs/replication.md
// "Direct shipping"). `pair create` links a remote→remote pair by itself; this re-targets a
// link, repairs one, or removes it (shipping is then relayed through the orchestrator).

import type { Command } from 'commander';
import { linkPair, unlinkPair, type LinkResult } from '../replication';
import { parseHostSpec } from '../ssh';
import { pairEndpointsOf, pairStoreOf, withAgentPool } from './agents';
import { printResult, type GlobalOptions, type Io } from './output';

export function linkText(result: LinkResult): string {
  return `pair ${result.pair} ships directly: the primary's agent reaches ${result.target} with the pair's own key (restricted in ${result.authorizedKeysPath} there)`;
}

export function registerLinkCommand(pair: Command, io: Io, globals: () => GlobalOptions): void {
  pair
    .command('link')
    .description("give a remote primary's agent the pair's own SSH key to the secondary's host, so regions go host to host")
    .argument('<name>')
    .option('--address <[user@]host[:port]>', "how the primary's host reaches the secondary's sshd (default: as this machine does)")
    .option('--remove', 'remove the key from both hosts; shipping is relayed through this machine')
    .action(async (name: string, options: { address?: string; remove?: boolean }) => {
      const global = globals();
      const record = await pairStoreOf(io, global).require(name);
      const address = options.address ? parseHostSpec(options.address, '--address', 'write --address [user@]host[:port]') : undefined;
      await withAgentPool(io, global, async (pool) => {
        const endpoints = await pairEndpointsOf(pool, record);
        if (options.remove) {
          const unreachable = await unlinkPair(endpoints, record.pairId);
          printResult(io, global, { pair: name, linked: false, unreachable }, () =>
            [`pair ${name} ships relayed through this machine now`, ...unreachable.map((where) => `  not reached: ${where} — remove its key there later`)].join(
              '\n',
            ),
          );
          return;
        }
        const result = await linkPair(record, endpoints, address ? { address: { host: address.alias, port: address.port, user: address.user } } : {});
        printResult(io, global, { ...result, linked: true }, () => linkText(result));
      });
    });
}
