// One NBD client connection: the handshake, option haggling and the transmission phase, parsed
// from one ByteQueue filled by a ReadArena. Requests run concurrently and may be answered out of
// order; replies are written whole (header and payload in one corked batch), so they never
// interleave.

import type { Socket } from 'node:net';
import { assert } from '../assert';
import { TidemarkError, errnoCode } from '../errors';
import { type BufferPool } from './buffer-pool';
import { type ByteQueue } from './byte-queue';
import type { NbdExport, NbdExtent } from './export';
import {
  type MetaContext,
  infoBlockSize,
  infoExport,
  infoString,
  listMatches,
  metaContextEntry,
  metaContextsOf,
  parseInfoRequest,
  parseMetaContextRequest,
  serverEntry,
  setMatches,
  transmissionFlags,
  writeUInt64BE,
} from './negotiation';
import {
  type NbdErrno,
  clientFlagFixedNewstyle,
  clientFlagNoZeroes,
  cmd,
  cmdFlag,
  exportNameZeroesBytes,
  flagFixedNewstyle,
  flagNoZeroes,
  greetingBytes,
  info,
  nbdCloseGraceMs,
  nbdDirectReadBytesMin,
  nbdDiscardBytesMax,
  nbdErr,
  nbdExtentsPerReplyMax,
  nbdInFlightBytesMax,
  nbdInFlightRequestsMax,
  nbdJoinedReplyPartBytesMax,
  nbdMagicHi,
  nbdMagicLo,
  nbdNegotiationMs,
  nbdOptionBytesMax,
  nbdOptionsPerConnectionMax,
  nbdReadMaxBytes,
  nbdReadMinBytes,
  nbdReadStagingBytes,
  opt,
  optMagicHi,
  optMagicLo,
  optionHeaderBytes,
  rep,
  repMagicHi,
  repMagicLo,
  replyFlagDone,
  replyType,
  requestHeaderBytes,
  requestMagic,
  simpleReplyHeaderBytes,
  simpleReplyMagic,
  structuredReplyHeaderBytes,
  structuredReplyMagic,
} from './protocol';
import { ReadArena, adoptWithOnread } from './read-arena';

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly exports: readonly NbdExport[];
  readonly maxRequestBytes: number;
  readonly pool: BufferPool;
  /** Read sockets into the connection's own buffers (ReadArena); false: as Node streams. */
  readonly directReads: boolean;
  /** The export a name selects: '' is the first export. */
  findExport(name: string): NbdExport | undefined;
  reportError(error: Error): void;
  exportSelected(connection: NbdConnection, nbdExport: NbdExport): void;
}

type Phase = 'greeting' | 'options' | 'transmission' | 'closing' | 'closed';

interface Request {
  readonly flags: number;
  readonly type: number;
  readonly handleHi: number;
  readonly handleLo: number;
  readonly offsetBytes: number;
  readonly bytes: number;
}

/** A refusal of one request: the errno goes to the client; export failures also to onError. */
class RequestError extends Error {
  constructor(
    readonly errno: NbdErrno,
    message: string,
  ) {
    super(message);
  }
}

/** Maps an export's failure to the errno the client sees. */
export function nbdErrnoOf(error: unknown): NbdErrno {
  if (error instanceof RequestError) return error.errno;
  if (error instanceof TidemarkError) {
    if (error.code === 'PERMISSION' || error.code === 'STALE') return nbdErr.perm;
    if (error.code === 'NO_SPACE') return nbdErr.nospc;
  }
  const code = errnoCode(error);
  if (code === 'ENOSPC' || code === 'EDQUOT') return nbdErr.nospc;
  if (code === 'EPERM' || code === 'EACCES' || code === 'EROFS') return nbdErr.perm;
  return nbdErr.io;
}

const knownCommandFlags = cmdFlag.fua | cmdFlag.noHole | cmdFlag.df | cmdFlag.reqOne;

