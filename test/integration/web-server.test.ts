// Web mode over real HTTP and WebSocket: the token, Host and Origin checks, rate limiting of
// failed tokens, malformed frames, and the API itself (requests and pushed events).
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Engine } from '../../src-engine';
import { ConsoleService } from '../../src-main/console-service';
import { startWebServer, webLimits, type WebServer } from '../../src-main/web-server';
import { engineWithLab } from '../helpers/engine';
import { tempDir } from '../helpers/tmp';

let server: WebServer | undefined;
let engine: Engine | undefined;

afterEach(async () => {
  await server?.close();
  await engine?.dispose();
  server = undefined;
  engine = undefined;
});

async function start() {
  ({ engine } = await engineWithLab());
  const staticDir = join(await tempDir(), 'renderer');
  await mkdir(join(staticDir, 'assets'), { recursive: true });
  await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>t</title>');
  await writeFile(join(staticDir, 'assets', 'app.js'), 'console.log(1)');
  server = await startWebServer({ service: new ConsoleService(engine), staticDir });
  return server;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function connect(s: WebServer, options: { token?: string; origin?: string } = {}): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/api?token=${options.token ?? s.token}`, { origin: options.origin ?? `http://127.0.0.1:${s.port}` });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function call(
  ws: WebSocket,
  id: number,
  verb: string,
  args: unknown,
): Promise<{ id: number; ok: boolean; result?: unknown; error?: { code: string; message: string } }> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { id?: number };
      if (frame.id === id) {
        ws.off('message', onMessage);
        resolve(frame as never);
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id, verb, args }));
  });
}

describe('web mode', () => {
  it('listens on 127.0.0.1 only and prints a URL with the token', async () => {
    const s = await start();
    expect(s.url).toBe(`http://127.0.0.1:${s.port}/?token=${s.token}`);
    expect(s.token.length).toBeGreaterThanOrEqual(32);
  });

  it('serves the page with the token and a strict CSP; refuses it without', async () => {
    const s = await start();
    const host = { host: `127.0.0.1:${s.port}` };
    const page = await get(s.port, `/?token=${s.token}`, host);
    expect(page.status).toBe(200);
    expect(String(page.headers['content-security-policy'])).toMatch(/default-src 'self'.*script-src 'self'/);
    expect((await get(s.port, '/', host)).status).toBe(401);
    expect((await get(s.port, '/?token=wrong', host)).status).toBe(401);
    expect((await get(s.port, '/assets/app.js', host)).status).toBe(200); // code, not data
    expect((await get(s.port, '/assets/../../etc/passwd', host)).status).toBe(404);
    expect((await get(s.port, '/assets%2f..%2f..%2f..%2fetc%2fpasswd', host)).status).toBe(404); // escapes the static dir: refused
    expect((await get(s.port, '/%69ndex.html', host)).status).toBe(401); // an encoded page name still needs the token
    expect((await get(s.port, '/assets%2f..%2findex.html', host)).status).toBe(401);
  });

  it('refuses a foreign Host header (DNS rebinding), even with the token', async () => {
    const s = await start();
    const res = await get(s.port, `/?token=${s.token}`, { host: `evil.example:${s.port}` });
    expect(res.status).toBe(421);
    expect(res.body).toMatch(/unexpected Host/);
  });

  it('rate-limits failed token attempts per client', async () => {
    const s = await start();
    const host = { host: `127.0.0.1:${s.port}` };
    for (let i = 0; i < webLimits.failuresPerWindow; i++) expect((await get(s.port, '/?token=guess', host)).status).toBe(401);
    expect((await get(s.port, '/?token=guess', host)).status).toBe(429); // further guesses wait out the window
    expect((await get(s.port, `/?token=${s.token}`, host)).status).toBe(200); // the owner is never locked out
  });

  it('refuses API connections without the token or from a foreign Origin', async () => {
    const s = await start();
    await expect(connect(s, { token: 'nope' })).rejects.toThrow(/refused with 401/);
    await expect(connect(s, { origin: 'https://evil.example' })).rejects.toThrow(/refused with 403/);
    await expect(connect(s, { origin: 'null' })).rejects.toThrow(/refused with 403/);
  });

  it('answers requests, reports engine errors with hints, and pushes events', async () => {
    const s = await start();
    const ws = await connect(s);
    const overview = await call(ws, 1, 'overview', {});
    expect(overview).toMatchObject({ id: 1, ok: true, result: { pairs: [{ name: 'lab' }] } });
    const missing = await call(ws, 2, 'bitmap', { pair: 'nope', which: 'oos' });
    expect(missing).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    const bad = await call(ws, 3, 'bitmap', { pair: 'lab', which: 'all' });
    expect(bad).toMatchObject({ ok: false, error: { code: 'BAD_ARGUMENTS' } });
    const pushed = new Promise<{ push: string; data: { kind: string } }>((resolve) =>
      ws.on('message', (d: Buffer) => JSON.parse(d.toString()).push && resolve(JSON.parse(d.toString()))),
    );
    await call(ws, 4, 'generatorStart', { pattern: 'random', writesPerSecond: 100, writeBytes: 4096, seed: 1 });
    expect((await pushed).data.kind).toBe('generator.started');
    await call(ws, 5, 'generatorStop', {});
    const bitmap = await call(ws, 6, 'bitmap', { pair: 'lab', which: 'oos' });
    expect(bitmap.result).toMatchObject({ regionCount: 64, regionBytes: 2 ** 20 });
    ws.close();
  });

  it('closes a connection that sends a malformed frame, and keeps serving others', async () => {
    const s = await start();
    const ws = await connect(s);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send('{"id": "one", "verb": 5');
    expect(await closed).toBe(1008);
    const other = await connect(s);
    expect(await call(other, 1, 'events', { afterId: 0 })).toMatchObject({ ok: true });
    other.close();
  });

  it('refuses oversized frames', async () => {
    const s = await start();
    const ws = await connect(s);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(JSON.stringify({ id: 1, verb: 'overview', args: { pad: 'x'.repeat(webLimits.wsFrameBytesMax + 10) } }));
    expect(await closed).toBe(1009);
  });
});
