// Another host's clock against this process's (docs/failover.md "Split brain"): times an agent
// records (a tracker's last write) are compared with instants this orchestrator took (a
// failover's), so the skew between the two clocks is measured, not assumed zero. NTP-style:
// the agent's clock at its reply against the midpoint of the call; the sample with the
// shortest round trip wins, and half of it is the uncertainty.

import type { AgentApi } from '../agent';

export interface ClockOffset {
  /** The agent's clock minus this process's clock. */
  readonly offsetMs: number;
  /** ± bound on offsetMs: half the round trip of the sample used. */
  readonly uncertaintyMs: number;
}

const samples = 3;

/** The agent's clock offset, or null when it does not report its clock (an older agent). */
export async function clockOffsetOf(agent: Pick<AgentApi, 'info'>): Promise<ClockOffset | null> {
  let best: ClockOffset | null = null;
  for (let i = 0; i < samples; i++) {
    const sentMs = Date.now();
    const { clockMs } = await agent.info();
    const receivedMs = Date.now();
    if (typeof clockMs !== 'number') return null;
    const sample = { offsetMs: clockMs - (sentMs + receivedMs) / 2, uncertaintyMs: (receivedMs - sentMs) / 2 };
    if (!best || sample.uncertaintyMs < best.uncertaintyMs) best = sample;
  }
  return best;
}

/** A time the agent recorded, on this process's clock. */
export function toLocalMs(agentMs: number, offset: ClockOffset | null): number {
  return agentMs - (offset?.offsetMs ?? 0);
}
