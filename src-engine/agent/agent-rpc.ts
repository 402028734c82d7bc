// AgentApi over the agent RPC: `serveAgent` maps RPC methods to an AgentApi (validating every
// parameter), and RpcAgent is the client implementing AgentApi with RPC calls. Region data
// and signatures travel as raw payloads.

import { z } from 'zod';
import { groupHoldLeaseMsMax, regionCountMax, rpcBitmapChunkBytes, snapshotLabelCharsMax } from '../constants';
import { TidemarkError } from '../errors';
import { hashAlgorithms, type HashAlgorithm } from '../signature';
import { checkSnapshotId, checkSnapshotLabel, snapshotIdPattern } from '../snapshot';
import { changeMapNamePattern, checkChangeMapName } from '../tracking';
import type { RpcContext, RpcHandler, RpcMessage, RpcPeer } from '../transport';
import type { VolumeInfo, VolumeRecord } from '../volume';
import type {
  AgentApi,
  AgentInfo,
  BitmapContents,
  BitmapInfo,
  ReadOptions,
  RealizedMap,
  RegionData,
  RegionSignatures,
  SnapshotInfo,
  SnapshotList,
  SnapshotGroupItem,
  SnapshotGroupHold,
  SnapshotGroupPrepareOptions,
  NbdExportInfo,
  NbdExportOptions,
  TrackingMapKind,
  TrackingState,
  VolumeState,
  WriteAuth,
  PeerShipOptions,
  PeerShipResult,
  PeerStatus,
  RoleChangeResult,
} from './agent-api';
import { trackingMapKinds } from './agent-api';
import { checkHoldId, checkLeaseMs } from './group-holds';
import { peerTargetSchema, type PeerTarget } from './peer-keys';
import {
  importMarkerSchema,
  pairMemberSchema,
  roleEventSchema,
  type ImportMarker,
  type PairMember,
  type PairMemberChange,
  type RoleEvent,
} from './pair-members';

const pathSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine((path) => !path.includes('\0'), 'must not contain a NUL byte');
const count = z.number().int().nonnegative().max(regionCountMax);
const snapshotId = z.string().regex(snapshotIdPattern);
const bitmapName = z.string().regex(changeMapNamePattern);
const pairId = z.string().uuid();
const generation = z.number().int().positive();
const memberChange = pairMemberSchema
  .pick({ generation: true, seed: true, lcsSnapshotId: true, protectSnapshotId: true, predictRegions: true })
  .partial()
  .strict();
const groupItems = z
  .array(
    z.object({ path: pathSchema, label: z.string().max(snapshotLabelCharsMax).optional(), rotateMaps: z.tuple([bitmapName, bitmapName]).optional() }).strict(),
  )
  .min(1)
  .max(64);
