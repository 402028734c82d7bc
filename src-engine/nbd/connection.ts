// One NBD client connection: the handshake, option haggling and the transmission phase, parsed
// from one ByteQueue. Requests run concurrently and may be answered out of order; replies are
// written whole (header and payload in one corked batch), so they never interleave.

import type { Socket } from 'node:net';
import { assert } from '../assert';
import { TidemarkError, errnoCode } from '../errors';
import { type BufferPool } from './buffer-pool';
import { ByteQueue } from './byte-queue';
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
  nbdDiscardBytesMax,
  nbdErr,
  nbdExtentsPerReplyMax,
  nbdInFlightBytesMax,
  nbdInFlightRequestsMax,
  nbdMagicHi,
  nbdMagicLo,
  nbdNegotiationMs,
  nbdOptionBytesMax,
  nbdOptionsPerConnectionMax,
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

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly exports: readonly NbdExport[];
  readonly maxRequestBytes: number;
  readonly pool: BufferPool;
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
  private readonly queue = new ByteQueue();
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
  /** A WRITE whose payload is being copied out of the socket chunks into a pooled buffer. */
  private filling: { request: Request; pooled: Buffer; filledBytes: number } | undefined;
  private paused = false;
  private corked = false;
  private negotiationTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private readonly closed: Promise<void>;

  constructor(
    readonly connectionId: number,
    readonly remote: string,
    private readonly socket: Socket,
    private readonly host: ConnectionHost,
  ) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.pump());
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

  /** Parses and dispatches whatever complete frames are buffered, then sets the read flow. */
  private pump(): void {
    // Each pass consumes a frame or returns; frames are at least 4 bytes, so the loop is bounded by the queue.
    while (this.phase !== 'closing' && this.phase !== 'closed' && !this.socket.writableNeedDrain) {
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
    const stop = this.phase === 'closing' || this.phase === 'closed' || this.socket.writableNeedDrain || this.blocked;
    if (stop && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!stop && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
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
      offsetBytes: header.readUInt32BE(16) * 2 ** 32 + header.readUInt32BE(20),
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
    if (this.queue.firstChunkBytes >= requestHeaderBytes + request.bytes) {
      // The whole request lies in one socket chunk (small writes): the payload is a view of it.
      this.queue.skip(requestHeaderBytes);
      this.dispatch(request, this.queue.take(request.bytes), request.bytes, undefined);
      return true;
    }
    // Larger payloads are copied out of the socket chunks as they arrive, into a pooled buffer.
    this.queue.skip(requestHeaderBytes);
    this.filling = { request, pooled: this.host.pool.acquire(request.bytes), filledBytes: 0 };
    return true;
  }

  private stepFill(): boolean {
    const filling = this.filling!;
    const n = Math.min(filling.request.bytes - filling.filledBytes, this.queue.length);
    this.queue.takeInto(filling.pooled, filling.filledBytes, n);
    filling.filledBytes += n;
    if (filling.filledBytes < filling.request.bytes) return false;
    this.filling = undefined;
    this.dispatch(filling.request, filling.pooled.subarray(0, filling.request.bytes), filling.request.bytes, filling.pooled);
    return true;
  }

  /** Runs a request; `pooled` (the buffer under `data`) goes back to the pool once it has finished. */
  private dispatch(request: Request, data: Buffer | undefined, costBytes: number, pooled: Buffer | undefined): void {
    this.inFlightRequests += 1;
    this.inFlightBytes += costBytes;
    void this.execute(request, data).then(
      () => this.requestDone(costBytes, pooled),
      (error: unknown) => {
        // execute answers every failure itself; reaching here is a bug, reported, not thrown.
        this.host.reportError(error instanceof Error ? error : new Error(String(error)));
        this.requestDone(costBytes, pooled);
      },
    );
  }

  private requestDone(costBytes: number, pooled: Buffer | undefined): void {
    // The export is done with the payload once its write settled (NbdExport.write's contract).
    if (pooled) this.host.pool.release(pooled);
    this.inFlightRequests -= 1;
    this.inFlightBytes -= costBytes;
    assert(this.inFlightRequests >= 0 && this.inFlightBytes >= 0, 'in-flight counts never negative');
    if (this.phase === 'closing') {
      if (this.inFlightRequests === 0) this.endSocket();
      return;
    }
    this.pump();
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

  /** Runs one request and answers it; resolves (never rejects) once the reply is queued. */
  private async execute(request: Request, data: Buffer | undefined): Promise<void> {
    try {
      await this.perform(request, data);
    } catch (error) {
      const errno = nbdErrnoOf(error);
      if (!(error instanceof RequestError)) this.host.reportError(error instanceof Error ? error : new Error(String(error)));
      this.replyError(request, errno, error instanceof RequestError ? error.message : `${commandName(request.type)} failed`);
    }
  }

  private async perform(request: Request, data: Buffer | undefined): Promise<void> {
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
   * Queues bytes on the socket. Writes made in one turn of the event loop go out together
   * (cork now, uncork on the next tick: one writev), and the pieces of one reply are always
   * queued in the same turn, so replies never interleave.
   */
  private send(bytes: Uint8Array): void {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      setImmediate(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    socket.write(bytes);
  }

  // --- ending -------------------------------------------------------------------------------

  /** DISC or shutdown: read nothing more, answer what is in flight, then end. */
  private beginClosing(): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    this.phase = 'closing';
    this.queue.clear();
    this.discard = undefined;
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
