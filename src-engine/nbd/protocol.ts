// NBD wire constants (doc/proto.md of NetworkBlockDevice/nbd, fixed newstyle) and the limits
// this server enforces, with their relations asserted at load.

import { assert, isPowerOfTwo } from '../assert';
import { KiB, MiB, ioBytesMax } from '../constants';

// Magics. The 64-bit ones are split into two 32-bit halves: DataView/Buffer readers stay in
// plain numbers (no BigInt on the hot path).
export const nbdMagicHi = 0x4e42444d; // 'NBDM'
export const nbdMagicLo = 0x41474943; // 'AGIC'
export const optMagicHi = 0x49484156; // 'IHAV'
export const optMagicLo = 0x454f5054; // 'EOPT'
export const repMagicHi = 0x0003e889;
export const repMagicLo = 0x045565a9;
export const requestMagic = 0x25609513;
export const simpleReplyMagic = 0x67446698;
export const structuredReplyMagic = 0x668e33ef;

/** Handshake flags (server) and client flags. */
export const flagFixedNewstyle = 1 << 0;
export const flagNoZeroes = 1 << 1;
export const clientFlagFixedNewstyle = 1 << 0;
export const clientFlagNoZeroes = 1 << 1;

/** Options. */
export const opt = {
  exportName: 1,
  abort: 2,
  list: 3,
  startTls: 5,
  info: 6,
  go: 7,
  structuredReply: 8,
  listMetaContext: 9,
  setMetaContext: 10,
  extendedHeaders: 11,
} as const;

/** Option reply types; errors have bit 31 set. */
export const rep = {
  ack: 1,
  server: 2,
  info: 3,
  metaContext: 4,
  errUnsup: 2 ** 31 + 1,
  errPolicy: 2 ** 31 + 2,
  errInvalid: 2 ** 31 + 3,
  errPlatform: 2 ** 31 + 4,
  errTlsReqd: 2 ** 31 + 5,
  errUnknown: 2 ** 31 + 6,
  errShutdown: 2 ** 31 + 7,
  errBlockSizeReqd: 2 ** 31 + 8,
  errTooBig: 2 ** 31 + 9,
} as const;

/** NBD_INFO_* types in NBD_REP_INFO replies to NBD_OPT_INFO / NBD_OPT_GO. */
export const info = { export: 0, name: 1, description: 2, blockSize: 3 } as const;

/** Transmission flags. */
export const tflag = {
  hasFlags: 1 << 0,
  readOnly: 1 << 1,
  sendFlush: 1 << 2,
  sendFua: 1 << 3,
  rotational: 1 << 4,
  sendTrim: 1 << 5,
  sendWriteZeroes: 1 << 6,
  sendDf: 1 << 7,
  canMultiConn: 1 << 8,
  sendResize: 1 << 9,
  sendCache: 1 << 10,
  sendFastZero: 1 << 11,
} as const;

/** Commands. */
export const cmd = { read: 0, write: 1, disc: 2, flush: 3, trim: 4, cache: 5, writeZeroes: 6, blockStatus: 7 } as const;

/** Command flags. */
export const cmdFlag = { fua: 1 << 0, noHole: 1 << 1, df: 1 << 2, reqOne: 1 << 3, fastZero: 1 << 4 } as const;

/** Structured reply chunk types and flags. */
export const replyFlagDone = 1 << 0;
export const replyType = { none: 0, offsetData: 1, offsetHole: 2, blockStatus: 5, error: 2 ** 15 + 1, errorOffset: 2 ** 15 + 2 } as const;

/** Errors on the wire (NBD_E*: fixed values, not the host's errno numbers). */
export const nbdErr = { perm: 1, io: 5, nomem: 12, inval: 22, nospc: 28, overflow: 75, notsup: 95, shutdown: 108 } as const;
export type NbdErrno = (typeof nbdErr)[keyof typeof nbdErr];

/** base:allocation extent flags. */
export const stateHole = 1 << 0;
export const stateZero = 1 << 1;
/** qemu:dirty-bitmap:* extent flag. */
export const stateDirty = 1 << 0;

export const baseAllocation = 'base:allocation';

