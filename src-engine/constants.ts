// Every limit Tidemark enforces, in one place, with the relations between them asserted at load.

import { assert, isPowerOfTwo } from './assert';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/** Region size bounds (seed 000 "regions"): a power of two from 4 KiB to 64 MiB. */
export const regionBytesMin = 4 * KiB;
export const regionBytesMax = 64 * MiB;
export const regionBytesDefault = 1 * MiB;

/** Largest volume Tidemark addresses: byte offsets must stay safe integers. */
export const volumeBytesMax = 2 ** 52;

/**
 * Most regions a volume may have, so most bits a Bitset holds. Bit scans use 32-bit integer
 * arithmetic (`index >>> 5` for the word, `word << 5` back to an index), which is exact only
 * while every index stays below 2^31. Larger volumes use larger regions.
 */
export const regionCountMax = 2 ** 31 - 1;

/** Largest single read or write the volume layer accepts in one call. */
export const ioBytesMax = 64 * MiB;

/** Persistent bitmap geometry: one slot is one 4 KiB page (header + payload). */
export const bitmapSlotBytes = 4 * KiB;
export const bitmapSlotHeaderBytes = 32;
export const bitmapBitsPerSegment = (bitmapSlotBytes - bitmapSlotHeaderBytes) * 8;
export const bitmapSuperblockBytes = 4 * KiB;

/** MOOS prediction window (seed 003): a write to region E marks E..E+N. */
export const moosPredictDefault = 16;
export const moosPredictMax = 4096;
/**
 * How far a write stream's prediction window may grow (bytes of regions; MoosPredictor's
 * `streamWindowMaxRegions`): a sequential writer destages once per this much, and a crash
 * resends at most this much more per stream followed (`moosStreamsMax`).
 */
export const moosStreamWindowBytes = 32 * MiB;

/** Signature hashing: bytes a worker reads per system call, and per batch of regions. */
export const signatureChunkBytes = 4 * MiB;
export const signatureBatchBytesMax = 64 * MiB;
export const signatureWorkersMax = 64;

/** Zero-scan (realization by content) reads this much at a time. */
export const zeroScanChunkBytes = 4 * MiB;

/** Agent RPC (docs/agent-rpc.md): protocol version, frame size, window, credits, keepalive. */
export const rpcProtocolVersion = 1;
export const rpcFrameBytesMax = 80 * MiB;
export const rpcInFlightMax = 64;
export const rpcCreditChunks = 8;
export const rpcKeepaliveMs = 15_000;
/** An agent streaming regions reads this many bytes ahead of the consumer (at least one region). */
export const agentReadAheadBytes = 4 * MiB;
export const agentReadAheadRegionsMax = 4;
/** A peer that has not said hello within this time is not an agent (or is stuck): the connection closes. */
export const rpcHandshakeTimeoutMs = 20_000;

/** Bitmap contents go over the RPC in chunks of this many bytes (a 2^31-region map is 256 MiB). */
export const rpcBitmapChunkBytes = 1 * MiB;

/**
 * Per volume: snapshots and named tracking bitmaps (change maps). Every host write runs the
 * copy-on-write hook of each snapshot and sets a bit in each map, so both are bounded.
 */
export const snapshotsPerVolumeMax = 64;
export const changeMapsPerVolumeMax = 64;
export const snapshotLabelCharsMax = 256;

/**
 * A consistency group whose primaries are on several hosts freezes in two phases
 * (docs/replication.md "Consistency groups"): each host's agent holds its members' writes
 * (snapshotGroupPrepare) until the orchestrator commits or aborts. Writes on those primaries
 * wait from prepare to commit — about two round trips — and a hold whose commit has not come
 * within its lease is released as an abort, so a lost orchestrator or link never blocks an
 * application for longer than this. 10 s covers a slow WAN round trip and a cold SSH
 * reconnect; the most a caller may ask bounds the write stall it can cause.
 */
export const groupHoldLeaseMsDefault = 10_000;
export const groupHoldLeaseMsMax = 60_000;
/** Holds that ended (committed, aborted, expired) an agent remembers, so a late commit is told why. */
export const groupHoldsEndedRemembered = 256;

/** SSH hosts: a dropped connection is re-established on the next operation, retrying with capped exponential backoff. */
export const sshReconnectAttempts = 5;
export const sshReconnectDelayMsInitial = 250;
export const sshReconnectDelayMsMax = 8_000;

assert(isPowerOfTwo(regionBytesMin) && isPowerOfTwo(regionBytesMax), 'region bounds are powers of two');
assert(regionBytesMin <= regionBytesDefault && regionBytesDefault <= regionBytesMax, 'default region size within bounds');
assert(sshReconnectDelayMsInitial <= sshReconnectDelayMsMax, 'backoff starts below its cap');
assert(groupHoldLeaseMsDefault > 0 && groupHoldLeaseMsDefault <= groupHoldLeaseMsMax, 'the default lease is one a caller may ask for');
assert(ioBytesMax >= regionBytesMax, 'one I/O can carry a whole region');
assert(bitmapBitsPerSegment % 32 === 0, 'a bitmap segment holds whole 32-bit words');
assert(signatureChunkBytes <= signatureBatchBytesMax, 'a chunk fits in a batch');
assert(Number.isSafeInteger(volumeBytesMax + regionBytesMax), 'offsets stay safe integers');
assert(rpcFrameBytesMax >= regionBytesMax + MiB, 'one RPC frame carries a whole region and its header');
assert(rpcBitmapChunkBytes % 4 === 0 && rpcBitmapChunkBytes + MiB <= rpcFrameBytesMax, 'a bitmap chunk is whole words and fits a frame');
assert(rpcInFlightMax >= 1 && rpcCreditChunks >= 1, 'the RPC window and credit allow progress');
assert(regionCountMax < 2 ** 31, 'every bit index is a positive int32, so `(word << 5)` never overflows');
assert(volumeBytesMax / regionBytesMax <= regionCountMax, 'every volume fits the region cap with the largest region size');
