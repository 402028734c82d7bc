// Web mode: the same renderer and the same console API over HTTP + WebSocket, on 127.0.0.1
// only. A random per-run token (in the URL) guards the page and the API; Host and Origin
// are checked against the loopback address (DNS rebinding, cross-site pages); failed token
// attempts are rate-limited per client. Spec in docs/web-mode.md.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ConsoleService } from './console-service';

export interface WebServerOptions {
  readonly service: ConsoleService;
  readonly staticDir: string;
  readonly port?: number;
  readonly token?: string;
  readonly log?: (line: string) => void;
  readonly nowMs?: () => number;
}

export interface WebServer {
  readonly port: number;
  readonly token: string;
  /** The URL to open: loopback, with the token. */
  readonly url: string;
  close(): Promise<void>;
}

const mimeTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

export const webLimits = { failuresPerWindow: 10, failureWindowMs: 60_000, wsFrameBytesMax: 1024 * 1024 } as const;

/** Counts failed token attempts per client address within a sliding window. */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly nowMs: () => number) {}

  blocked(client: string): boolean {
    return this.recent(client).length >= webLimits.failuresPerWindow;
  }

  record(client: string): void {
    this.failures.set(client, [...this.recent(client), this.nowMs()]);
    for (const [other, times] of this.failures) if (times.every((at) => at <= this.nowMs() - webLimits.failureWindowMs)) this.failures.delete(other);
  }

  private recent(client: string): number[] {
    const since = this.nowMs() - webLimits.failureWindowMs;
    return (this.failures.get(client) ?? []).filter((at) => at > since);
  }
}

function tokenMatches(expected: string, given: string | null): boolean {
  if (!given) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function contentSecurityPolicy(port: number): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    // MUI (emotion) injects <style> elements at run time.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'none'",
  ].join('; ');
}

export async function startWebServer(options: WebServerOptions): Promise<WebServer> {
  const token = options.token ?? randomBytes(24).toString('base64url');
  const log = options.log ?? (() => undefined);
  const limiter = new FailureLimiter(options.nowMs ?? Date.now);
  let port = 0;
  const allowedHosts = () => [`127.0.0.1:${port}`, `localhost:${port}`];
  const allowedOrigins = () => allowedHosts().map((h) => `http://${h}`);

  const refuse = (res: ServerResponse, status: number, why: string) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`${why}\n`);
  };

  /** Host, rate limit and token checks shared by the page and the API. Returns a refusal or null. */
  const gate = (req: IncomingMessage, url: URL, needsToken: boolean): { status: number; why: string } | null => {
    const client = req.socket.remoteAddress ?? 'unknown';
    if (!allowedHosts().includes(req.headers.host ?? ''))
      return { status: 421, why: 'refused: unexpected Host header (Tidemark web mode answers on 127.0.0.1 only)' };
    if (!needsToken) return null;
    if (tokenMatches(token, url.searchParams.get('token'))) return null;
    // Only wrong tokens are limited, so a flood of guesses cannot lock the owner out.
    if (limiter.blocked(client)) return { status: 429, why: 'refused: too many attempts with a wrong token; wait a minute' };
    limiter.record(client);
    log(`web: refused a request from ${client} without a valid token`);
    return { status: 401, why: 'refused: missing or wrong token; open the URL Tidemark printed' };
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'method not allowed');
      let pathname: string;
      try {
        pathname = normalize(decodeURIComponent(url.pathname));
      } catch {
        return refuse(res, 400, 'bad path');
      }
      // Every HTML file is "the page": decided on the decoded path, so %-encoding cannot skip the token.
      const isPage = pathname === '/' || extname(pathname) === '.html';
      const refusal = gate(req, url, isPage);
      if (refusal) return refuse(res, refusal.status, refusal.why);
      await serveStatic(res, options.staticDir, pathname === '/' ? '/index.html' : pathname, port);
    })().catch((error: unknown) => {
      log(`web: ${String(error)}`);
      if (!res.headersSent) refuse(res, 500, 'internal error');
    });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: webLimits.wsFrameBytesMax });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const refusal =
      url.pathname !== '/api'
        ? { status: 404, why: 'not found' }
        : !allowedOrigins().includes(req.headers.origin ?? '')
          ? { status: 403, why: 'refused: foreign Origin' }
          : gate(req, url, true);
    if (refusal) {
      log(`web: refused an API connection (${refusal.why}) from origin ${req.headers.origin ?? '(none)'}`);
      socket.end(`HTTP/1.1 ${refusal.status} Refused\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${refusal.why}\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serveApi(ws, options.service, log));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    port,
    token,
    url: `http://127.0.0.1:${port}/?token=${token}`,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections(); // before waiting: a half-open request must not hold shutdown
      await closed;
    },
  };
}

async function serveStatic(res: ServerResponse, staticDir: string, pathname: string, port: number): Promise<void> {
  const path = normalize(join(staticDir, pathname));
  if (!path.startsWith(normalize(staticDir) + sep)) {
    res.writeHead(404).end();
    return;
  }
  let body: Buffer;
  try {
    body = await readFile(path);
  } catch {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  const headers: Record<string, string> = {
    'content-type': mimeTypes[extname(path)] ?? 'application/octet-stream',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  };
  if (extname(path) === '.html') Object.assign(headers, { 'content-security-policy': contentSecurityPolicy(port), 'x-frame-options': 'DENY' });
  res.writeHead(200, headers).end(body);
}

interface WireRequest {
  id: number;
  verb: string;
  args: unknown;
}

function parseWireRequest(data: string): WireRequest | undefined {
  let frame: unknown;
  try {
    frame = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof frame !== 'object' || frame === null) return undefined;
  const { id, verb, args } = frame as Record<string, unknown>;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || typeof verb !== 'string') return undefined;
  return { id, verb, args };
}

function serveApi(ws: WebSocket, service: ConsoleService, log: (line: string) => void): void {
  const unsubscribe = service.onEvent((event) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ push: 'event', data: event }));
  });
  ws.on('close', unsubscribe);
  ws.on('error', (error) => log(`web: API connection error: ${error.message}`));
  ws.on('message', (raw, isBinary) => {
    const request = isBinary ? undefined : parseWireRequest(raw.toString());
    if (!request) {
      log('web: closed an API connection that sent a malformed frame');
      ws.close(1008, 'malformed frame: expected JSON {id, verb, args}');
      return;
    }
    void service.handle(request.verb, request.args).then((outcome) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ id: request.id, ...outcome }));
    });
  });
}
