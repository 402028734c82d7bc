// Helpers for the NBD tests: volumes on temp files, real clients run asynchronously (the server
// runs in this process, so a synchronous spawn would deadlock it), and a raw socket client.
import { spawn } from 'node:child_process';
import { truncate, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { FileBackend, Volume } from '../../src-engine/volume';
import { requireTool } from '../helpers/tools';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export async function fileVolume(dir: string, name: string, volumeBytes: number, regionBytes: number, content?: Uint8Array): Promise<Volume> {
  const path = join(dir, name);
  await writeFile(path, content ?? '');
  if (!content) await truncate(path, volumeBytes);
  return new Volume(await FileBackend.open(path), regionBytes);
}

export interface ClientResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a client tool to completion without blocking the event loop; never rejects on exit status. */
export function runClient(name: string, args: readonly string[], timeoutMs = 20_000): Promise<ClientResult> {
  const path = requireTool(name);
  return new Promise((resolve, reject) => {
    const child = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** Runs a client and fails with its output unless it exits 0. */
export async function runClientOk(name: string, args: readonly string[], timeoutMs?: number): Promise<string> {
  const result = await runClient(name, args, timeoutMs);
  if (result.code !== 0) throw new Error(`${name} ${args.join(' ')} exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** The first differing offset of two buffers, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** A byte-level NBD client on a raw socket, for what real clients never send. */
export class RawClient {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: (() => void) | undefined;
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.waiter?.();
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  write(bytes: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Reads exactly `bytes` bytes; rejects if the server closes first or nothing comes within the time. */
  async read(bytes: number, timeoutMs = 5_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered < bytes) {
      if (this.ended) throw new Error(`server closed with ${this.buffered} of ${bytes} bytes sent`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${bytes} bytes (${this.buffered} buffered)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(bytes)];
    this.buffered -= bytes;
    return all.subarray(0, bytes);
  }

  /** Resolves true when the server closes the connection within the time. */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs))]);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// Wire encoders for the raw client.
export const IHAVEOPT = Buffer.from('IHAVEOPT', 'latin1');

export function option(optionType: number, data: Uint8Array = Buffer.alloc(0), lengthBytes = data.length): Buffer {
  const header = Buffer.alloc(16);
  IHAVEOPT.copy(header, 0);
  header.writeUInt32BE(optionType, 8);
  header.writeUInt32BE(lengthBytes, 12);
  return Buffer.concat([header, data]);
}

export function goData(name: string, infoTypes: number[] = []): Buffer {
  const nameBytes = Buffer.from(name);
  const data = Buffer.alloc(4 + nameBytes.length + 2 + 2 * infoTypes.length);
  data.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(data, 4);
  data.writeUInt16BE(infoTypes.length, 4 + nameBytes.length);
  infoTypes.forEach((t, i) => data.writeUInt16BE(t, 6 + nameBytes.length + 2 * i));
  return data;
}

export function request(type: number, handle: number, offsetBytes: number, lengthBytes: number, flags = 0, payload?: Uint8Array): Buffer {
  const header = Buffer.alloc(28);
  header.writeUInt32BE(0x25609513, 0);
  header.writeUInt16BE(flags, 4);
  header.writeUInt16BE(type, 6);
  header.writeUInt32BE(0, 8);
  header.writeUInt32BE(handle, 12);
  header.writeUInt32BE(Math.floor(offsetBytes / 2 ** 32), 16);
  header.writeUInt32BE(offsetBytes >>> 0, 20);
  header.writeUInt32BE(lengthBytes, 24);
  return payload ? Buffer.concat([header, payload]) : header;
}

export interface OptionReply {
  readonly option: number;
  readonly type: number;
  readonly data: Buffer;
}

export async function readOptionReply(client: RawClient): Promise<OptionReply> {
  const header = await client.read(20);
  if (header.readUInt32BE(0) !== 0x0003e889 || header.readUInt32BE(4) !== 0x045565a9) throw new Error('bad option reply magic');
  const data = await client.read(header.readUInt32BE(16));
  return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data };
}

/** Greeting, client flags (fixed newstyle, no zeroes), optionally structured replies, then GO. Returns the transmission flags. */
export async function handshake(client: RawClient, exportName: string, structured: boolean): Promise<number> {
  const greeting = await client.read(18);
  if (greeting.toString('latin1', 0, 16) !== 'NBDMAGICIHAVEOPT') throw new Error('bad greeting');
  client.write(Buffer.from([0, 0, 0, 3]));
  if (structured) {
    client.write(option(8));
    const reply = await readOptionReply(client);
    if (reply.type !== 1) throw new Error(`structured reply refused: ${reply.type}`);
  }
  client.write(option(7, goData(exportName)));
  let flags = -1;
  for (let i = 0; i < 16; i++) {
    const reply = await readOptionReply(client);
    if (reply.type === 3 && reply.data.readUInt16BE(0) === 0) flags = reply.data.readUInt16BE(10);
    if (reply.type === 1) return flags;
    if (reply.type >= 2 ** 31) throw new Error(`GO refused: ${reply.type} ${reply.data.toString()}`);
  }
  throw new Error('no ACK to GO');
}

export interface Reply {
  readonly handle: number;
  readonly error: number;
  /** Structured chunks: their types and payloads; empty for a simple reply. */
  readonly chunks: { type: number; flags: number; payload: Buffer }[];
  readonly data?: Buffer;
}

/** Reads one simple reply (with `readBytes` of data if it is a successful read). */
export async function readSimpleReply(client: RawClient, readBytes = 0): Promise<Reply> {
  const header = await client.read(16);
  if (header.readUInt32BE(0) !== 0x67446698) throw new Error(`expected a simple reply, magic 0x${header.readUInt32BE(0).toString(16)}`);
  const error = header.readUInt32BE(4);
  const data = error === 0 && readBytes > 0 ? await client.read(readBytes) : undefined;
  return { handle: header.readUInt32BE(12), error, chunks: [], ...(data ? { data } : {}) };
}

/** Reads structured chunks until one has the DONE flag (or a simple reply). */
export async function readStructuredReply(client: RawClient): Promise<Reply> {
  const chunks: { type: number; flags: number; payload: Buffer }[] = [];
  for (let i = 0; i < 64; i++) {
    const magic = (await client.read(4)).readUInt32BE(0);
    if (magic === 0x67446698) {
      const rest = await client.read(12);
      return { handle: rest.readUInt32BE(8), error: rest.readUInt32BE(0), chunks };
    }
    if (magic !== 0x668e33ef) throw new Error(`bad reply magic 0x${magic.toString(16)}`);
    const rest = await client.read(16);
    const flags = rest.readUInt16BE(0);
    const type = rest.readUInt16BE(2);
    const handle = rest.readUInt32BE(8);
    const payload = await client.read(rest.readUInt32BE(12));
    chunks.push({ type, flags, payload });
    if (flags & 1) {
      const errorChunk = chunks.find((c) => c.type >= 2 ** 15);
      return { handle, error: errorChunk ? errorChunk.payload.readUInt32BE(0) : 0, chunks };
    }
  }
  throw new Error('reply without a DONE chunk');
}