const schemas = {
  info: z.object({}).strict(),
  'volume.create': z.object({ path: pathSchema, sizeBytes: z.number().int().positive(), regionBytes: z.number().int().positive() }).strict(),
  'volume.info': z.object({ path: pathSchema, regionBytes: z.number().int().positive().optional() }).strict(),
  'volume.adopt': z.object({ path: pathSchema, regionBytes: z.number().int().positive() }).strict(),
  'volume.list': z.object({}).strict(),
  'volume.read': z
    .object({ path: pathSchema, firstRegion: count, regionCount: count, snapshotId: snapshotId.optional(), skipMarked: bitmapName.optional() })
    .strict(),
  /** `pairId` and `generation` together: the write's WriteAuth. */
  'volume.write': z.object({ path: pathSchema, regionIndex: count, pairId: pairId.optional(), generation: generation.optional() }).strict(),
  'volume.flush': z.object({ path: pathSchema }).strict(),
  'volume.reclaim': z
    .object({ path: pathSchema, firstRegion: count, regionCount: count, pairId: pairId.optional(), generation: generation.optional() })
    .strict(),
  'volume.realized': z.object({ path: pathSchema }).strict(),
  /** Payload: the region indexes, little-endian uint32. */
  'volume.realize': z.object({ path: pathSchema, pairId: pairId.optional(), generation: generation.optional() }).strict(),
  'volume.signatures': z
    .object({ path: pathSchema, hash: z.enum(hashAlgorithms), firstRegion: count, regionCount: count, snapshotId: snapshotId.optional() })
    .strict(),
  'snapshot.create': z
    .object({ path: pathSchema, label: z.string().max(snapshotLabelCharsMax).optional(), rotateMaps: z.tuple([bitmapName, bitmapName]).optional() })
    .strict(),
  'snapshot.createGroup': z.object({ items: groupItems }).strict(),
  'snapshot.groupPrepare': z.object({ items: groupItems, leaseMs: z.number().int().min(1).max(groupHoldLeaseMsMax) }).strict(),
  'snapshot.groupCommit': z.object({ holdId: z.string().uuid() }).strict(),
  'snapshot.groupAbort': z.object({ holdId: z.string().uuid() }).strict(),
  /** Payload: the region's bytes. */
  'stage.write': z.object({ path: pathSchema, pairId, cycle: count.min(1), regionIndex: count, generation: generation.optional() }).strict(),
  /** Payload: the cycle's region indexes, little-endian uint32. */
  'stage.apply': z.object({ path: pathSchema, pairId, cycle: count.min(1), generation: generation.optional() }).strict(),
  /** Payload: the cycle's region indexes, little-endian uint32. */
  'stage.seal': z.object({ path: pathSchema, pairId, cycle: count.min(1), generation: generation.optional() }).strict(),
  'stage.applySealed': z.object({ path: pathSchema, pairId, cycle: count.min(1), generation: generation.optional() }).strict(),
  'snapshot.list': z.object({ path: pathSchema }).strict(),
  'snapshot.delete': z.object({ path: pathSchema, snapshotId }).strict(),
  'bitmap.create': z.object({ path: pathSchema, name: bitmapName }).strict(),
  'bitmap.read': z.object({ path: pathSchema, name: bitmapName }).strict(),
  /** The regions to clear travel as the payload: little-endian uint32 indexes; `all` clears every region instead. */
  'bitmap.clear': z.object({ path: pathSchema, name: bitmapName, all: z.boolean() }).strict(),
  'bitmap.delete': z.object({ path: pathSchema, name: bitmapName }).strict(),
  /** Payload: the region indexes to set, little-endian uint32. */
  'bitmap.mark': z.object({ path: pathSchema, name: bitmapName }).strict(),
  'bitmap.list': z.object({ path: pathSchema }).strict(),
  'bitmap.swap': z.object({ path: pathSchema, a: bitmapName, b: bitmapName }).strict(),
  'volume.state': z.object({ path: pathSchema }).strict(),
  'pair.join': z.object({ path: pathSchema, member: pairMemberSchema }).strict(),
  'pair.update': z.object({ path: pathSchema, pairId, change: memberChange }).strict(),
  'pair.leave': z.object({ path: pathSchema, pairId }).strict(),
  'import.mark': z.object({ path: pathSchema, marker: importMarkerSchema.nullable(), pairId: pairId.optional(), generation: generation.optional() }).strict(),
  'tracking.state': z.object({ path: pathSchema, pairId }).strict(),
  'tracking.map': z.object({ path: pathSchema, pairId, which: z.enum(trackingMapKinds) }).strict(),
  'tracking.take': z.object({ path: pathSchema, pairId, regionsMax: count.min(1), fromRegion: count }).strict(),
  /** Payload: `shippedCount` little-endian uint32 region indexes, then the failed ones. */
  'tracking.settle': z.object({ path: pathSchema, pairId, shippedCount: count }).strict(),
  'tracking.requeue': z.object({ path: pathSchema, pairId }).strict(),
  'nbd.start': z
    .object({
      path: pathSchema,
      name: z.string().max(4096),
      host: z.string().min(1).max(255).optional(),
      port: z.number().int().min(0).max(65535).optional(),
      socketPath: pathSchema.optional(),
      readOnly: z.boolean(),
      pairId: pairId.optional(),
    })
    .strict()
    .refine((p) => (p.socketPath === undefined) !== (p.host === undefined || p.port === undefined), 'give host and port, or socketPath'),
  'nbd.stop': z.object({ exportId: z.string().uuid() }).strict(),
  'nbd.list': z.object({}).strict(),
  'pair.roleChange': z.object({ path: pathSchema, pairId, event: roleEventSchema }).strict(),
  /** Payload: the region indexes, little-endian uint32. */
  'tracking.mark': z.object({ path: pathSchema, pairId }).strict(),
  'peer.keyCreate': z.object({ pairId, target: peerTargetSchema }).strict(),
  'peer.authorize': z.object({ pairId, publicKey: z.string().min(1).max(1024) }).strict(),
  'peer.forget': z.object({ pairId }).strict(),
  'peer.status': z.object({ pairId }).strict(),
  /** Payload: the region indexes, little-endian uint32 (sorted). */
  'peer.ship': z
    .object({ path: pathSchema, pairId, generation, limitRateBytesPerSecond: z.number().positive().max(Number.MAX_SAFE_INTEGER).optional() })
    .strict(),
} as const;
type Method = keyof typeof schemas;
type Params<M extends Method> = z.infer<(typeof schemas)[M]>;
type Reply = Promise<RpcMessage> | AsyncIterable<RpcMessage>;

/** The methods that answer with a stream; every other one answers once. */
const streamingMethods = ['volume.read', 'volume.signatures', 'bitmap.read', 'tracking.map'] as const satisfies readonly Method[];
type StreamingMethod = (typeof streamingMethods)[number];
const streams = (method: Method): method is StreamingMethod => (streamingMethods as readonly Method[]).includes(method);
/** The methods that take a request payload; the others refuse one. */
const payloadMethods: readonly Method[] = [
  'volume.write',
  'bitmap.mark',
  'bitmap.clear',
  'tracking.settle',
  'volume.realize',
  'stage.write',
  'stage.apply',
  'stage.seal',
  'peer.ship',
  'tracking.mark',
];

