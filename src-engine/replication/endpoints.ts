// Where a pair's volumes are: an AgentApi and a path for each VOLREF. The CLI resolves local
// VOLREFs to the home's agent and remote ones to RemoteHosts (one per host); the console to
// its own agent and HostManager. Replication code only sees endpoints.

import type { AgentApi } from '../agent';

export interface VolumeEndpoint {
  /** As the person wrote it (or as recorded in the pair). */
  readonly volref: string;
  readonly agent: AgentApi;
  /** The path on the agent's host. */
  readonly path: string;
  /** The agent's host for messages: "this machine" or user@host:port. */
  readonly where: string;
  /**
   * A host reached over SSH: its address as resolved and the host key verified there
   * (connecting if needed). Absent: the agent runs on this machine (direct shipping from it
   * is what relaying already does).
   */
  readonly sshTarget?: () => Promise<SshTarget>;
}

export interface SshTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** `type base64`. */
  readonly hostKey: string;
}

export interface EndpointResolver {
  resolve(volref: string): Promise<VolumeEndpoint>;
}

export interface PairEndpoints {
  readonly primary: VolumeEndpoint;
  readonly secondary: VolumeEndpoint;
}
