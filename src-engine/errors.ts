// Typed errors: every failure a person can see carries a code, a message and a hint.

export type ErrorCode =
  | 'USAGE' // bad command line or argument: exit code 2
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'NOT_A_VOLUME'
  | 'IO'
  | 'DISCONNECTED' // a connection to an agent or host dropped; the next operation reconnects
  | 'NO_SPACE'
  | 'PERMISSION'
  | 'METADATA_CORRUPT'
  | 'SIZE_MISMATCH'
  | 'CANCELLED'
  | 'BUSY' // the thing is in use by another operation right now; retry shortly
  | 'STALE' // the operation carries an older pair generation than the volume (a role change happened)
  | 'INCOMPLETE' // the volume holds an unfinished import or sync; finish or restart it first
  | 'UNSUPPORTED'
  | 'SPLIT_BRAIN' // both members of a pair were written as primary: a person picks the survivor
  | 'EXPIRED' // a lease ran out (a group snapshot's hold): what it held was released; retry
  | 'INVARIANT';

/**
 * An error that a person can act on: `message` says what failed and why, `hint` says what
 * to do. The CLI prints both on one line; the console shows them in context.
 */
export class TidemarkError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;

  constructor(code: ErrorCode, message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TidemarkError';
    this.code = code;
    this.hint = hint;
  }

  /** One line: what failed and why, then what to do. */
  oneLine(): string {
    return this.hint ? `${this.message} — ${this.hint}` : this.message;
  }
}

export function isTidemarkError(error: unknown): error is TidemarkError {
  return error instanceof TidemarkError;
}

export function usageError(message: string, hint: string): TidemarkError {
  return new TidemarkError('USAGE', message, hint);
}

/** The Node errno code of an error, if it has one. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Translates an operating-system error on `path` into a TidemarkError naming the cause
 * and the fix. `action` is a verb phrase such as "open volume" or "write bitmap".
 */
export function fromSystemError(error: unknown, action: string, path: string): TidemarkError {
  if (error instanceof TidemarkError) return error;
  const code = errnoCode(error);
  const reason = error instanceof Error ? error.message : String(error);
  switch (code) {
    case 'ENOENT':
      return new TidemarkError('NOT_FOUND', `cannot ${action} ${path}: no such file or directory`, 'check the path, or create it first', { cause: error });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new TidemarkError(
        'PERMISSION',
        `cannot ${action} ${path}: permission denied (${code})`,
        'run as a user who may write there, or choose another path',
        { cause: error },
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new TidemarkError(
        'NO_SPACE',
        `cannot ${action} ${path}: the disk is full (${code})`,
        'free space on that filesystem and retry; nothing was lost',
        { cause: error },
      );
    case 'EEXIST':
      return new TidemarkError('ALREADY_EXISTS', `cannot ${action} ${path}: it already exists`, 'choose another path or remove the old one', {
        cause: error,
      });
    case 'EISDIR':
      return new TidemarkError('NOT_A_VOLUME', `cannot ${action} ${path}: it is a directory`, 'give the path of a file or a block device', {
        cause: error,
      });
    default:
      return new TidemarkError('IO', `cannot ${action} ${path}: ${reason}`, 'check the device and the filesystem, then retry', {
        cause: error,
      });
  }
}
