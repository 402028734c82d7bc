// Option haggling (fixed newstyle): parsing option payloads and building replies. Pure
// functions over buffers; the connection decides what to send and when.

import { baseAllocation, info, nbdStringBytesMax, tflag } from './protocol';
import type { NbdExport, NbdExtent } from './export';

/** A metadata context an export offers, with the id it has on every connection. */
export interface MetaContext {
  readonly id: number;
  readonly name: string;
  extents(offsetBytes: number, bytes: number): Promise<NbdExtent[]>;
}

/** base:allocation is id 1; the export's own contexts follow in their order. */
export function metaContextsOf(nbdExport: NbdExport): MetaContext[] {
  const contexts: MetaContext[] = [{ id: 1, name: baseAllocation, extents: (offsetBytes, bytes) => nbdExport.allocation(offsetBytes, bytes) }];
  for (const source of nbdExport.metaContexts ?? []) {
    contexts.push({ id: contexts.length + 1, name: source.name, extents: (offsetBytes, bytes) => source.extents(offsetBytes, bytes) });
  }
  return contexts;
}

/** The transmission flags of an export on a connection (SEND_DF only with structured replies). */
export function transmissionFlags(nbdExport: NbdExport, structured: boolean): number {
  let flags = tflag.hasFlags | tflag.sendFlush | tflag.sendCache;
  // Every connection writes through the same Volume and flushes it with fdatasync of the same
  // file: a FLUSH or FUA on one connection covers writes completed on all of them.
  flags |= tflag.canMultiConn;
  if (nbdExport.readOnly) flags |= tflag.readOnly;
  else flags |= tflag.sendFua | tflag.sendTrim | tflag.sendWriteZeroes;
  if (structured) flags |= tflag.sendDf;
  return flags;
}

export interface InfoRequest {
  readonly name: string;
  readonly infoTypes: readonly number[];
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly tooBig: boolean; readonly reason: string };

function invalid(reason: string, tooBig = false): { ok: false; tooBig: boolean; reason: string } {
  return { ok: false, tooBig, reason };
}

/** NBD_OPT_INFO / NBD_OPT_GO: u32 name length, name, u16 count, count × u16 info type. */
export function parseInfoRequest(data: Buffer): Parsed<InfoRequest> {
  if (data.length < 6) return invalid(`INFO/GO payload of ${data.length} bytes is shorter than 6`);
  const nameBytes = data.readUInt32BE(0);
  if (nameBytes > nbdStringBytesMax) return invalid(`export name of ${nameBytes} bytes is longer than ${nbdStringBytesMax}`, true);
  if (4 + nameBytes + 2 > data.length) return invalid(`export name of ${nameBytes} bytes overruns the ${data.length}-byte payload`);
  const name = data.toString('utf8', 4, 4 + nameBytes);
  const count = data.readUInt16BE(4 + nameBytes);
  if (4 + nameBytes + 2 + 2 * count !== data.length) return invalid(`${count} info requests do not fill the ${data.length}-byte payload`);
  const infoTypes: number[] = [];
  for (let i = 0; i < count; i++) infoTypes.push(data.readUInt16BE(4 + nameBytes + 2 + 2 * i));
  return { ok: true, value: { name, infoTypes } };
}

export interface MetaContextRequest {
  readonly exportName: string;
  readonly queries: readonly string[];
}

