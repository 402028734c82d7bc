// Wire byte counters (sync's `wireBytes`, the rsync benchmark): RpcPeer counts every byte it
// hands to and takes from its stream, exactly the frames a call moves; RpcAgent reports its
// connection's count, so a region written or read shows up as its payload plus framing.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalAgent, RpcAgent, serveAgent } from '../../src-engine/agent';
import { encodeFrame } from '../../src-engine/transport/frame';
import { RpcPeer, type RpcHandler } from '../../src-engine/transport/rpc';
import { until } from '../helpers/engine';
import { tempDir } from '../helpers/tmp';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A client peer and the server peer it is connected to, over a Unix socket, no keepalives. */
async function connectedPeers(handler: RpcHandler): Promise<{ client: RpcPeer; server: RpcPeer }> {
  const path = join(await tempDir(), 'rpc.sock');
  let serverPeer: RpcPeer | undefined;
  const server: Server = createServer((socket) => {
    serverPeer = new RpcPeer(socket, { role: 'server', handler, peerInfo: { agent: 'test' }, keepaliveMs: 0 });
    void serverPeer.handshake().catch(() => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, () => resolve()));
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection(path, () => resolve(s));
    s.once('error', reject);
  });
  const client = new RpcPeer(socket, { role: 'client', peerInfo: { client: 'test' }, keepaliveMs: 0 });
  cleanups.push(() => {
    client.close();
    serverPeer?.close();
    server.close();
  });
  await client.handshake();
  await until(() => serverPeer !== undefined && serverPeer.bytesRead === client.bytesWritten, 5000, 'the server to read the hello');
  return { client, server: serverPeer! };
}

describe('RPC wire bytes', () => {
  it('counts exactly the frames of a call, both ways, on both sides', async () => {
    const replyPayload = new Uint8Array(3000).fill(7);
    const { client, server } = await connectedPeers(async () => ({ json: { ok: true }, payload: replyPayload }));
    const hello = { client: client.bytesWritten, server: server.bytesWritten };
    expect(hello.client).toBeGreaterThan(0);
    expect(client.wireBytes()).toBe(client.bytesRead + client.bytesWritten);

    const payload = new Uint8Array(5000).fill(1);
    const before = { written: client.bytesWritten, read: client.bytesRead };
    await client.call('echo', { n: 7 }, payload);
    const request = encodeFrame({ type: 'request', id: 1, json: { method: 'echo', params: { n: 7 }, streaming: false }, payload });
    const response = encodeFrame({ type: 'response', id: 1, json: { ok: true }, payload: replyPayload });
    expect(client.bytesWritten - before.written).toBe(request.length);
    expect(client.bytesRead - before.read).toBe(response.length);
    // The server saw the same bytes the other way round.
    expect(server.bytesRead).toBe(client.bytesWritten);
    expect(server.bytesWritten).toBe(client.bytesRead);
    expect(server.wireBytes()).toBe(client.wireBytes());
  });

  it('keeps its count after the connection closes', async () => {
    const { client } = await connectedPeers(async () => ({ json: {}, payload: new Uint8Array(0) }));
    await client.call('x');
    const counted = client.wireBytes();
    client.close();
    expect(client.closed).toBe(true);
    expect(client.wireBytes()).toBe(counted);
  });

  it('RpcAgent: a region written or read costs its bytes plus a little framing', async () => {
    const dir = await tempDir();
    const local = new LocalAgent(join(dir, 'home'));
    cleanups.push(() => local.dispose());
    const { client, server } = await connectedPeers(serveAgent(local));
    const agent = new RpcAgent(client);
    const regionBytes = 64 * 1024;
    const path = join(dir, 'vol.img');
    await agent.volumeCreate(path, 8 * regionBytes, regionBytes);

    const beforeWrite = agent.wireBytes();
    await agent.writeRegion(path, 3, new Uint8Array(regionBytes).fill(9));
    const writeBytes = agent.wireBytes() - beforeWrite;
    expect(writeBytes).toBeGreaterThanOrEqual(regionBytes);
    expect(writeBytes).toBeLessThan(regionBytes + 1024);

    const beforeRead = agent.wireBytes();
    let received = 0;
    for await (const region of agent.readRegions(path, 0, 4)) received += region.data.length;
    expect(received).toBe(4 * regionBytes);
    const readBytes = agent.wireBytes() - beforeRead;
    expect(readBytes).toBeGreaterThanOrEqual(4 * regionBytes);
    expect(readBytes).toBeLessThan(4 * regionBytes + 4 * 1024);
    // Both ends agree once the last credit frame has arrived.
    await until(() => server.wireBytes() === agent.wireBytes(), 5000, 'both ends to agree');
  });
});
