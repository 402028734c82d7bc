// Preload (sandboxed, context-isolated): exposes the console API as named verbs only —
// never ipcRenderer itself. Each verb maps to its own `tidemark:<verb>` channel.

import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { ConsoleApi, ConsoleArgs, ConsoleErrorDto, ConsoleVerb, EngineEventDto, PickDirectoryOptionsDto } from './console-api';
import { consoleVerbs } from './console-schema';

// Every verb of the API (the schema's table is the one list; main registers a channel for each).
const verbs: readonly ConsoleVerb[] = consoleVerbs;

/**
 * contextBridge copies only an error's message into the page, so the engine's error travels
 * as JSON in it (`tidemark:{code,message,hint}`); the renderer's api.ts unpacks it.
 */
class BridgeError extends Error {
  constructor(detail: ConsoleErrorDto) {
    super(`tidemark:${JSON.stringify(detail)}`);
  }
}

const api: ConsoleApi = {
  async request<V extends ConsoleVerb>(verb: V, args: ConsoleArgs<V>) {
    if (!verbs.includes(verb)) throw new BridgeError({ code: 'UNKNOWN_VERB', message: `unknown console verb ${String(verb)}`, hint: 'reload the console' });
    const outcome = (await ipcRenderer.invoke(`tidemark:${verb}`, args)) as { ok: boolean; result?: unknown; error?: ConsoleErrorDto };
    if (!outcome.ok) throw new BridgeError(outcome.error ?? { code: 'INTERNAL', message: 'malformed reply', hint: 'reload the console' });
    return outcome.result as never;
  },
  async pickDirectory(options: PickDirectoryOptionsDto) {
    const outcome = (await ipcRenderer.invoke('tidemark:pickDirectory', options)) as { ok: boolean; result?: string | null; error?: ConsoleErrorDto };
    if (!outcome.ok) throw new BridgeError(outcome.error ?? { code: 'INTERNAL', message: 'malformed reply', hint: 'reload the console' });
    return outcome.result ?? null;
  },
  onEvent(listener: (event: EngineEventDto) => void) {
    const handler = (_event: IpcRendererEvent, data: EngineEventDto) => listener(data);
    ipcRenderer.on('tidemark:event', handler);
    return () => ipcRenderer.removeListener('tidemark:event', handler);
  },
};

contextBridge.exposeInMainWorld('tidemark', api);
