// Public surface of agent/: the AgentApi, its in-process implementation, and its RPC server
// and client.

export type {
  AgentApi,
  AgentInfo,
  RegionData,
  RegionSignatures,
  RealizedMap,
  ReadOptions,
  SnapshotInfo,
  SnapshotList,
  DamagedSnapshotInfo,
  BitmapInfo,
  BitmapContents,
  VolumeState,
  WriteAuth,
  PairMember,
  PairMemberChange,
  ImportMarker,
  TrackingMapKind,
  TrackingState,
  NbdTarget,
  SnapshotGroupItem,
  SnapshotGroupHold,
  SnapshotGroupPrepareOptions,
  NbdExportOptions,
  NbdExportInfo,
  PeerShipOptions,
  PeerShipResult,
  PeerStatus,
  RoleChangeResult,
  RoleEvent,
} from './agent-api';
export { failbackMapName, unshippedMapName } from './role-change';
export { peerTargetSchema, peerAlias, authorizedKeysPath, type PeerFiles, type PeerTarget } from './peer-keys';
export { pairRestrictedHandler } from './peer-session';
export type { PeerLink, PeerLinkOpener } from './peer-links';
export { trackingMapKinds } from './agent-api';
export { pairMemberSchema, importMarkerSchema, secondaryLock } from './pair-members';
export { LocalAgent, exportSnapshotLabelPrefix, type LocalAgentOptions } from './local-agent';
export { serveAgent, agentSession, RpcAgent, type AgentSession } from './agent-rpc';
export { oosContextName } from './nbd-exports';
export { startAgentDaemon, connectAgentSocket, agentSocketPath, type AgentDaemon } from './daemon';
export { parseVolRef, formatVolRef, isOnHost, splitHostSpec, volrefOnHost, type HostSpec, type VolRef } from './volref';
