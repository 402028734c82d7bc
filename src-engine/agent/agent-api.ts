// AgentApi: the one interface to a host's volumes. The in-process LocalAgent implements it
// directly; RpcAgent implements it over the agent RPC (local socket, stdio, SSH). The same
// contract test suite runs against both (test/integration/agent-contract.test.ts).

import type { HashAlgorithm } from '../signature';
import type { VolumeInfo, VolumeRecord } from '../volume';

export interface AgentInfo {
  readonly agentVersion: string;
  readonly nodeVersion: string;
  readonly hostname: string;
  readonly homeDir: string;
  readonly pid: number;
}

export interface RegionData {
  readonly regionIndex: number;
  readonly data: Uint8Array;
}

export interface RegionSignatures {
  readonly regionIndexes: readonly number[];
  /** Signatures of regionIndexes, back to back. */
  readonly signatures: Uint8Array;
}

export interface RealizedMap {
  readonly regionCount: number;
  /** Bit i of word w: region 32·w + i was written. */
  readonly words: Uint32Array;
  readonly source: 'tracked' | 'zero-scan';
}

export interface AgentApi {
  info(): Promise<AgentInfo>;
  volumeCreate(path: string, sizeBytes: number, regionBytes: number): Promise<VolumeRecord>;
  volumeInfo(path: string, options?: { regionBytes?: number }): Promise<VolumeInfo>;
  /** Streams regions [firstRegion, firstRegion + regionCount) in order. */
  readRegions(path: string, firstRegion: number, regionCount: number, options?: { signal?: AbortSignal }): AsyncIterable<RegionData>;
  writeRegion(path: string, regionIndex: number, data: Uint8Array): Promise<void>;
  flush(path: string): Promise<void>;
  realizedMap(path: string): Promise<RealizedMap>;
  /** Streams the signatures of regions [firstRegion, firstRegion + regionCount), batch by batch. */
  signatures(path: string, hash: HashAlgorithm, firstRegion: number, regionCount: number, options?: { signal?: AbortSignal }): AsyncIterable<RegionSignatures>;
  /** Releases what the agent holds for this client (open volumes, workers, connections). */
  dispose(): Promise<void>;
}