export class NbdConnection {
  private phase: Phase = 'greeting';
  private readonly arena = new ReadArena({ stagingBytes: nbdReadStagingBytes, readMaxBytes: nbdReadMaxBytes, readMinBytes: nbdReadMinBytes });
  private readonly queue: ByteQueue = this.arena.queue;
  private readonly socket: Socket;
  private structured = false;
  private noZeroes = false;
  private optionCount = 0;
  private nbdExport: NbdExport | undefined;
  /** Contexts chosen by the last SET_META_CONTEXT, and the export they were chosen for. */
  private selected: { readonly nbdExport: NbdExport; readonly contexts: readonly MetaContext[] } | undefined;
  private inFlightRequests = 0;
  private inFlightBytes = 0;
  /** An oversized WRITE whose payload is being read and dropped; refused once it is gone. */
  private discard: { request: Request; bytesLeft: number } | undefined;
  /** A WRITE whose payload is being received into a pooled buffer (copied from the queue, or read straight into it). */
  private filling: { request: Request; pooled: Buffer; filledBytes: number } | undefined;
  private paused = false;
  /** The last read completed a large WRITE payload: the next read takes one request header only. */
  private headerNext = false;
  /** Bytes queued in this turn of the event loop, written by flushOutbox at its end. */
  private outbox: Uint8Array[] = [];
  private outboxBytes = 0;
  private negotiationTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private readonly closed: Promise<void>;

  /** `accepted` comes from a server listening with pauseOnConnect: nothing has been read from it. */
  constructor(
    readonly connectionId: number,
    readonly remote: string,
    accepted: Socket,
    private readonly host: ConnectionHost,
  ) {
    const adopted = host.directReads
      ? adoptWithOnread(accepted, { buffer: () => this.nextReadTarget(), callback: (bytes, buffer) => this.onRead(bytes, buffer) })
      : undefined;
    const socket = adopted ?? accepted;
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    if (!adopted) {
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.resume();
    }
    socket.on('drain', () => this.pump());
    // A client's end of stream ends this side too (allowHalfOpen false): replies queued in this
    // turn go out first, as they would have had they been written at once.
    socket.prependListener('end', () => this.writeOutbox());
    socket.on('error', (error) => this.onSocketError(error));
    socket.once('close', () => this.onClose());
    this.negotiationTimer = setTimeout(() => this.protocolError(`chose no export within ${nbdNegotiationMs} ms`), nbdNegotiationMs);
    this.negotiationTimer.unref();
    this.sendGreeting();
  }

  get exportName(): string | undefined {
    return this.nbdExport?.name;
  }

  /** Resolves when the socket has closed. */
  whenClosed(): Promise<void> {
    return this.closed;
  }

  /**
   * Stops reading; requests already read finish and are answered (within nbdCloseGraceMs),
   * then the connection ends. A connection still negotiating ends at once.
   */
  shutdown(): Promise<void> {
    if (this.phase === 'closed') return this.closed;
    if (this.phase === 'greeting' || this.phase === 'options') {
      this.endSocket();
    } else {
      this.beginClosing();
    }
    const destroyTimer = setTimeout(() => this.socket.destroy(), nbdCloseGraceMs);
    return this.closed.finally(() => clearTimeout(destroyTimer));
  }

