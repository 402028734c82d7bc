// console-api: p99 latency of 1,000 small console API requests in web mode (WebSocket, token,
// validation, engine) against a bare WebSocket echo on the same machine.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { WebSocket, WebSocketServer } from 'ws';
import { Engine } from '../src-engine';
import { ConsoleService } from '../src-main/console-service';
import { startWebServer } from '../src-main/web-server';
import { type BenchContext, type Benchmark } from './benchmark';
import { makeFigure } from './report';
import { percentile } from './timing';
import { withTempDir } from './temp';

const requests = 1000;
const warmup = 100;

function open(url: string, origin: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { origin });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Sends `count` frames one after another, each after the previous reply; returns latencies. */
async function roundTrips(ws: WebSocket, count: number, frame: (i: number) => string): Promise<number[]> {
  const latenciesMs: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await new Promise<void>((resolve) => {
      ws.once('message', () => resolve());
      ws.send(frame(i));
    });
    latenciesMs.push(performance.now() - started);
  }
  return latenciesMs;
}

async function startEcho(): Promise<{ url: string; origin: string; close: () => void }> {
  const server = createServer();
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data.toString())));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/`,
    origin: `http://127.0.0.1:${port}`,
    close: () => {
      wss.close();
      server.close();
    },
  };
}

/**
 * Interleaves the two: one API request, then one echo, and so on, so machine noise (GC,
 * the other core's load) falls on both sides alike.
 */
async function interleaved(api: WebSocket, echo: WebSocket, count: number): Promise<{ api: number[]; echo: number[] }> {
  const frame = (i: number) => JSON.stringify({ id: i, verb: 'events', args: { afterId: 1e9 } });
  const samples = { api: [] as number[], echo: [] as number[] };
  for (let i = 0; i < count; i++) {
    samples.api.push(...(await roundTrips(api, 1, () => frame(i))));
    samples.echo.push(...(await roundTrips(echo, 1, () => frame(i))));
  }
  return samples;
}

async function run(context: BenchContext): Promise<void> {
  context.log(`console-api: ${requests} small requests each, interleaved with a bare echo (after ${warmup} warm-up), p99`);
  await withTempDir('console-api', async (dir) => {
    const homeDir = join(dir, 'home');
    const engine = await Engine.open(homeDir, { purpose: 'bench' });
    const server = await startWebServer({ service: new ConsoleService(engine), staticDir: homeDir });
    const echoServer = await startEcho();
    try {
      const api = await open(`ws://127.0.0.1:${server.port}/api?token=${server.token}`, `http://127.0.0.1:${server.port}`);
      const echo = await open(echoServer.url, echoServer.origin);
      await interleaved(api, echo, warmup);
      const samples = await interleaved(api, echo, requests);
      api.close();
      echo.close();
      const apiP99 = percentile(samples.api, 99);
      const echoP99 = percentile(samples.echo, 99);
      context.record(
        makeFigure({
          name: 'console-api-p99',
          tidemark: { value: apiP99, unit: 'ms' },
          peer: { name: 'bare-ws-echo', value: echoP99, unit: 'ms' },
          ratio: apiP99 / echoP99,
          goal: 3,
          goalRule: 'at-most',
          details: {
            requests,
            apiP50Ms: percentile(samples.api, 50),
            echoP50Ms: percentile(samples.echo, 50),
            apiMaxMs: Math.max(...samples.api),
            echoMaxMs: Math.max(...samples.echo),
          },
        }),
      );
    } finally {
      echoServer.close();
      await server.close();
      await engine.dispose();
    }
  });
}

export const consoleApiBenchmark: Benchmark = {
  name: 'console-api',
  description: 'p99 of 1,000 small console API requests over web mode vs a bare WebSocket echo',
  run,
};
