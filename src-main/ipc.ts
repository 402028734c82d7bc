// Electron IPC for the console API: one channel per verb, `tidemark:<verb>`. Each handler
// checks that the sender is our own window's main frame on app://tidemark, then validates
// the arguments (console-schema.ts) before the engine sees them. Refusals are logged.

import type { ConsoleErrorDto, PickDirectoryOptionsDto } from './console-api';
import { channelPrefix } from './console-api';
import { consoleVerbs, pickDirectorySchema } from './console-schema';
import type { ConsoleService, HandleOutcome } from './console-service';

/** The parts of Electron's IpcMainInvokeEvent a handler looks at (so tests need no Electron). */
export interface InvokeEventLike {
  readonly senderFrame: { readonly url: string; readonly parent: unknown } | null;
  readonly sender: { readonly id: number };
}

export interface IpcMainLike {
  handle(channel: string, listener: (event: InvokeEventLike, ...args: unknown[]) => Promise<unknown>): void;
  removeHandler(channel: string): void;
}

export const appOrigin = 'app://tidemark';

/** Why a sender is refused, or null when it is our window's top frame on our origin. */
export function senderRefusal(event: InvokeEventLike, trustedWebContentsId: number | undefined): string | null {
  const frame = event.senderFrame;
  if (!frame) return 'the sending frame is gone';
  if (frame.parent !== null) return 'the request came from a subframe';
  let origin: string;
  try {
    const url = new URL(frame.url);
    origin = `${url.protocol}//${url.host}`;
  } catch {
    return `unparsable sender URL ${frame.url.slice(0, 80)}`;
  }
  if (origin !== appOrigin) return `sender origin ${origin} is not ${appOrigin}`;
  if (trustedWebContentsId === undefined) return 'no Tidemark window is open';
  if (event.sender.id !== trustedWebContentsId) return 'the request came from another window';
  return null;
}

/**
 * Registers one handler per verb. The channel name carries the verb, so a message on any
 * other `tidemark:` channel has no handler and Electron rejects it.
 */
export function registerIpc(
  ipcMain: IpcMainLike,
  service: ConsoleService,
  trustedWebContentsId: () => number | undefined,
  log: (line: string) => void,
): () => void {
  for (const verb of consoleVerbs) {
    ipcMain.handle(`${channelPrefix}${verb}`, async (event, ...args): Promise<HandleOutcome> => {
      const refusal = senderRefusal(event, trustedWebContentsId());
      if (refusal) {
        log(`ipc: refused ${verb}: ${refusal}`);
        const error: ConsoleErrorDto = { code: 'FORBIDDEN', message: `refused: ${refusal}`, hint: 'only the Tidemark window may call the engine' };
        return { ok: false, error };
      }
      if (args.length > 1) {
        log(`ipc: refused ${verb}: ${args.length} arguments`);
        return { ok: false, error: { code: 'BAD_ARGUMENTS', message: `bad arguments for ${verb}: expected one argument object`, hint: 'reload the console' } };
      }
      return service.handle(verb, args[0]);
    });
  }
  return () => consoleVerbs.forEach((verb) => ipcMain.removeHandler(`${channelPrefix}${verb}`));
}

/** The channel of the native directory chooser (Electron only; not a console verb). */
export const pickDirectoryChannel = `${channelPrefix}pickDirectory`;

/**
 * The native directory chooser for the Seeding screen's Browse… buttons: the same sender
 * check and argument validation as the verbs, then `pick` (Electron's dialog, modal to our
 * window). Resolves with the chosen directory, or null when the user cancelled.
 */
export function registerDirectoryPicker(
  ipcMain: IpcMainLike,
  pick: (options: PickDirectoryOptionsDto) => Promise<string | null>,
  trustedWebContentsId: () => number | undefined,
  log: (line: string) => void,
): () => void {
  ipcMain.handle(pickDirectoryChannel, async (event, ...args): Promise<HandleOutcome> => {
    const refusal = senderRefusal(event, trustedWebContentsId());
    if (refusal) {
      log(`ipc: refused pickDirectory: ${refusal}`);
      return { ok: false, error: { code: 'FORBIDDEN', message: `refused: ${refusal}`, hint: 'only the Tidemark window may open dialogs' } };
    }
    const parsed = pickDirectorySchema.safeParse(args.length === 1 ? args[0] : undefined);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return {
        ok: false,
        error: {
          code: 'BAD_ARGUMENTS',
          message: `bad arguments for pickDirectory: ${issue ? `${issue.path.join('.') || '(arguments)'} ${issue.message}` : 'invalid'}`,
          hint: 'reload the console',
        },
      };
    }
    try {
      return { ok: true, result: await pick(parsed.data) };
    } catch (error) {
      return { ok: false, error: { code: 'INTERNAL', message: `the directory chooser failed: ${(error as Error).message}`, hint: 'type the path instead' } };
    }
  });
  return () => ipcMain.removeHandler(pickDirectoryChannel);
}