  // --- input -------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    this.queue.push(chunk);
    this.pump();
  }

  /** Where the socket's next read lands: the rest of a large WRITE payload, else staging. */
  private nextReadTarget(): Uint8Array {
    const filling = this.filling;
    const leftBytes = filling === undefined ? 0 : filling.request.bytes - filling.filledBytes;
    const direct =
      leftBytes >= nbdDirectReadBytesMin && this.phase === 'transmission' ? filling!.pooled.subarray(filling!.filledBytes, filling!.request.bytes) : undefined;
    // After a large write another often follows: read its header alone, so that its payload
    // goes straight into its buffer instead of partly into staging (and copied from there).
    return this.arena.nextTarget(direct, this.headerNext ? requestHeaderBytes : Infinity);
  }

  /** `bytes` bytes were read into `buffer`, the last nextReadTarget(). */
  private onRead(bytes: number, buffer: Uint8Array): boolean {
    // Called from Node's read path: nothing may throw out of here.
    try {
      const direct = this.arena.received(bytes, buffer);
      this.headerNext = false;
      if (this.phase === 'closing' || this.phase === 'closed') return true;
      if (direct) {
        const filling = this.filling;
        assert(
          filling !== undefined && buffer.buffer === filling.pooled.buffer && buffer.byteOffset === filling.pooled.byteOffset + filling.filledBytes,
          'a direct read lands where the payload being filled continues',
        );
        filling.filledBytes += bytes;
        this.headerNext = filling.filledBytes === filling.request.bytes;
      }
      this.pump();
    } catch (error) {
      this.host.reportError(error instanceof Error ? error : new Error(String(error)));
      this.socket.destroy();
    }
    return true;
  }

  /** Parses and dispatches whatever complete frames are buffered, then sets the read flow. */
  private pump(): void {
    // Each pass consumes a frame or returns; frames are at least 4 bytes, so the loop is bounded by the queue.
    while (this.phase !== 'closing' && this.phase !== 'closed' && !this.repliesBacklogged) {
      if (this.discard && !this.stepDiscard()) break;
      if (this.filling && !this.stepFill()) break;
      const progressed = this.phase === 'greeting' ? this.stepGreeting() : this.phase === 'options' ? this.stepOption() : this.stepRequest();
      if (!progressed) break;
    }
    this.updateFlow();
  }

  /** Reading stops while a request cannot be admitted, replies wait to drain, or the connection closes. */
  private updateFlow(): void {
    // Once ended, the socket reads on to see the client's end of stream (endSocket).
    if (this.closeTimer !== undefined) return;
    const stop = this.phase === 'closing' || this.phase === 'closed' || this.repliesBacklogged || this.blocked;
    if (stop && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!stop && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** Replies waiting (on the socket, or queued this turn) reach the socket's high-water mark. */
  private get repliesBacklogged(): boolean {
    return this.socket.writableNeedDrain || this.outboxBytes >= this.socket.writableHighWaterMark;
  }

  /** Set when the next request waits for in-flight ones to finish. */
  private blocked = false;

  private admit(costBytes: number): boolean {
    const ok = this.inFlightRequests < nbdInFlightRequestsMax && (this.inFlightRequests === 0 || this.inFlightBytes + costBytes <= nbdInFlightBytesMax);
    this.blocked = !ok;
    return ok;
  }

  private stepGreeting(): boolean {
    if (this.queue.length < 4) return false;
    const clientFlags = this.queue.take(4).readUInt32BE(0);
    if ((clientFlags & ~(clientFlagFixedNewstyle | clientFlagNoZeroes)) !== 0) {
      this.protocolError(`sent unknown client flags 0x${clientFlags.toString(16)}`);
      return false;
    }
    this.noZeroes = (clientFlags & clientFlagNoZeroes) !== 0;
    this.phase = 'options';
    return true;
  }

  private stepOption(): boolean {
    if (this.queue.length < optionHeaderBytes) return false;
    const header = this.queue.peek(optionHeaderBytes);
    if (header.readUInt32BE(0) !== optMagicHi || header.readUInt32BE(4) !== optMagicLo) {
      this.protocolError('sent an option without the IHAVEOPT magic');
      return false;
    }
    const option = header.readUInt32BE(8);
    const bytes = header.readUInt32BE(12);
    if (bytes > nbdOptionBytesMax) {
      // The payload cannot be skipped cheaply: say why, then hang up.
      this.queue.skip(optionHeaderBytes);
      this.optionReply(option, rep.errTooBig, `option payload of ${bytes} bytes exceeds ${nbdOptionBytesMax}`);
      this.protocolError(`sent option ${option} with a ${bytes}-byte payload (limit ${nbdOptionBytesMax})`);
      return false;
    }
    if (this.queue.length < optionHeaderBytes + bytes) return false;
    this.queue.skip(optionHeaderBytes);
    const data = this.queue.take(bytes);
    this.optionCount += 1;
    if (this.optionCount > nbdOptionsPerConnectionMax) {
      this.protocolError(`sent more than ${nbdOptionsPerConnectionMax} options without choosing an export`);
      return false;
    }
    this.handleOption(option, data);
    return true;
  }

  private stepDiscard(): boolean {
    const discard = this.discard!;
    const n = Math.min(discard.bytesLeft, this.queue.length);
    this.queue.skip(n);
    discard.bytesLeft -= n;
    if (discard.bytesLeft > 0) return false;
    this.discard = undefined;
    this.replyError(discard.request, nbdErr.inval, `write of ${discard.request.bytes} bytes exceeds the ${this.host.maxRequestBytes}-byte limit`);
    return true;
  }

  private stepRequest(): boolean {
    if (this.queue.length < requestHeaderBytes) return false;
    const header = this.queue.peek(requestHeaderBytes);
    const magic = header.readUInt32BE(0);
    if (magic !== requestMagic) {
      this.protocolError(`sent a request with magic 0x${magic.toString(16)}`);
      return false;
    }
    const request: Request = {
      flags: header.readUInt16BE(4),
      type: header.readUInt16BE(6),
      handleHi: header.readUInt32BE(8),
      handleLo: header.readUInt32BE(12),
      // Beyond 2^53 the value rounds, but stays far past any export's end: refused the same.
      offsetBytes: header.readUInt32BE(16) * 0x1_0000_0000 + header.readUInt32BE(20),
      bytes: header.readUInt32BE(24),
    };
    if (request.type === cmd.write) return this.stepWrite(request);
    const costBytes = request.type === cmd.read && request.bytes <= this.host.maxRequestBytes ? request.bytes : 0;
    if (!this.admit(costBytes)) return false;
    this.queue.skip(requestHeaderBytes);
    if (request.type === cmd.disc) {
      this.beginClosing();
      return false;
    }
    this.dispatch(request, undefined, costBytes, undefined);
    return true;
  }

  private stepWrite(request: Request): boolean {
    if (request.bytes > this.host.maxRequestBytes) {
      if (request.bytes > nbdDiscardBytesMax) {
        this.protocolError(`sent a write of ${request.bytes} bytes (limit ${this.host.maxRequestBytes}, discard cap ${nbdDiscardBytesMax})`);
        return false;
      }
      this.queue.skip(requestHeaderBytes);
      this.discard = { request, bytesLeft: request.bytes };
      return true;
    }
    if (!this.admit(request.bytes)) return false;
    // The payload goes into a pooled buffer: what is queued is copied now (stepFill), and the
    // rest of a large one is read straight into it (nextReadTarget). Nothing keeps a view of
    // the queue's memory, which the next reads reuse.
    this.queue.skip(requestHeaderBytes);
    this.filling = { request, pooled: this.host.pool.acquire(request.bytes), filledBytes: 0 };
    return true;
  }

  private stepFill(): boolean {
    const filling = this.filling!;
    const n = Math.min(filling.request.bytes - filling.filledBytes, this.queue.length);
    if (n > 0) this.queue.takeInto(filling.pooled, filling.filledBytes, n);
    filling.filledBytes += n;
    if (filling.filledBytes < filling.request.bytes) return false;
    this.filling = undefined;
    this.dispatch(filling.request, filling.pooled.subarray(0, filling.request.bytes), filling.request.bytes, filling.pooled);
    return true;
  }

  /**
   * Runs a request; `pooled` (the buffer under `data`) goes back to the pool once it has
   * finished. Called from pump only: a request done before perform returns (a small write) is
   * settled here, without pumping again.
   */
  private dispatch(request: Request, data: Buffer | undefined, costBytes: number, pooled: Buffer | undefined): void {
    this.inFlightRequests += 1;
    this.inFlightBytes += costBytes;
    let performed: Promise<void> | undefined;
    try {
      performed = this.perform(request, data);
    } catch (error) {
      performed = Promise.reject(error);
    }
    if (performed === undefined) {
      this.requestSettled(costBytes, pooled);
      // Nothing in a synchronous write closes the connection today; if something did, it ends here as requestDone would end it.
      if (this.phase === 'closing' && this.inFlightRequests === 0) this.endSocket();
      return;
    }
    void performed.then(
      () => this.requestDone(costBytes, pooled),
      (error: unknown) => {
        this.answerFailure(request, error);
        this.requestDone(costBytes, pooled);
      },
    );
  }

  private requestDone(costBytes: number, pooled: Buffer | undefined): void {
    this.requestSettled(costBytes, pooled);
    if (this.phase === 'closing') {
      if (this.inFlightRequests === 0) this.endSocket();
      return;
    }
    this.pump();
  }

  private requestSettled(costBytes: number, pooled: Buffer | undefined): void {
    // The export is done with the payload once its write is (NbdExport.write's contract).
    if (pooled) this.host.pool.release(pooled);
    this.inFlightRequests -= 1;
    this.inFlightBytes -= costBytes;
    assert(this.inFlightRequests >= 0 && this.inFlightBytes >= 0, 'in-flight counts never negative');
  }

  // --- option haggling ----------------------------------------------------------------------

  private handleOption(option: number, data: Buffer): void {
    switch (option) {
      case opt.exportName:
        return this.optExportName(data);
      case opt.abort:
        this.optionReply(option, rep.ack);
        return this.endSocket();
      case opt.list:
        if (data.length !== 0) return this.optionReply(option, rep.errInvalid, 'NBD_OPT_LIST takes no data');
        for (const e of this.host.exports) this.optionReply(option, rep.server, serverEntry(e));
        return this.optionReply(option, rep.ack);
      case opt.info:
      case opt.go:
        return this.optInfo(option, data);
      case opt.structuredReply:
        if (data.length !== 0) return this.optionReply(option, rep.errInvalid, 'NBD_OPT_STRUCTURED_REPLY takes no data');
        this.structured = true;
        return this.optionReply(option, rep.ack);
      case opt.listMetaContext:
      case opt.setMetaContext:
        return this.optMetaContext(option, data);
      default:
        return this.optionReply(option, rep.errUnsup, `option ${option} is not supported`);
    }
  }

  private optExportName(data: Buffer): void {
    const nbdExport = this.host.findExport(data.toString('utf8'));
    // NBD_OPT_EXPORT_NAME has no error reply: an unknown name ends the session.
    if (!nbdExport) return this.protocolError(`asked for unknown export ${JSON.stringify(data.toString('utf8').slice(0, 256))}`);
    const reply = Buffer.alloc(8 + 2 + (this.noZeroes ? 0 : exportNameZeroesBytes));
    writeUInt64BE(reply, nbdExport.sizeBytes, 0);
    reply.writeUInt16BE(transmissionFlags(nbdExport, this.structured), 8);
    this.send(reply);
    this.enterTransmission(nbdExport);
  }

  private optInfo(option: number, data: Buffer): void {
    const parsed = parseInfoRequest(data);
    if (!parsed.ok) return this.optionReply(option, parsed.tooBig ? rep.errTooBig : rep.errInvalid, parsed.reason);
    const nbdExport = this.host.findExport(parsed.value.name);
    if (!nbdExport) return this.optionReply(option, rep.errUnknown, `no export named ${JSON.stringify(parsed.value.name.slice(0, 256))}`);
    const requested = new Set(parsed.value.infoTypes);
    this.optionReply(option, rep.info, infoExport(nbdExport, transmissionFlags(nbdExport, this.structured)));
    if (requested.has(info.name)) this.optionReply(option, rep.info, infoString(info.name, nbdExport.name));
    if (requested.has(info.description) && nbdExport.description !== undefined) {
      this.optionReply(option, rep.info, infoString(info.description, nbdExport.description));
    }
    // Sent whether asked or not (the spec allows it): clients then keep requests within the bound.
    this.optionReply(option, rep.info, infoBlockSize(nbdExport.minBlockBytes ?? 1, nbdExport.preferredBlockBytes ?? 4096, this.host.maxRequestBytes));
    this.optionReply(option, rep.ack);
    if (option === opt.go) this.enterTransmission(nbdExport);
  }

  private optMetaContext(option: number, data: Buffer): void {
    if (!this.structured) return this.optionReply(option, rep.errInvalid, 'negotiate structured replies first');
    const parsed = parseMetaContextRequest(data);
    if (!parsed.ok) return this.optionReply(option, parsed.tooBig ? rep.errTooBig : rep.errInvalid, parsed.reason);
    const nbdExport = this.host.findExport(parsed.value.exportName);
    if (!nbdExport) return this.optionReply(option, rep.errUnknown, `no export named ${JSON.stringify(parsed.value.exportName.slice(0, 256))}`);
    const contexts = metaContextsOf(nbdExport);
    if (option === opt.listMetaContext) {
      for (const c of listMatches(contexts, parsed.value.queries)) this.optionReply(option, rep.metaContext, metaContextEntry(0, c.name));
    } else {
      const chosen = setMatches(contexts, parsed.value.queries);
      this.selected = { nbdExport, contexts: chosen };
      for (const c of chosen) this.optionReply(option, rep.metaContext, metaContextEntry(c.id, c.name));
    }
    this.optionReply(option, rep.ack);
  }

  private enterTransmission(nbdExport: NbdExport): void {
    clearTimeout(this.negotiationTimer);
    this.negotiationTimer = undefined;
    this.nbdExport = nbdExport;
    // Contexts chosen for another export do not apply to this one.
    if (this.selected && this.selected.nbdExport !== nbdExport) this.selected = undefined;
    this.phase = 'transmission';
    this.host.exportSelected(this, nbdExport);
  }

  // --- transmission -------------------------------------------------------------------------

  /** Answers a request that failed (an export failure is also reported); never throws. */
  private answerFailure(request: Request, error: unknown): void {
    try {
      const errno = nbdErrnoOf(error);
      if (!(error instanceof RequestError)) this.host.reportError(error instanceof Error ? error : new Error(String(error)));
      this.replyError(request, errno, error instanceof RequestError ? error.message : `${commandName(request.type)} failed`);
    } catch (bug) {
      this.host.reportError(bug instanceof Error ? bug : new Error(String(bug)));
    }
  }

  /**
   * Runs one request and queues its reply; rejects (or throws) when it failed. WRITE, the hot
   * path, makes no promise when the export wrote before returning: it is answered at once and
   * undefined returned (each promise and async frame costs allocation and a microtask turn).
   */
  private perform(request: Request, data: Buffer | undefined): Promise<void> | undefined {
    if (request.type === cmd.write && (request.flags & ~knownCommandFlags) === 0) {
      const nbdExport = this.nbdExport!;
      this.checkWritable(nbdExport);
      this.checkRange(nbdExport, request, nbdErr.nospc);
      const written = nbdExport.write(request.offsetBytes, data!, { fua: (request.flags & cmdFlag.fua) !== 0 });
      if (written !== undefined) return written.then(() => this.replyOk(request));
      this.replyOk(request);
      return undefined;
    }
    return this.performCommand(request, data);
  }

  private async performCommand(request: Request, data: Buffer | undefined): Promise<void> {
    const nbdExport = this.nbdExport!;
    const { flags, offsetBytes, bytes } = request;
    if ((flags & ~knownCommandFlags) !== 0) throw new RequestError(nbdErr.inval, `unknown command flags 0x${flags.toString(16)}`);
    const fua = (flags & cmdFlag.fua) !== 0;
    switch (request.type) {
      case cmd.read: {
        if (bytes > this.host.maxRequestBytes) {
          throw new RequestError(this.structured ? nbdErr.overflow : nbdErr.inval, `read of ${bytes} bytes exceeds ${this.host.maxRequestBytes}`);
        }
        this.checkRange(nbdExport, request, nbdErr.inval);
        const payload = await nbdExport.read(offsetBytes, bytes);
        if (payload.length !== bytes) throw new TidemarkError('IO', `export read returned ${payload.length} of ${bytes} bytes`, 'this is a bug in the export');
        return this.replyRead(request, payload);
      }
      case cmd.write:
        this.checkWritable(nbdExport);
        this.checkRange(nbdExport, request, nbdErr.nospc);
        await nbdExport.write(offsetBytes, data!, { fua });
        return this.replyOk(request);
      case cmd.flush:
        await nbdExport.flush();
        return this.replyOk(request);
      case cmd.trim:
        this.checkWritable(nbdExport);
        this.checkRange(nbdExport, request, nbdErr.inval);
        await nbdExport.trim(offsetBytes, bytes);
        if (fua) await nbdExport.flush();
        return this.replyOk(request);
      case cmd.writeZeroes:
        this.checkWritable(nbdExport);
        this.checkRange(nbdExport, request, nbdErr.nospc);
        await nbdExport.writeZeroes(offsetBytes, bytes, { fua, mayTrim: (flags & cmdFlag.noHole) === 0 });
        return this.replyOk(request);
      case cmd.cache:
        this.checkRange(nbdExport, request, nbdErr.inval);
        return this.replyOk(request);
      case cmd.blockStatus:
        return this.blockStatus(nbdExport, request);
      default:
        throw new RequestError(nbdErr.inval, `unknown command ${request.type}`);
    }
  }

  private checkWritable(nbdExport: NbdExport): void {
    if (nbdExport.readOnly) throw new RequestError(nbdErr.perm, 'the export is read-only');
  }

  /** Length > 0 and within the export; past the end is `pastEnd` (ENOSPC for writes, per the spec). */
  private checkRange(nbdExport: NbdExport, request: Request, pastEnd: NbdErrno): void {
    if (request.bytes === 0) throw new RequestError(nbdErr.inval, 'zero-length request');
    if (request.offsetBytes + request.bytes > nbdExport.sizeBytes) {
      throw new RequestError(pastEnd, `${request.bytes} bytes at ${request.offsetBytes} lie past the end (${nbdExport.sizeBytes} bytes)`);
    }
  }

  private async blockStatus(nbdExport: NbdExport, request: Request): Promise<void> {
    const contexts = this.selected?.nbdExport === nbdExport ? this.selected.contexts : [];
    if (!this.structured || contexts.length === 0) throw new RequestError(nbdErr.inval, 'no metadata context was selected');
    this.checkRange(nbdExport, request, nbdErr.inval);
    const answers = await Promise.all(contexts.map((c) => c.extents(request.offsetBytes, request.bytes)));
    const reqOne = (request.flags & cmdFlag.reqOne) !== 0;
    const chunks = contexts.map((c, i) => encodeExtents(c.id, answers[i]!, request.bytes, reqOne));
    chunks.forEach((payload, i) => this.sendStructured(request, i === chunks.length - 1 ? replyFlagDone : 0, replyType.blockStatus, payload.length, payload));
  }

  // --- replies ------------------------------------------------------------------------------

  private sendGreeting(): void {
    const greeting = Buffer.allocUnsafe(greetingBytes);
    greeting.writeUInt32BE(nbdMagicHi, 0);
    greeting.writeUInt32BE(nbdMagicLo, 4);
    greeting.writeUInt32BE(optMagicHi, 8);
    greeting.writeUInt32BE(optMagicLo, 12);
    greeting.writeUInt16BE(flagFixedNewstyle | flagNoZeroes, 16);
    this.send(greeting);
  }

  private optionReply(option: number, type: number, data?: Buffer | string): void {
    const payload = typeof data === 'string' ? Buffer.from(data.slice(0, 1024), 'utf8') : data;
    const header = Buffer.allocUnsafe(20);
    header.writeUInt32BE(repMagicHi, 0);
    header.writeUInt32BE(repMagicLo, 4);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(type, 12);
    header.writeUInt32BE(payload?.length ?? 0, 16);
    this.send(header);
    if (payload && payload.length > 0) this.send(payload);
  }

  private replyOk(request: Request): void {
    this.sendSimple(request, 0);
  }

  private replyRead(request: Request, payload: Uint8Array): void {
    if (!this.structured) {
      this.sendSimple(request, 0);
      this.send(payload);
      return;
    }
    // One OFFSET_DATA chunk (so NBD_CMD_FLAG_DF always holds): the offset, then the data as read.
    const header = this.structuredHeader(request, replyFlagDone, replyType.offsetData, 8 + payload.length, 8);
    writeUInt64BE(header, request.offsetBytes, structuredReplyHeaderBytes);
    this.send(header);
    this.send(payload);
  }

  private replyError(request: Request, errno: NbdErrno, message: string): void {
    // Simple replies may carry errors for any request, except that READ and BLOCK_STATUS
    // with structured replies answer with an error chunk.
    if (!this.structured || (request.type !== cmd.read && request.type !== cmd.blockStatus)) return this.sendSimple(request, errno);
    const text = Buffer.from(message.slice(0, 256), 'utf8');
    const payload = Buffer.allocUnsafe(6 + text.length);
    payload.writeUInt32BE(errno, 0);
    payload.writeUInt16BE(text.length, 4);
    text.copy(payload, 6);
    this.sendStructured(request, replyFlagDone, replyType.error, payload.length, payload);
  }

  private sendSimple(request: Request, errno: number): void {
    const header = Buffer.allocUnsafe(simpleReplyHeaderBytes);
    header.writeUInt32BE(simpleReplyMagic, 0);
    header.writeUInt32BE(errno, 4);
    header.writeUInt32BE(request.handleHi, 8);
    header.writeUInt32BE(request.handleLo, 12);
    this.send(header);
  }

  private structuredHeader(request: Request, flags: number, type: number, payloadBytes: number, extraBytes = 0): Buffer {
    const header = Buffer.allocUnsafe(structuredReplyHeaderBytes + extraBytes);
    header.writeUInt32BE(structuredReplyMagic, 0);
    header.writeUInt16BE(flags, 4);
    header.writeUInt16BE(type, 6);
    header.writeUInt32BE(request.handleHi, 8);
    header.writeUInt32BE(request.handleLo, 12);
    header.writeUInt32BE(payloadBytes, 16);
    return header;
  }

  private sendStructured(request: Request, flags: number, type: number, payloadBytes: number, payload: Buffer): void {
    this.send(this.structuredHeader(request, flags, type, payloadBytes));
    this.send(payload);
  }

  /**
   * Queues bytes for the socket. Everything queued in one turn of the event loop goes out
   * together at its end (flushOutbox: one writev), and the pieces of one reply are always
   * queued in the same turn, so replies never interleave.
   */
  private send(bytes: Uint8Array): void {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return;
    if (this.outbox.length === 0) setImmediate(this.flushOutbox);
    this.outbox.push(bytes);
    this.outboxBytes += bytes.length;
  }

  /**
   * Writes what send() queued: runs of small pieces (reply headers, mostly) joined into one
   * buffer, large ones (read payloads) as they are, corked into one writev. One socket.write
   * per reply cost more than the reply's share of the system call.
   */
  private readonly flushOutbox = (): void => {
    this.writeOutbox();
    // Parsing may have stopped on the queued bytes (repliesBacklogged): go on if it can.
    if (this.phase === 'transmission' && (this.paused || this.queue.length > 0)) this.pump();
  };

  private writeOutbox(): void {
    const parts = this.outbox;
    this.outbox = [];
    this.outboxBytes = 0;
    const socket = this.socket;
    if (parts.length === 0 || socket.destroyed || !socket.writable) return;
    if (parts.length === 1) {
      socket.write(parts[0]!);
      return;
    }
    socket.cork();
    let run: Uint8Array[] = [];
    let runBytes = 0;
    for (const part of parts) {
      if (part.length <= nbdJoinedReplyPartBytesMax) {
        run.push(part);
        runBytes += part.length;
        continue;
      }
      if (run.length > 0) socket.write(Buffer.concat(run, runBytes));
      run = [];
      runBytes = 0;
      socket.write(part);
    }
    if (run.length > 0) socket.write(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
    socket.uncork();
  }

  // --- ending -------------------------------------------------------------------------------

  /** DISC or shutdown: read nothing more, answer what is in flight, then end. */
  private beginClosing(): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    this.phase = 'closing';
    this.queue.clear();
    this.discard = undefined;
    // Not given back to the pool: a read may still be landing in it.
    if (this.filling) this.host.pool.abandon();
    this.filling = undefined;
    this.updateFlow();
    if (this.inFlightRequests === 0) this.endSocket();
  }

  /** A client broke the protocol: report it and end the connection (in-flight requests first). */
  private protocolError(reason: string): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    this.host.reportError(
      new TidemarkError('IO', `NBD client ${this.remote} ${reason}; disconnecting it`, 'check the client; other connections are unaffected'),
    );
    this.beginClosing();
  }

  private endSocket(): void {
    if (this.phase !== 'closed') this.phase = 'closing';
    this.writeOutbox(); // replies queued this turn go before the end of stream
    this.queue.clear();
    clearTimeout(this.negotiationTimer);
    if (!this.socket.destroyed) this.socket.end();
    // Read on (onData drops it) so the client's end of stream is seen and the socket closes;
    // a paused socket never notices that the client is gone.
    this.paused = false;
    this.socket.resume();
    // A client that never closes its side is cut off. Not unref'd: close() waits for it.
    this.closeTimer ??= setTimeout(() => this.socket.destroy(), nbdCloseGraceMs);
  }

  private onSocketError(error: Error): void {
    const code = errnoCode(error);
    // A client going away mid-stream is normal; anything else is worth a report.
    if (code !== 'ECONNRESET' && code !== 'EPIPE' && code !== 'ERR_STREAM_DESTROYED' && code !== 'ERR_STREAM_WRITE_AFTER_END') {
      this.host.reportError(new TidemarkError('IO', `NBD connection from ${this.remote} failed: ${error.message}`, 'the client reconnects', { cause: error }));
    }
  }

  private onClose(): void {
    this.phase = 'closed';
    this.queue.clear();
    // A payload cut off by the close: nothing more lands in its buffer, and it will not be written.
    if (this.filling) this.host.pool.abandon();
    this.filling = undefined;
    clearTimeout(this.negotiationTimer);
    clearTimeout(this.closeTimer);
  }
}

