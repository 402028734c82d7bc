// Public surface of cli/: the command-line program.

export { runCli, type CliRole } from './program';
export { exitCodes, type Io, type GlobalOptions } from './output';
