// Public surface of cli/: the command-line program.

export { runCli, type CliRole, type CliExtension } from './program';
export { exitCodes, reportError, printResult, type Io, type GlobalOptions } from './output';