function commandName(type: number): string {
  const name = Object.entries(cmd).find(([, value]) => value === type)?.[0];
  return name ?? `command ${type}`;
}

/**
 * An NBD_REPLY_TYPE_BLOCK_STATUS payload: the context id, then (length, flags) descriptors
 * covering a prefix of the request, clipped to it; one descriptor with REQ_ONE.
 */
export function encodeExtents(contextId: number, extents: readonly NbdExtent[], requestBytes: number, reqOne: boolean): Buffer {
  const count = Math.min(extents.length, reqOne ? 1 : nbdExtentsPerReplyMax);
  const payload = Buffer.allocUnsafe(4 + 8 * count);
  payload.writeUInt32BE(contextId, 0);
  let coveredBytes = 0;
  let written = 0;
  for (let i = 0; i < count && coveredBytes < requestBytes; i++) {
    const extent = extents[i]!;
    if (!(
      Number.isSafeInteger(extent.lengthBytes) &&
      extent.lengthBytes > 0 &&
      Number.isInteger(extent.flags) &&
      extent.flags >= 0 &&
      extent.flags < 2 ** 32
    )) {
      throw new TidemarkError('INVARIANT', `metadata context ${contextId} gave extent ${JSON.stringify(extent)}`, 'this is a bug in the export');
    }
    const lengthBytes = Math.min(extent.lengthBytes, requestBytes - coveredBytes);
    payload.writeUInt32BE(lengthBytes, 4 + 8 * written);
    payload.writeUInt32BE(extent.flags, 8 + 8 * written);
    coveredBytes += lengthBytes;
    written += 1;
  }
  if (written === 0) throw new TidemarkError('INVARIANT', `metadata context ${contextId} gave no extents`, 'this is a bug in the export');
  return payload.subarray(0, 4 + 8 * written);
}