const mismatchHint = 'the client and the agent disagree; update both to one version';

const none = new Uint8Array(0);
const reply = (json: object, payload: Uint8Array = none): RpcMessage => ({ json: json as Record<string, unknown>, payload });

function parse<M extends Method>(method: M, params: Record<string, unknown>): Params<M> {
  const parsed = schemas[method].safeParse(params);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TidemarkError(
      'USAGE',
      `bad parameters for ${method}: ${issue ? `${issue.path.join('.') || '(params)'} ${issue.message}` : 'invalid'}`,
      mismatchHint,
    );
  }
  return parsed.data as Params<M>;
}

function wordsBytes(words: Uint32Array): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
}

/** A copy of `bytes` as 32-bit words (a payload need not be 4-byte aligned). */
function bytesWords(bytes: Uint8Array): Uint32Array {
  if (bytes.byteLength % 4 !== 0) throw new TidemarkError('USAGE', `a payload of ${bytes.byteLength} bytes is not whole 32-bit words`, mismatchHint);
  return new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

const readOptions = (p: { snapshotId?: string; skipMarked?: string }, context: RpcContext): ReadOptions => ({
  signal: context.signal,
  snapshotId: p.snapshotId,
  skipMarked: p.skipMarked,
});

function writeAuth(p: { pairId?: string; generation?: number }): { auth?: WriteAuth } {
  if ((p.pairId === undefined) !== (p.generation === undefined)) {
    throw new TidemarkError('USAGE', 'volume.write: pairId and generation go together', mismatchHint);
  }
  return p.pairId === undefined ? {} : { auth: { pairId: p.pairId, generation: p.generation! } };
}

/** Streams a bitmap in chunks of whole words, each saying where it goes: one frame could not carry the largest. */
function* bitmapChunks({ regionCount, setCount, words }: BitmapContents): Generator<RpcMessage> {
  const bytes = wordsBytes(words);
  for (let offsetBytes = 0; offsetBytes < bytes.length; offsetBytes += rpcBitmapChunkBytes) {
    yield reply({ regionCount, setCount, offsetBytes }, bytes.subarray(offsetBytes, offsetBytes + rpcBitmapChunkBytes));
  }
}

/** Staging carries its pair's id anyway: the generation completes the WriteAuth. */
const stageAuth = (p: { pairId: string; generation?: number }): { auth?: WriteAuth } =>
  p.generation === undefined ? {} : { auth: { pairId: p.pairId, generation: p.generation } };

type Serve<M extends Method, R> = (agent: AgentApi, p: Params<M>, request: RpcMessage, context: RpcContext) => R;

/**
 * Every RPC method: the parameters parsed, the AgentApi call, the reply. A streaming method is
 * an async generator function, so nothing runs until the stream is consumed: work started
 * eagerly and then not consumed would reject with no one listening, and that kills the agent.
 */
const methods: { [M in Method]: Serve<M, M extends StreamingMethod ? AsyncIterable<RpcMessage> : Promise<RpcMessage>> } = {
  info: (agent) => agent.info().then((info) => reply(info)),
  'volume.create': (agent, p) => agent.volumeCreate(p.path, p.sizeBytes, p.regionBytes).then((record) => reply(record)),
  'volume.info': (agent, p) => agent.volumeInfo(p.path, { regionBytes: p.regionBytes }).then((info) => reply(info)),
  'volume.adopt': (agent, p) => agent.volumeAdopt(p.path, p.regionBytes).then((record) => reply(record)),
  'volume.list': (agent) => agent.volumeList().then((volumes) => reply({ volumes })),
  'volume.read': async function* (agent, p, _request, context) {
    for await (const region of agent.readRegions(p.path, p.firstRegion, p.regionCount, readOptions(p, context)))
      yield reply({ regionIndex: region.regionIndex }, region.data);
  },
  'volume.write': (agent, p, request) => agent.writeRegion(p.path, p.regionIndex, request.payload, writeAuth(p)).then(() => reply({})),
  'volume.flush': (agent, p) => agent.flush(p.path).then(() => reply({})),
  'volume.reclaim': (agent, p) => agent.reclaimRegions(p.path, p.firstRegion, p.regionCount, writeAuth(p)).then((result) => reply(result)),
  'volume.realized': (agent, p) => agent.realizedMap(p.path).then((map) => reply({ regionCount: map.regionCount, source: map.source }, wordsBytes(map.words))),
  'volume.realize': (agent, p, request) => agent.realizeRegions(p.path, Array.from(bytesWords(request.payload)), writeAuth(p)).then(() => reply({})),
  'volume.signatures': async function* (agent, p, _request, context) {
    for await (const batch of agent.signatures(p.path, p.hash, p.firstRegion, p.regionCount, readOptions(p, context)))
      yield reply({ regionIndexes: batch.regionIndexes }, batch.signatures);
  },
  'snapshot.create': (agent, p) =>
    agent.snapshotCreate(p.path, { label: p.label, ...(p.rotateMaps ? { rotateMaps: p.rotateMaps } : {}) }).then((info) => reply(info)),
  'snapshot.createGroup': (agent, p) => agent.snapshotCreateGroup(p.items).then((snapshots) => reply({ snapshots })),
  'snapshot.groupPrepare': (agent, p) => agent.snapshotGroupPrepare(p.items, { leaseMs: p.leaseMs }).then((hold) => reply(hold)),
  'snapshot.groupCommit': (agent, p) => agent.snapshotGroupCommit(p.holdId).then((snapshots) => reply({ snapshots })),
  'snapshot.groupAbort': (agent, p) => agent.snapshotGroupAbort(p.holdId).then(() => reply({})),
  'stage.write': (agent, p, request) => agent.stageRegion(p.path, p.pairId, p.cycle, p.regionIndex, request.payload, stageAuth(p)).then(() => reply({})),
  'stage.apply': (agent, p, request) =>
    agent.stageApply(p.path, p.pairId, p.cycle, Array.from(bytesWords(request.payload)), stageAuth(p)).then(() => reply({})),
  'stage.seal': (agent, p, request) => agent.stageSeal(p.path, p.pairId, p.cycle, Array.from(bytesWords(request.payload)), stageAuth(p)).then(() => reply({})),
  'stage.applySealed': (agent, p) => agent.stageApplySealed(p.path, p.pairId, p.cycle, stageAuth(p)).then(() => reply({})),
  'snapshot.list': (agent, p) => agent.snapshotList(p.path).then((list) => reply(list)),
  'snapshot.delete': (agent, p) => agent.snapshotDelete(p.path, p.snapshotId).then(() => reply({})),
  'bitmap.create': (agent, p) => agent.bitmapCreate(p.path, p.name).then((info) => reply(info)),
  'bitmap.read': async function* (agent, p) {
    yield* bitmapChunks(await agent.bitmapRead(p.path, p.name));
  },
  'bitmap.clear': async (agent, p, request) => {
    if (p.all && request.payload.length > 0)
      throw new TidemarkError('USAGE', `bitmap.clear: all with ${request.payload.length} bytes of region indexes`, 'send either all or region indexes');
    await agent.bitmapClear(p.path, p.name, p.all ? undefined : Array.from(bytesWords(request.payload)));
    return reply({});
  },
  'bitmap.delete': (agent, p) => agent.bitmapDelete(p.path, p.name).then(() => reply({})),
  'bitmap.mark': (agent, p, request) => agent.bitmapMark(p.path, p.name, Array.from(bytesWords(request.payload))).then(() => reply({})),
  'bitmap.list': (agent, p) => agent.bitmapList(p.path).then((bitmaps) => reply({ bitmaps })),
  'bitmap.swap': (agent, p) => agent.bitmapSwap(p.path, p.a, p.b).then(() => reply({})),
  'volume.state': (agent, p) => agent.volumeState(p.path).then((state) => reply(state)),
  'pair.join': (agent, p) => agent.pairJoin(p.path, p.member).then((member) => reply(member)),
  'pair.update': (agent, p) => agent.pairUpdate(p.path, p.pairId, p.change).then((member) => reply(member)),
  'pair.leave': (agent, p) => agent.pairLeave(p.path, p.pairId).then(() => reply({})),
  'import.mark': (agent, p) => agent.importMark(p.path, p.marker, writeAuth(p)).then(() => reply({})),
  'tracking.state': (agent, p) => agent.trackingState(p.path, p.pairId).then((state) => reply(state)),
  'tracking.map': async function* (agent, p) {
    yield* bitmapChunks(await agent.trackingMap(p.path, p.pairId, p.which));
  },
  'tracking.take': (agent, p) =>
    agent.trackingTake(p.path, p.pairId, p.regionsMax, p.fromRegion).then((taken) => reply({ count: taken.length }, wordsBytes(Uint32Array.from(taken)))),
  'tracking.settle': async (agent, p, request) => {
    const indexes = Array.from(bytesWords(request.payload));
    if (p.shippedCount > indexes.length)
      throw new TidemarkError('USAGE', `tracking.settle: ${p.shippedCount} shipped of ${indexes.length} regions`, mismatchHint);
    await agent.trackingSettle(p.path, p.pairId, indexes.slice(0, p.shippedCount), indexes.slice(p.shippedCount));
    return reply({});
  },
  'tracking.requeue': (agent, p) => agent.trackingRequeue(p.path, p.pairId).then((count) => reply({ count })),
  'nbd.start': (agent, p) =>
    agent
      .nbdExportStart(p.path, {
        name: p.name,
        readOnly: p.readOnly,
        target: p.socketPath !== undefined ? { socketPath: p.socketPath } : { host: p.host!, port: p.port! },
        ...(p.pairId === undefined ? {} : { pairId: p.pairId }),
      })
      .then((info) => reply(info)),
  'nbd.stop': (agent, p) => agent.nbdExportStop(p.exportId).then(() => reply({})),
  'nbd.list': (agent) => agent.nbdExportList().then((exports) => reply({ exports })),
  'pair.roleChange': (agent, p) => agent.pairRoleChange(p.path, p.pairId, p.event).then((result) => reply(result)),
  'tracking.mark': (agent, p, request) => agent.trackingMark(p.path, p.pairId, Array.from(bytesWords(request.payload))).then(() => reply({})),
  'peer.keyCreate': (agent, p) => agent.peerKeyCreate(p.pairId, p.target).then((result) => reply(result)),
  'peer.authorize': (agent, p) => agent.peerAuthorize(p.pairId, p.publicKey).then((result) => reply(result)),
  'peer.forget': (agent, p) => agent.peerForget(p.pairId).then(() => reply({})),
  'peer.status': (agent, p) => agent.peerStatus(p.pairId).then((status) => reply(status)),
  'peer.ship': (agent, p, request, context) =>
    agent
      .peerShip(p.path, p.pairId, Array.from(bytesWords(request.payload)), {
        auth: { pairId: p.pairId, generation: p.generation },
        signal: context.signal,
        ...(p.limitRateBytesPerSecond === undefined ? {} : { limitRateBytesPerSecond: p.limitRateBytesPerSecond }),
      })
      .then((result) => reply(result)),
};

/** Refuses a request in the wrong mode or with a payload its method does not take, before any work. */
function checkRequest(method: Method, request: RpcMessage, context: RpcContext): void {
  if (streams(method) && !context.streaming) throw new TidemarkError('USAGE', `${method} streams: it cannot be called for a single reply`, mismatchHint);
  if (!streams(method) && context.streaming) throw new TidemarkError('USAGE', `${method} does not stream: it answers once`, mismatchHint);
  if (request.payload.length > 0 && !payloadMethods.includes(method)) {
    throw new TidemarkError('USAGE', `${method} takes no request payload, got ${request.payload.length} bytes`, mismatchHint);
  }
}

export interface AgentSession {
  readonly handler: RpcHandler;
  /** The client went away: what it started that lives only as long as it does (NBD exports) stops. */
  release(): Promise<void>;
}

/** One client's session: the handler, and what the client started that ends with it. */
export function agentSession(agent: AgentApi): AgentSession {
  const exportIds = new Set<string>();
  /** Group holds this client prepared and has not ended: its going away releases their writes at once, not at lease expiry. */
  const holdIds = new Set<string>();
  const inner = serveAgent(agent);
  const handler: RpcHandler = (method, request, context) => {
    const result = inner(method, request, context);
    if (method === 'nbd.start')
      void (result as Promise<RpcMessage>).then(
        (r) => exportIds.add(r.json.exportId as string),
        () => undefined,
      );
    if (method === 'nbd.stop') exportIds.delete((request.json as { exportId?: string }).exportId ?? '');
    if (method === 'snapshot.groupPrepare')
      void (result as Promise<RpcMessage>).then(
        (r) => holdIds.add(r.json.holdId as string),
        () => undefined,
      );
    if (method === 'snapshot.groupCommit' || method === 'snapshot.groupAbort') holdIds.delete((request.json as { holdId?: string }).holdId ?? '');
    return result;
  };
  return {
    handler,
    release: async () => {
      for (const holdId of holdIds) await agent.snapshotGroupAbort(holdId).catch(() => undefined);
      holdIds.clear();
      for (const exportId of exportIds) await agent.nbdExportStop(exportId).catch(() => undefined);
      exportIds.clear();
    },
  };
}

/** The RPC handler of an agent process: every method of AgentApi, parameters validated. */
export function serveAgent(agent: AgentApi): RpcHandler {
  return (method, request, context) => {
    if (!Object.prototype.hasOwnProperty.call(schemas, method)) {
      throw new TidemarkError('USAGE', `unknown agent method "${method}"`, 'the client is newer than this agent; update the agent');
    }
    const m = method as Method;
    const serve = methods[m] as Serve<Method, Reply>;
    // A bad request throws here, before any work: the peer answers with that error.
    checkRequest(m, request, context);
    return serve(agent, parse(m, request.json), request, context);
  };
}

function stageGeneration(pairId: string, auth: WriteAuth | undefined): { generation?: number } {
  if (auth && auth.pairId !== pairId)
    throw new TidemarkError('USAGE', `staging for pair ${pairId} with the auth of pair ${auth.pairId}`, "stage with the pair's own auth");
  return auth ? { generation: auth.generation } : {};
}

/** Region indexes as 32-bit words; anything that is not an index is refused, never wrapped around. */
function regionIndexWords(regionIndexes: readonly number[]): Uint32Array {
  const words = new Uint32Array(regionIndexes.length);
  regionIndexes.forEach((r, i) => {
    if (!Number.isSafeInteger(r) || r < 0 || r >= 2 ** 32) throw new TidemarkError('USAGE', `${r} is not a region index`, 'clear regions within the volume');
    words[i] = r;
  });
  return words;
}

function malformedBitmap(why: string): TidemarkError {
  return new TidemarkError('IO', `the agent sent a malformed bitmap: ${why}`, mismatchHint);
}

/** Puts a bitmap streamed in chunks (bitmapChunks) back together, checking every chunk's place. */
async function assembleBitmap(chunks: AsyncIterable<RpcMessage>): Promise<BitmapContents> {
  let assembled: { regionCount: number; setCount: number; bytes: Uint8Array } | undefined;
  for await (const { json, payload } of chunks) {
    const { regionCount, setCount, offsetBytes } = json as { regionCount: number; setCount: number; offsetBytes: number };
    if (!Number.isSafeInteger(regionCount) || regionCount <= 0 || regionCount > regionCountMax) throw malformedBitmap(`region count ${regionCount}`);
    assembled ??= { regionCount, setCount, bytes: new Uint8Array(Math.ceil(regionCount / 32) * 4) };
    if (
      regionCount !== assembled.regionCount ||
      !Number.isSafeInteger(offsetBytes) ||
      offsetBytes < 0 ||
      offsetBytes + payload.length > assembled.bytes.length
    ) {
      throw malformedBitmap(`a chunk of ${payload.length} bytes at ${offsetBytes}`);
    }
    assembled.bytes.set(payload, offsetBytes);
  }
  if (!assembled) throw malformedBitmap('no chunks');
  return { regionCount: assembled.regionCount, setCount: assembled.setCount, words: new Uint32Array(assembled.bytes.buffer) };
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

  async volumeList(): Promise<VolumeRecord[]> {
    return (await this.peer.call('volume.list', {})).json.volumes as VolumeRecord[];
  }

  async volumeAdopt(path: string, regionBytes: number): Promise<VolumeRecord> {
    return (await this.peer.call('volume.adopt', { path, regionBytes })).json as unknown as VolumeRecord;
  }

  async *readRegions(path: string, firstRegion: number, regionCount: number, options: ReadOptions = {}): AsyncIterable<RegionData> {
    if (options.snapshotId !== undefined) checkSnapshotId(options.snapshotId);
    const params = { path, firstRegion, regionCount, snapshotId: options.snapshotId, skipMarked: options.skipMarked };
    for await (const chunk of this.peer.stream('volume.read', params, undefined, { signal: options.signal })) {
      yield { regionIndex: chunk.json.regionIndex as number, data: chunk.payload };
    }
  }

  async writeRegion(path: string, regionIndex: number, data: Uint8Array, options: { auth?: WriteAuth } = {}): Promise<void> {
    const auth = options.auth ? { pairId: options.auth.pairId, generation: options.auth.generation } : {};
    await this.peer.call('volume.write', { path, regionIndex, ...auth }, data);
  }

  async flush(path: string): Promise<void> {
    await this.peer.call('volume.flush', { path });
  }

  async reclaimRegions(path: string, firstRegion: number, regionCount: number, options: { auth?: WriteAuth } = {}): Promise<{ punched: boolean }> {
    const auth = options.auth ? { pairId: options.auth.pairId, generation: options.auth.generation } : {};
    return (await this.peer.call('volume.reclaim', { path, firstRegion, regionCount, ...auth })).json as { punched: boolean };
  }

  async realizeRegions(path: string, regionIndexes: readonly number[], options: { auth?: WriteAuth } = {}): Promise<void> {
    const auth = options.auth ? { pairId: options.auth.pairId, generation: options.auth.generation } : {};
    await this.peer.call('volume.realize', { path, ...auth }, wordsBytes(regionIndexWords(regionIndexes)));
  }

  async realizedMap(path: string): Promise<RealizedMap> {
    const { json, payload } = await this.peer.call('volume.realized', { path });
    const words = bytesWords(payload);
    return { regionCount: json.regionCount as number, words, source: json.source as RealizedMap['source'] };
  }

  async *signatures(path: string, hash: HashAlgorithm, firstRegion: number, regionCount: number, options: ReadOptions = {}): AsyncIterable<RegionSignatures> {
    if (options.snapshotId !== undefined) checkSnapshotId(options.snapshotId);
    const params = { path, hash, firstRegion, regionCount, snapshotId: options.snapshotId };
    for await (const chunk of this.peer.stream('volume.signatures', params, undefined, { signal: options.signal })) {
      yield { regionIndexes: chunk.json.regionIndexes as number[], signatures: chunk.payload };
    }
  }

  // Names, ids and labels are checked here too, so a bad one fails with the same error as in-process.

  async snapshotCreate(path: string, options: { label?: string; rotateMaps?: readonly [string, string] } = {}): Promise<SnapshotInfo> {
    if (options.label !== undefined) checkSnapshotLabel(options.label);
    options.rotateMaps?.forEach(checkChangeMapName);
    return (await this.peer.call('snapshot.create', { path, label: options.label, ...(options.rotateMaps ? { rotateMaps: options.rotateMaps } : {}) }))
      .json as unknown as SnapshotInfo;
  }

  async snapshotCreateGroup(items: readonly SnapshotGroupItem[]): Promise<SnapshotInfo[]> {
    return (await this.peer.call('snapshot.createGroup', { items: items.map((i) => ({ ...i })) })).json.snapshots as SnapshotInfo[];
  }

  async snapshotGroupPrepare(items: readonly SnapshotGroupItem[], options: SnapshotGroupPrepareOptions): Promise<SnapshotGroupHold> {
    checkLeaseMs(options.leaseMs);
    return (await this.peer.call('snapshot.groupPrepare', { items: items.map((i) => ({ ...i })), leaseMs: options.leaseMs }))
      .json as unknown as SnapshotGroupHold;
  }

  async snapshotGroupCommit(holdId: string): Promise<SnapshotInfo[]> {
    checkHoldId(holdId);
    return (await this.peer.call('snapshot.groupCommit', { holdId })).json.snapshots as SnapshotInfo[];
  }

  async snapshotGroupAbort(holdId: string): Promise<void> {
    checkHoldId(holdId);
    await this.peer.call('snapshot.groupAbort', { holdId });
  }

  async stageRegion(path: string, pairId: string, cycle: number, regionIndex: number, data: Uint8Array, options: { auth?: WriteAuth } = {}): Promise<void> {
    await this.peer.call('stage.write', { path, pairId, cycle, regionIndex, ...stageGeneration(pairId, options.auth) }, data);
  }

  async stageApply(path: string, pairId: string, cycle: number, regionIndexes: readonly number[], options: { auth?: WriteAuth } = {}): Promise<void> {
    await this.peer.call('stage.apply', { path, pairId, cycle, ...stageGeneration(pairId, options.auth) }, wordsBytes(regionIndexWords(regionIndexes)));
  }

  async stageSeal(path: string, pairId: string, cycle: number, regionIndexes: readonly number[], options: { auth?: WriteAuth } = {}): Promise<void> {
    await this.peer.call('stage.seal', { path, pairId, cycle, ...stageGeneration(pairId, options.auth) }, wordsBytes(regionIndexWords(regionIndexes)));
  }

  async stageApplySealed(path: string, pairId: string, cycle: number, options: { auth?: WriteAuth } = {}): Promise<void> {
    await this.peer.call('stage.applySealed', { path, pairId, cycle, ...stageGeneration(pairId, options.auth) });
  }

  async snapshotList(path: string): Promise<SnapshotList> {
    return (await this.peer.call('snapshot.list', { path })).json as unknown as SnapshotList;
  }

  async snapshotDelete(path: string, snapshotId: string): Promise<void> {
    checkSnapshotId(snapshotId);
    await this.peer.call('snapshot.delete', { path, snapshotId });
  }

  async bitmapCreate(path: string, name: string): Promise<BitmapInfo> {
    checkChangeMapName(name);
    return (await this.peer.call('bitmap.create', { path, name })).json as unknown as BitmapInfo;
  }

  async bitmapRead(path: string, name: string): Promise<BitmapContents> {
    checkChangeMapName(name);
    return assembleBitmap(this.peer.stream('bitmap.read', { path, name }));
  }

  async bitmapClear(path: string, name: string, regionIndexes?: readonly number[]): Promise<void> {
    checkChangeMapName(name);
    const indexes = regionIndexes === undefined ? none : wordsBytes(regionIndexWords(regionIndexes));
    await this.peer.call('bitmap.clear', { path, name, all: regionIndexes === undefined }, indexes);
  }

  async bitmapMark(path: string, name: string, regionIndexes: readonly number[]): Promise<void> {
    checkChangeMapName(name);
    await this.peer.call('bitmap.mark', { path, name }, wordsBytes(regionIndexWords(regionIndexes)));
  }

  async bitmapDelete(path: string, name: string): Promise<void> {
    checkChangeMapName(name);
    await this.peer.call('bitmap.delete', { path, name });
  }

  async bitmapList(path: string): Promise<BitmapInfo[]> {
    return (await this.peer.call('bitmap.list', { path })).json.bitmaps as BitmapInfo[];
  }

  async bitmapSwap(path: string, a: string, b: string): Promise<void> {
    checkChangeMapName(a);
    checkChangeMapName(b);
    await this.peer.call('bitmap.swap', { path, a, b });
  }

  async volumeState(path: string): Promise<VolumeState> {
    return (await this.peer.call('volume.state', { path })).json as unknown as VolumeState;
  }

  async pairJoin(path: string, member: PairMember): Promise<PairMember> {
    return (await this.peer.call('pair.join', { path, member })).json as unknown as PairMember;
  }

  async pairUpdate(path: string, pairId: string, change: PairMemberChange): Promise<PairMember> {
    return (await this.peer.call('pair.update', { path, pairId, change })).json as unknown as PairMember;
  }

  async pairLeave(path: string, pairId: string): Promise<void> {
    await this.peer.call('pair.leave', { path, pairId });
  }

  async importMark(path: string, marker: ImportMarker | null, options: { auth?: WriteAuth } = {}): Promise<void> {
    const auth = options.auth ? { pairId: options.auth.pairId, generation: options.auth.generation } : {};
    await this.peer.call('import.mark', { path, marker, ...auth });
  }

  async trackingState(path: string, pairId: string): Promise<TrackingState> {
    return (await this.peer.call('tracking.state', { path, pairId })).json as unknown as TrackingState;
  }

  async trackingMap(path: string, pairId: string, which: TrackingMapKind): Promise<BitmapContents> {
    return assembleBitmap(this.peer.stream('tracking.map', { path, pairId, which }));
  }

  async trackingTake(path: string, pairId: string, regionsMax: number, fromRegion: number): Promise<number[]> {
    const { json, payload } = await this.peer.call('tracking.take', { path, pairId, regionsMax, fromRegion });
    const taken = Array.from(bytesWords(payload));
    if (taken.length !== json.count || taken.length > regionsMax)
      throw new TidemarkError('IO', `the agent sent ${taken.length} taken regions, said ${String(json.count)}`, mismatchHint);
    return taken;
  }

  async trackingSettle(path: string, pairId: string, shipped: readonly number[], failed: readonly number[]): Promise<void> {
    const indexes = wordsBytes(regionIndexWords([...shipped, ...failed]));
    await this.peer.call('tracking.settle', { path, pairId, shippedCount: shipped.length }, indexes);
  }

  async trackingRequeue(path: string, pairId: string): Promise<number> {
    return (await this.peer.call('tracking.requeue', { path, pairId })).json.count as number;
  }

  async nbdExportStart(path: string, options: NbdExportOptions): Promise<NbdExportInfo> {
    const target = 'socketPath' in options.target ? { socketPath: options.target.socketPath } : { host: options.target.host, port: options.target.port };
    const params = { path, name: options.name, readOnly: options.readOnly, ...target, ...(options.pairId === undefined ? {} : { pairId: options.pairId }) };
    return (await this.peer.call('nbd.start', params)).json as unknown as NbdExportInfo;
  }

  async nbdExportStop(exportId: string): Promise<void> {
    await this.peer.call('nbd.stop', { exportId });
  }

  async nbdExportList(): Promise<NbdExportInfo[]> {
    return (await this.peer.call('nbd.list', {})).json.exports as NbdExportInfo[];
  }

  async pairRoleChange(path: string, pairId: string, event: RoleEvent): Promise<RoleChangeResult> {
    return (await this.peer.call('pair.roleChange', { path, pairId, event })).json as unknown as RoleChangeResult;
  }

  async trackingMark(path: string, pairId: string, regionIndexes: readonly number[]): Promise<void> {
    await this.peer.call('tracking.mark', { path, pairId }, wordsBytes(regionIndexWords(regionIndexes)));
  }

  async peerKeyCreate(pairId: string, target: PeerTarget): Promise<{ publicKey: string }> {
    return (await this.peer.call('peer.keyCreate', { pairId, target })).json as { publicKey: string };
  }

  async peerAuthorize(pairId: string, publicKey: string): Promise<{ authorizedKeysPath: string }> {
    return (await this.peer.call('peer.authorize', { pairId, publicKey })).json as { authorizedKeysPath: string };
  }

  async peerForget(pairId: string): Promise<void> {
    await this.peer.call('peer.forget', { pairId });
  }

  async peerStatus(pairId: string): Promise<PeerStatus> {
    return (await this.peer.call('peer.status', { pairId })).json as unknown as PeerStatus;
  }

  async peerShip(path: string, pairId: string, regionIndexes: readonly number[], options: PeerShipOptions): Promise<PeerShipResult> {
    if (options.auth.pairId !== pairId)
      throw new TidemarkError('USAGE', `shipping pair ${pairId} with the auth of pair ${options.auth.pairId}`, "ship with the pair's own auth");
    const params = { path, pairId, generation: options.auth.generation, limitRateBytesPerSecond: options.limitRateBytesPerSecond };
    const result = await this.peer.call('peer.ship', params, wordsBytes(regionIndexWords(regionIndexes)), { signal: options.signal });
    return result.json as unknown as PeerShipResult;
  }

  async dispose(): Promise<void> {
    this.peer.close();
  }

  /** RPC bytes both ways on this connection's stream so far (requests, replies, handshake, keepalives); kept after it closes. */
  wireBytes(): number {
    return this.peer.wireBytes();
  }
}