// Sizes of fixed frames.
export const greetingBytes = 18;
export const optionHeaderBytes = 16;
export const requestHeaderBytes = 28;
export const simpleReplyHeaderBytes = 16;
export const structuredReplyHeaderBytes = 20;
export const exportNameZeroesBytes = 124;

// Limits.
/** Default and largest payload of one READ or WRITE (NBD_INFO_BLOCK_SIZE maximum). */
export const nbdRequestBytesDefault = 32 * MiB;
export const nbdRequestBytesMax = 256 * MiB;
export const nbdRequestBytesMin = 4 * KiB;
/**
 * A WRITE longer than the bound is read and thrown away, then refused with EINVAL, while its
 * payload stays under this cap; above it the connection is closed (the only way to resync).
 */
export const nbdDiscardBytesMax = 64 * MiB;
/** Longest option payload accepted in negotiation (names are at most 4 KiB per the spec). */
export const nbdOptionBytesMax = 64 * KiB;
/** Options one client may send before choosing an export (a loop bound; a client looping is closed). */
export const nbdOptionsPerConnectionMax = 1024;
/** Strings in replies and requests (export names, context names): the spec's hard limit. */
export const nbdStringBytesMax = 4096;
/** Requests processed at once per connection; above it the server stops reading the socket. */
export const nbdInFlightRequestsMax = 64;
/** Payload bytes (writes received, reads being read) held per connection before reading stops. */
export const nbdInFlightBytesMax = 128 * MiB;
/** Descriptors in one BLOCK_STATUS chunk; the client asks again for the rest. */
export const nbdExtentsPerReplyMax = 64 * 1024;
/** A client that has not chosen an export within this time is closed. */
export const nbdNegotiationMs = 30_000;
/** close(): in-flight requests get this long to finish before their connections are destroyed. */
export const nbdCloseGraceMs = 5_000;
/** Write payloads are received into pooled buffers: this many bytes stay pooled per server. */
export const nbdPooledBytesMax = 64 * MiB;
/** Smallest pooled buffer. */
export const nbdPoolBufferBytesMin = 4 * KiB;
/**
 * Socket reads (ReadArena): each connection has two staging buffers of this size for headers
 * and small frames; one read into staging takes at most nbdReadMaxBytes and is given at least
 * nbdReadMinBytes; a WRITE payload with at least nbdDirectReadBytesMin still to come is read
 * straight into its own buffer.
 */
export const nbdReadStagingBytes = 256 * KiB;
export const nbdReadMaxBytes = 64 * KiB;
export const nbdReadMinBytes = 16 * KiB;
export const nbdDirectReadBytesMin = 32 * KiB;
/** Reply pieces up to this size queued in one turn are joined into one buffer before the socket write. */
export const nbdJoinedReplyPartBytesMax = 4 * KiB;
/** Size of the shared zero buffer WRITE_ZEROES writes from. */
export const nbdZeroChunkBytes = 4 * MiB;

assert(greetingBytes === 8 + 8 + 2, 'greeting: NBDMAGIC, IHAVEOPT, handshake flags');
assert(nbdRequestBytesMin <= nbdRequestBytesDefault && nbdRequestBytesDefault <= nbdRequestBytesMax, 'default request bound within its limits');
assert(nbdRequestBytesMax < 2 ** 32, 'a request length is a 32-bit field');
assert(nbdRequestBytesMax <= 2 ** 30, 'pooled buffer sizes are computed with 32-bit shifts');
assert(nbdInFlightBytesMax >= 2 * nbdRequestBytesDefault, 'two requests of the default bound overlap (a larger one runs alone)');
assert(nbdDiscardBytesMax >= nbdRequestBytesDefault, 'a slightly oversized write is discarded, not a reason to disconnect');
assert(nbdOptionBytesMax >= 4 + nbdStringBytesMax + 2 + 2 * 16, 'an INFO/GO with the longest name fits');
assert(nbdReadMinBytes <= nbdReadMaxBytes && 2 * nbdReadMaxBytes <= nbdReadStagingBytes, 'staging holds a partial frame and a read');
assert(nbdReadStagingBytes - nbdReadMinBytes >= optionHeaderBytes + nbdOptionBytesMax, 'a partial frame (at most an option) compacts with room left to read');
assert(isPowerOfTwo(nbdZeroChunkBytes) && nbdZeroChunkBytes <= ioBytesMax, 'zero chunks are single volume I/Os');
