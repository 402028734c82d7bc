// The `tidemark` command line: global options, commands, and the mapping of every failure
// to one line on stderr and an exit code (0 ok, 1 failed or differs, 2 usage error).

import { Command, CommanderError } from 'commander';
import { TidemarkError } from '../errors';
import { tidemarkVersion } from '../version';
import { ExitStatus, exitCodes, reportError, type GlobalOptions, type Io } from './output';
import { registerAgentCommands } from './agent-commands';
import { registerFailoverCommands, registerMigrateCommand } from './failover-commands';
import { registerImageCommands } from './image-commands';
import { registerLabCommand } from './lab-command';
import { registerMapCommand } from './map-command';
import { registerPairCommands } from './pair-commands';
import { registerReplicateCommands } from './replicate-commands';
import { registerServeCommand } from './serve-command';
import { registerVolumeCommands } from './volume-commands';

export type CliRole = 'cli' | 'agent';

/** Adds commands from outside the engine (the console's `console` command, from src-main). */
export type CliExtension = (program: Command, io: Io, globals: () => GlobalOptions) => void;

function buildProgram(io: Io, role: CliRole, extensions: readonly CliExtension[]): Command {
  const program = new Command('tidemark');
  program
    .description(
      role === 'agent'
        ? "Tidemark host agent: serves a home's volumes to a Tidemark console or CLI"
        : 'Tidemark: replicate block volumes between hosts, with a console, a CLI and host agents',
    )
    .version(tidemarkVersion, '-V, --version', 'print the version')
    .option('--home <dir>', 'Tidemark home (default: $TIDEMARK_HOME or ~/.local/share/tidemark)')
    .option('--json', 'print one JSON document on stdout')
    .option('--quiet', 'print nothing but errors')
    .option('--accept-new-host-key', 'trust an SSH host seen for the first time (otherwise asked on a terminal, refused without one)')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      // Commander's own messages become our one-line usage errors (see runCli).
      writeErr: () => undefined,
    });
  const globals = () => program.opts<GlobalOptions>();
  registerVolumeCommands(program, io, globals);
  registerAgentCommands(program, io, globals);
  if (role === 'cli') {
    registerPairCommands(program, io, globals);
    registerReplicateCommands(program, io, globals);
    registerMapCommand(program, io, globals);
    registerFailoverCommands(program, io, globals);
    registerMigrateCommand(program, io, globals);
    registerServeCommand(program, io, globals);
    registerImageCommands(program, io, globals);
    registerLabCommand(program, io, globals);
  }
  for (const extend of extensions) extend(program, io, globals);
  requireSubcommands(program, 'tidemark');
  return program;
}

function listed(names: readonly string[]): string {
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}

/**
 * A command that only groups others (`tidemark volume`) run alone makes commander print help
 * to stderr (which we discard) and exit 1 as if it were `--help`; make that a one-line usage
 * error naming the subcommands instead. Help asked for (`--help`, `help`) exits 0 as before.
 */
function requireSubcommands(command: Command, path: string): void {
  const names = command.commands.map((sub) => sub.name());
  if (names.length === 0) return;
  command.exitOverride((error) => {
    if (error.code === 'commander.help' && error.exitCode !== 0) {
      const what = command.parent ? 'a subcommand' : 'a command';
      throw new TidemarkError('USAGE', `\`${path}\` needs ${what}: ${listed(names)}`, `see \`${path} --help\``);
    }
    throw error;
  });
  for (const sub of command.commands) requireSubcommands(sub, `${path} ${sub.name()}`);
}

/** Runs the CLI on `argv` (without node and script); resolves with the exit code. */
export async function runCli(argv: readonly string[], io: Io, role: CliRole = 'cli', extensions: readonly CliExtension[] = []): Promise<number> {
  const program = buildProgram(io, role, extensions);
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return exitCodes.usage;
    }
    await program.parseAsync([...argv], { from: 'user' });
    return exitCodes.ok;
  } catch (error) {
    if (error instanceof ExitStatus) return error.exitCode;
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return exitCodes.ok;
      const message = error.message.replace(/^error: /, '').split('\n')[0]!;
      return reportError(io, new TidemarkError('USAGE', message, 'see `tidemark --help` or `tidemark <command> --help`'));
    }
    return reportError(io, error);
  }
}
