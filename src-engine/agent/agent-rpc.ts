// AgentApi over the agent RPC: `serveAgent` maps RPC methods to an AgentApi (validating every
// parameter), and RpcAgent is the client implementing AgentApi with RPC calls. Region data
// and signatures travel as raw payloads.

import { z } from 'zod';
import { TidemarkError } from '../errors';
import { hashAlgorithms, type HashAlgorithm } from '../signature';
import type { RpcHandler, RpcMessage, RpcPeer } from '../transport';
import type { VolumeInfo, VolumeRecord } from '../volume';
import type { AgentApi, AgentInfo, RealizedMap, RegionData, RegionSignatures } from './agent-api';

const pathSchema = z.string().min(1).max(4096);
const count = z
  .number()
  .int()
  .nonnegative()
  .max(2 ** 31);
const schemas = {
  info: z.object({}).strict(),
  'volume.create': z.object({ path: pathSchema, sizeBytes: z.number().int().positive(), regionBytes: z.number().int().positive() }).strict(),
  'volume.info': z.object({ path: pathSchema, regionBytes: z.number().int().positive().optional() }).strict(),
  'volume.read': z.object({ path: pathSchema, firstRegion: count, regionCount: count }).strict(),
  'volume.write': z.object({ path: pathSchema, regionIndex: count }).strict(),
  'volume.flush': z.object({ path: pathSchema }).strict(),
  'volume.realized': z.object({ path: pathSchema }).strict(),
  'volume.signatures': z.object({ path: pathSchema, hash: z.enum(hashAlgorithms), firstRegion: count, regionCount: count }).strict(),
} as const;
type Method = keyof typeof schemas;

const none = new Uint8Array(0);
const reply = (json: object, payload: Uint8Array = none): RpcMessage => ({ json: json as Record<string, unknown>, payload });

function parse<M extends Method>(method: M, params: Record<string, unknown>): z.infer<(typeof schemas)[M]> {
  const parsed = schemas[method].safeParse(params);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TidemarkError(
      'USAGE',
      `bad parameters for ${method}: ${issue ? `${issue.path.join('.') || '(params)'} ${issue.message}` : 'invalid'}`,
      'the client and the agent disagree; update both to one version',
    );
  }
  return parsed.data as z.infer<(typeof schemas)[M]>;
}

function wordsBytes(words: Uint32Array): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
}

/** The RPC handler of an agent process: every method of AgentApi, parameters validated. */
export function serveAgent(agent: AgentApi): RpcHandler {
  return (method, request, context) => {
    if (!Object.prototype.hasOwnProperty.call(schemas, method)) {
      return Promise.reject(new TidemarkError('USAGE', `unknown agent method "${method}"`, 'the client is newer than this agent; update the agent'));
    }
    const m = method as Method;
    switch (m) {
      case 'info':
        parse(m, request.json);
        return agent.info().then((info) => reply(info));
      case 'volume.create': {
        const p = parse(m, request.json);
        return agent.volumeCreate(p.path, p.sizeBytes, p.regionBytes).then((record) => reply(record));
      }
      case 'volume.info': {
        const p = parse(m, request.json);
        return agent.volumeInfo(p.path, { regionBytes: p.regionBytes }).then((info) => reply(info));
      }
      case 'volume.read': {
        const p = parse(m, request.json);
        return (async function* () {
          for await (const region of agent.readRegions(p.path, p.firstRegion, p.regionCount, context))
            yield reply({ regionIndex: region.regionIndex }, region.data);
        })();
      }
      case 'volume.write': {
        const p = parse(m, request.json);
        return agent.writeRegion(p.path, p.regionIndex, request.payload).then(() => reply({}));
      }
      case 'volume.flush': {
        const p = parse(m, request.json);
        return agent.flush(p.path).then(() => reply({}));
      }
      case 'volume.realized': {
        const p = parse(m, request.json);
        return agent.realizedMap(p.path).then((map) => reply({ regionCount: map.regionCount, source: map.source }, wordsBytes(map.words)));
      }
      case 'volume.signatures': {
        const p = parse(m, request.json);
        return (async function* () {
          for await (const batch of agent.signatures(p.path, p.hash, p.firstRegion, p.regionCount, context))
            yield reply({ regionIndexes: batch.regionIndexes }, batch.signatures);
        })();
      }
    }
  };
}

/** AgentApi on the far side of an RPC connection. */
export class RpcAgent implements AgentApi {
  constructor(private readonly peer: RpcPeer) {}

  /** Called once when the connection closes, with the reason (DISCONNECTED for a dropped link). */
  onClose(listener: (error: Error) => void): void {
    this.peer.onClose(listener);
  }

  async info(): Promise<AgentInfo> {
    return (await this.peer.call('info')).json as unknown as AgentInfo;
  }

  async volumeCreate(path: string, sizeBytes: number, regionBytes: number): Promise<VolumeRecord> {
    return (await this.peer.call('volume.create', { path, sizeBytes, regionBytes })).json as unknown as VolumeRecord;
  }

  async volumeInfo(path: string, options: { regionBytes?: number } = {}): Promise<VolumeInfo> {
    return (await this.peer.call('volume.info', { path, ...(options.regionBytes ? { regionBytes: options.regionBytes } : {}) })).json as unknown as VolumeInfo;
  }

  async *readRegions(path: string, firstRegion: number, regionCount: number, options: { signal?: AbortSignal } = {}): AsyncIterable<RegionData> {
    for await (const chunk of this.peer.stream('volume.read', { path, firstRegion, regionCount }, undefined, options)) {
      yield { regionIndex: chunk.json.regionIndex as number, data: chunk.payload };
    }
  }

  async writeRegion(path: string, regionIndex: number, data: Uint8Array): Promise<void> {
    await this.peer.call('volume.write', { path, regionIndex }, data);
  }

  async flush(path: string): Promise<void> {
    await this.peer.call('volume.flush', { path });
  }

  async realizedMap(path: string): Promise<RealizedMap> {
    const { json, payload } = await this.peer.call('volume.realized', { path });
    const words = new Uint32Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength));
    return { regionCount: json.regionCount as number, words, source: json.source as RealizedMap['source'] };
  }

  async *signatures(
    path: string,
    hash: HashAlgorithm,
    firstRegion: number,
    regionCount: number,
    options: { signal?: AbortSignal } = {},
  ): AsyncIterable<RegionSignatures> {
    for await (const chunk of this.peer.stream('volume.signatures', { path, hash, firstRegion, regionCount }, undefined, options)) {
      yield { regionIndexes: chunk.json.regionIndexes as number[], signatures: chunk.payload };
    }
  }

  async dispose(): Promise<void> {
    this.peer.close();
  }
}