/** NBD_OPT_{LIST,SET}_META_CONTEXT: u32 name length, name, u32 count, count × (u32 length, query). */
export function parseMetaContextRequest(data: Buffer): Parsed<MetaContextRequest> {
  if (data.length < 8) return invalid(`meta context payload of ${data.length} bytes is shorter than 8`);
  const nameBytes = data.readUInt32BE(0);
  if (nameBytes > nbdStringBytesMax) return invalid(`export name of ${nameBytes} bytes is longer than ${nbdStringBytesMax}`, true);
  if (4 + nameBytes + 4 > data.length) return invalid(`export name of ${nameBytes} bytes overruns the ${data.length}-byte payload`);
  const exportName = data.toString('utf8', 4, 4 + nameBytes);
  let at = 4 + nameBytes;
  const count = data.readUInt32BE(at);
  at += 4;
  // Each query takes at least its 4-byte length: this bounds the loop by the payload.
  if (count > (data.length - at) / 4) return invalid(`${count} queries cannot fit in the ${data.length}-byte payload`);
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 4 > data.length) return invalid(`query ${i} overruns the payload`);
    const queryBytes = data.readUInt32BE(at);
    if (queryBytes > nbdStringBytesMax) return invalid(`query of ${queryBytes} bytes is longer than ${nbdStringBytesMax}`, true);
    if (at + 4 + queryBytes > data.length) return invalid(`query ${i} of ${queryBytes} bytes overruns the payload`);
    const query = data.toString('utf8', at + 4, at + 4 + queryBytes);
    // A query starts with a namespace ('base:', 'qemu:'): without a colon it cannot match anything.
    if (!query.includes(':')) return invalid(`query ${JSON.stringify(query)} has no namespace`);
    queries.push(query);
    at += 4 + queryBytes;
  }
  if (at !== data.length) return invalid(`${data.length - at} bytes follow the last query`);
  return { ok: true, value: { exportName, queries } };
}

/**
 * Contexts a LIST query names: no query lists all; a query ending in ':' ('qemu:',
 * 'qemu:dirty-bitmap:') lists every context under that prefix; otherwise the exact name.
 */
export function listMatches(contexts: readonly MetaContext[], queries: readonly string[]): MetaContext[] {
  if (queries.length === 0) return [...contexts];
  return contexts.filter((c) => queries.some((q) => (q.endsWith(':') ? c.name.startsWith(q) : c.name === q)));
}

/** Contexts a SET selects: exact names only, each once. */
export function setMatches(contexts: readonly MetaContext[], queries: readonly string[]): MetaContext[] {
  return contexts.filter((c) => queries.includes(c.name));
}

export function infoExport(nbdExport: NbdExport, flags: number): Buffer {
  const data = Buffer.allocUnsafe(12);
  data.writeUInt16BE(info.export, 0);
  writeUInt64BE(data, nbdExport.sizeBytes, 2);
  data.writeUInt16BE(flags, 10);
  return data;
}

export function infoString(type: number, text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const data = Buffer.allocUnsafe(2 + bytes.length);
  data.writeUInt16BE(type, 0);
  bytes.copy(data, 2);
  return data;
}

export function infoBlockSize(minBytes: number, preferredBytes: number, maxBytes: number): Buffer {
  const data = Buffer.allocUnsafe(14);
  data.writeUInt16BE(info.blockSize, 0);
  data.writeUInt32BE(minBytes, 2);
  data.writeUInt32BE(preferredBytes, 6);
  data.writeUInt32BE(maxBytes, 10);
  return data;
}

/** NBD_REP_SERVER: u32 name length, name, then the description for people. */
export function serverEntry(nbdExport: NbdExport): Buffer {
  const name = Buffer.from(nbdExport.name, 'utf8');
  const description = Buffer.from(nbdExport.description ?? '', 'utf8');
  const data = Buffer.allocUnsafe(4 + name.length + description.length);
  data.writeUInt32BE(name.length, 0);
  name.copy(data, 4);
  description.copy(data, 4 + name.length);
  return data;
}

/** NBD_REP_META_CONTEXT: u32 id, name. */
export function metaContextEntry(id: number, name: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  const data = Buffer.allocUnsafe(4 + bytes.length);
  data.writeUInt32BE(id, 0);
  bytes.copy(data, 4);
  return data;
}

/** Writes a non-negative safe integer as a big-endian u64. */
export function writeUInt64BE(target: Buffer, value: number, at: number): void {
  target.writeUInt32BE(Math.floor(value / 2 ** 32), at);
  target.writeUInt32BE(value >>> 0, at + 4);
}
