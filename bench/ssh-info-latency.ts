// ssh-info-latency: p50 and p99 of 10,000 `info` round trips to one agent over loopback SSH
// (ssh2 → sshd → `agent dial-stdio` → the agent's socket) against the same calls straight to
// that agent's Unix socket, interleaved one by one.

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RpcAgent, connectAgentSocket } from '../src-engine/agent';
import { RpcPeer } from '../src-engine/transport';
import { scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { makeFigure } from './report';
import { benchCipher, withSshHarness } from './ssh-harness';
import { percentile } from './timing';

const callsBase = 10_000;
const callsMin = 1000;
const warmupCalls = 200;
/** SSH's ratio to the local socket at most: p50 3x, p99 5x (sshd, the dial-stdio bridge and the cipher sit between). */
const goals = { 50: 3, 99: 5 } as const;

async function timedInfo(agent: RpcAgent, expectedPid: number): Promise<number> {
  const startMs = performance.now();
  const { pid } = await agent.info();
  const elapsedMs = performance.now() - startMs;
  if (pid !== expectedPid) throw new Error(`ssh-info-latency: info answered by pid ${pid}, expected the agent ${expectedPid}`);
  return elapsedMs;
}

/** One call over SSH, then one over the socket, and so on: machine noise falls on both alike. */
async function interleaved(ssh: RpcAgent, local: RpcAgent, pid: number, calls: number): Promise<{ ssh: number[]; local: number[] }> {
  const samples = { ssh: [] as number[], local: [] as number[] };
  for (let i = 0; i < calls; i++) {
    samples.ssh.push(await timedInfo(ssh, pid));
    samples.local.push(await timedInfo(local, pid));
  }
  return samples;
}

/** The agent of `homeDir` over its Unix socket, as a local CLI reaches it. */
async function openLocal(homeDir: string): Promise<RpcAgent> {
  const peer = new RpcPeer(await connectAgentSocket(homeDir), { role: 'client', keepaliveMs: 0 });
  await peer.handshake();
  return new RpcAgent(peer);
}

async function run(context: BenchContext): Promise<void> {
  const calls = Math.max(callsMin, scaledCount(callsBase, context.sizeFactor));
  await withSshHarness('ssh-info-latency', benchCipher, async (harness) => {
    const homeDir = join(harness.dir, 'home');
    const remote = await harness.openAgent(homeDir);
    const local = await openLocal(homeDir);
    try {
      const { pid } = await remote.agent.info();
      context.log(
        `ssh-info-latency: ${calls} info calls each over SSH (${benchCipher}) and the agent's Unix socket, interleaved, after ${warmupCalls} warm-up`,
      );
      await interleaved(remote.agent, local, pid, warmupCalls);
      const samples = await interleaved(remote.agent, local, pid, calls);
      const details = {
        calls,
        warmupCalls,
        cipher: benchCipher,
        sshMaxMs: Math.max(...samples.ssh),
        localMaxMs: Math.max(...samples.local),
        note: 'the same agent process answers both; the difference is ssh2, sshd and the dial-stdio bridge',
      };
      for (const p of [50, 99] as const) {
        const sshMs = percentile(samples.ssh, p);
        const localMs = percentile(samples.local, p);
        context.record(
          makeFigure({
            name: `ssh-info-latency-p${p}`,
            tidemark: { value: sshMs, unit: 'ms' },
            peer: { name: 'local-socket', value: localMs, unit: 'ms' },
            ratio: sshMs / localMs,
            goal: goals[p],
            goalRule: 'at-most',
            details,
          }),
        );
      }
    } finally {
      await local.dispose();
      await remote.agent.dispose();
    }
  });
}

export const sshInfoLatencyBenchmark: Benchmark = {
  name: 'ssh-info-latency',
  description: 'p50 and p99 of 10,000 agent info calls over loopback SSH vs the same agent over its Unix socket',
  run,
};
